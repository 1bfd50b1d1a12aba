"""Propose and hold: the best itinerary's visits held as appointments (status "proposed",
`hold_expires_at`), so the database refuses the held time to everyone else."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta

from sqlalchemy import insert, update
from sqlalchemy.orm import Session

from services.scheduling.diary import booking
from services.scheduling.diary.context import new_id
from services.scheduling.itineraries.db import itineraries, itinerary_visits
from services.scheduling.itineraries.model import (
    Itinerary,
    Unplaceable,
    Visit,
)
from services.scheduling.itineraries.planner import (
    Ask,
    Planner,
    Row,
    _planned,
)
from services.scheduling.itineraries.use_cases import (
    reading,
    searching,
)
from shared.auth import Principal
from shared.errors import Conflict


def propose(planner: Planner, s: Session, who: Principal, now: datetime, ask: Ask, *,
            choice: int = 0, itinerary_id: str | None = None) -> Row:
    """Search, hold the chosen itinerary's slots and emit itinerary.proposed; Conflict
    with the reasons if none fits (nothing is written)."""
    held = search_and_hold(planner, s, who, now, ask, choice, itinerary_id or new_id(),
                                 fresh=itinerary_id is None)
    if isinstance(held, Unplaceable):
        raise Conflict("no itinerary fits: " + " ".join(held.reasons),
                       errors={"reasons": list(held.reasons)})
    planner.runtime.audit.record(s, who, "propose", "itinerary", resource_id=held["id"],
                              patient_id=ask.patient_id)
    return held


def search_and_hold(planner: Planner, s: Session, who: Principal, now: datetime, ask: Ask,
                     choice: int, itinerary_id: str, *, fresh: bool,
                     extra_notes: list[str] | None = None) -> Row | Unplaceable:
    for _attempt in range(4):
        found, _calendar = searching.search_calendar(planner, s, now, ask, max(3, choice + 1))
        if isinstance(found, Unplaceable):
            return found
        chosen = found[min(choice, len(found) - 1)]
        if fresh:
            s.execute(insert(itineraries).values(**new_row(planner,
                itinerary_id, ask, who, now)))
            fresh = False
        if _hold(planner, s, who, now, ask, itinerary_id, chosen):
            return _proposed(planner, s, now, ask, itinerary_id, chosen, extra_notes or [])
        # PostgreSQL only: a concurrent booking or hold committed between our read and
        # our insert (its exclusion constraint refused us; SQLite's BEGIN IMMEDIATE
        # cannot interleave). Search again: the next read sees what it took.
    raise Conflict("the clinic's diary is changing too fast; try again")


def _hold(planner: Planner, s: Session, who: Principal, now: datetime, ask: Ask, itinerary_id: str,
          chosen: Itinerary) -> bool:
    """Hold every visit (all in one savepoint), or none if one cannot be held."""
    rows: list[tuple[Visit, Row]] = []
    try:
        with s.begin_nested():
            for visit in chosen.visits:
                rows.append((visit, booking.book(planner.diary, s, who, now, {
                    "patient_id": ask.patient_id, "provider_id": visit.provider_id,
                    "room_id": visit.room_id, "start": visit.start,
                    "minutes": int((visit.end - visit.start).total_seconds() // 60),
                    "status": "proposed", "hold_minutes": planner.hold_minutes,
                    "referral_id": ask.referral_id, "itinerary_id": itinerary_id},
                    audit=False)))
    except Conflict:
        return False
    s.execute(insert(itinerary_visits), [
        {"itinerary_id": itinerary_id, "appointment_id": row["id"],
         "discipline": visit.discipline, "session_index": visit.session_index}
        for visit, row in rows])
    return True


def _proposed(planner: Planner, s: Session, now: datetime, ask: Ask, itinerary_id: str,
              chosen: Itinerary, extra_notes: list[str]) -> Row:
    expires = now + timedelta(minutes=planner.hold_minutes)
    notes = [*extra_notes, *chosen.notes]
    s.execute(update(itineraries).where(itineraries.c.id == itinerary_id).values(
        status="proposed", hold_expires_at=expires, notes=notes, reasons=[],
        score=asdict(chosen.score), updated_at=now))
    view = reading.view(planner, s, now, itinerary_id)
    planner.runtime.emit(s, "itinerary.proposed", {
        "itinerary_id": itinerary_id, "referral_id": ask.referral_id,
        "patient_id": ask.patient_id, "hold_expires_at": expires.isoformat(),
        "visits": [_planned(v) for v in view["visits"]],
        "notes": [n[:500] for n in notes]}, key=ask.patient_id)
    return view


def new_row(planner: Planner, itinerary_id: str, ask: Ask, who: Principal, now: datetime) -> Row:
    return {"id": itinerary_id, "patient_id": ask.patient_id,
            "referral_id": ask.referral_id, "status": "proposed",
            "priority": ask.priority, "due_by": ask.due_by, "pathway": ask.pathway,
            "rules": ask.rules, "weights": ask.weights,
            "patient_busy": [[a.isoformat(), b.isoformat()] for a, b in ask.patient_busy],
            "earliest": ask.earliest, "latest": ask.latest, "hold_expires_at": None,
            "notes": [], "reasons": [], "score": None, "revision": 1,
            "created_by": who.subject, "created_at": now, "updated_at": now}
