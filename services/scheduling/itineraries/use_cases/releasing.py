"""Cancel, expire lapsed holds, and say when no itinerary fits (itinerary.unplaceable, and
the patient waitlisted)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from services.scheduling.diary import booking, domain, wishes
from services.scheduling.diary.db import appointments
from services.scheduling.itineraries.db import itineraries
from services.scheduling.itineraries.planner import (
    Ask,
    Planner,
    Row,
)
from services.scheduling.itineraries.use_cases import (
    reading,
)
from shared.auth import Principal
from shared.errors import Conflict


def release(planner: Planner, s: Session, now: datetime, itinerary_id: str, reason: str) -> int:
    """Cancel the itinerary's holds (not its bookings): their time is free again."""
    a = appointments.c
    return s.execute(update(appointments).where(
        a.itinerary_id == itinerary_id, a.status.in_(domain.HOLD_STATUSES)).values(
        status="cancelled", cancel_reason=reason, updated_at=now)).rowcount


def cancel(planner: Planner, s: Session, who: Principal, now: datetime, itinerary_id: str,
           reason: str) -> Row:
    """Cancel the whole itinerary: holds are released, booked visits cancelled (each
    emits appointment.cancelled and its slot goes to the waitlist)."""
    row = reading.itinerary_row(planner, s, itinerary_id, lock=True)
    if row["status"] in ("cancelled", "unplaceable"):
        raise Conflict(f"this itinerary is already {row['status']}")
    for _visit, appt in reading.visits_of(planner, s, itinerary_id):
        if appt["status"] in domain.ACTIVE_STATUSES:
            booking.cancel(planner.diary, s, who, now, appt["id"], reason)
    s.execute(update(itineraries).where(itineraries.c.id == itinerary_id).values(
        status="cancelled", hold_expires_at=None, updated_at=now))
    planner.runtime.emit(s, "itinerary.cancelled", {
        "itinerary_id": itinerary_id, "referral_id": row["referral_id"],
        "patient_id": row["patient_id"], "reason": reason}, key=row["patient_id"])
    planner.runtime.audit.record(s, who, "cancel", "itinerary", resource_id=itinerary_id,
                              patient_id=row["patient_id"])
    return reading.view(planner, s, now, itinerary_id)


def expire_holds(planner: Planner, s: Session, now: datetime) -> int:
    """Release every itinerary whose hold has run out; how many were released."""
    i = itineraries.c
    ids = s.execute(select(i.id).where(i.status == "proposed", i.hold_expires_at <= now)
                    .with_for_update(skip_locked=True)).scalars().all()
    for itinerary_id in ids:
        release(planner, s, now, itinerary_id, "itinerary hold expired")
        s.execute(update(itineraries).where(itineraries.c.id == itinerary_id).values(
            status="expired", updated_at=now))
    return len(ids)


def unplaceable(planner: Planner, s: Session, who: Principal, now: datetime, ask: Ask,
                 itinerary_id: str, reasons: list[str]) -> None:
    """Say so (itinerary.unplaceable) and put the patient on the waitlist for each
    discipline of the pathway."""
    reasons = [r[:500] for r in dict.fromkeys(reasons)] or ["no itinerary fits"]
    s.execute(update(itineraries).where(itineraries.c.id == itinerary_id).values(
        status="unplaceable", reasons=reasons, hold_expires_at=None, updated_at=now))
    planner.runtime.emit(s, "itinerary.unplaceable", {
        "referral_id": ask.referral_id, "patient_id": ask.patient_id, "reasons": reasons},
        key=ask.patient_id)
    for step in ask.pathway:
        wishes.add_wish(planner.diary, s, who, now, {
            "patient_id": ask.patient_id, "discipline": step["discipline"],
            "visit_minutes": step["visit_minutes"], "priority": ask.priority,
            "earliest": max(ask.earliest, now).astimezone(planner.tz).date(),
            "referral_id": ask.referral_id})
