"""Events in: an accepted referral gets a proposal of our own (or itinerary.unplaceable
and the waitlist)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from services.scheduling.diary.context import new_id
from services.scheduling.itineraries.db import itineraries
from services.scheduling.itineraries.model import (
    Unplaceable,
)
from services.scheduling.itineraries.planner import (
    Planner,
    Row,
    _as_date,
)
from services.scheduling.itineraries.use_cases import (
    proposing,
    reading,
    releasing,
    searching,
)
from shared.auth import Principal


def on_referral_accepted(planner: Planner, s: Session, now: datetime, payload: Row) -> Row:
    """Propose an itinerary for an accepted referral by ourselves; if none fits, say so
    and waitlist the patient. A referral already proposed or booked is left alone."""
    i = itineraries.c
    existing = s.execute(select(i.id).where(
        i.referral_id == payload["referral_id"],
        i.status.in_(("proposed", "booked")))).scalar()
    if existing:
        return reading.view(planner, s, now, existing)
    who = Principal(subject=planner.runtime.settings.service, role="service")
    ask = searching.ask(planner, now, {**payload, "due_by": _as_date(payload.get("due_by"))})
    itinerary_id = new_id()
    held = proposing.search_and_hold(planner, s, who, now, ask, 0, itinerary_id, fresh=True)
    planner.runtime.audit.record(s, who, "propose", "itinerary", resource_id=itinerary_id,
                              patient_id=ask.patient_id)
    if isinstance(held, Unplaceable):
        if not s.execute(select(i.id).where(i.id == itinerary_id)).first():
            s.execute(insert(itineraries).values(**proposing.new_row(planner,
                itinerary_id, ask, who, now)))
        releasing.unplaceable(planner, s, who, now, ask, itinerary_id, list(held.reasons))
    return reading.view(planner, s, now, itinerary_id)
