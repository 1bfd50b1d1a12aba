"""Confirm: every held visit becomes booked in one transaction, or none does; a visit whose
slot was taken after its hold lapsed makes the whole itinerary be searched again."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from services.scheduling.diary import booking, domain
from services.scheduling.diary.db import appointments
from services.scheduling.itineraries.db import itineraries, itinerary_visits
from services.scheduling.itineraries.model import (
    Unplaceable,
)
from services.scheduling.itineraries.planner import (
    WHAT_TO_BRING,
    Confirmation,
    Planner,
    Row,
    _label,
    _planned,
)
from services.scheduling.itineraries.use_cases import (
    proposing,
    reading,
    releasing,
)
from shared.auth import Principal
from shared.errors import Conflict, InvalidInput


def confirm(planner: Planner, s: Session, who: Principal, now: datetime, itinerary_id: str
            ) -> Confirmation:
    """Book every visit in this transaction, or none. A held slot still held is ours
    even after the hold lapsed (nobody could book over it without releasing it); one
    that was released is taken back if still free. If any is gone, the itinerary is
    searched again and held anew, and the caller is told what changed."""
    row = reading.itinerary_row(planner, s, itinerary_id, lock=True)
    if row["status"] not in ("proposed", "expired"):
        raise Conflict(f"this itinerary is {row['status']}; only a proposed one can be "
                       "confirmed")
    pairs = reading.visits_of(planner, s, itinerary_id, lock=True)
    lost: list[tuple[Row, Row, str]] = []
    secured: list[str] = []
    for visit, appt in pairs:
        if appt["status"] in domain.HOLD_STATUSES:
            secured.append(appt["id"])
            continue
        retaken, why = _retake(planner, s, who, now, row, appt)
        if retaken is None:
            lost.append((visit, appt, why))
        else:
            secured.append(retaken)
    if lost:
        return _research(planner, s, who, now, row, pairs, lost)
    s.execute(update(appointments).where(
        appointments.c.id.in_(secured), appointments.c.status.in_(domain.HOLD_STATUSES))
        .values(hold_expires_at=now + timedelta(minutes=1)))  # confirmed now: not lapsed
    for appt_id in secured:
        booking.change_status(planner.diary, s, who, now, appt_id, "booked")
    s.execute(update(itineraries).where(itineraries.c.id == itinerary_id).values(
        status="booked", hold_expires_at=None, updated_at=now))
    view = reading.view(planner, s, now, itinerary_id)
    disciplines = list(dict.fromkeys(v["discipline"] for v in view["visits"]))
    planner.runtime.emit(s, "itinerary.booked", {
        "itinerary_id": itinerary_id, "referral_id": row["referral_id"],
        "patient_id": row["patient_id"], "visits": [_planned(v) for v in view["visits"]],
        "what_to_bring": [WHAT_TO_BRING[d] for d in disciplines if d in WHAT_TO_BRING]},
        key=row["patient_id"])
    planner.runtime.audit.record(s, who, "confirm", "itinerary", resource_id=itinerary_id,
                              patient_id=row["patient_id"])
    return Confirmation(view, True)


def _retake(planner: Planner, s: Session, who: Principal, now: datetime, row: Row, appt: Row
            ) -> tuple[str | None, str]:
    """Hold a released slot again: (the new appointment id, "") or (None, why the
    slot is gone)."""
    if appt["status"] != "cancelled":
        return None, f"it is {appt['status']}"
    try:
        with s.begin_nested():
            again = booking.book(planner.diary, s, who, now, {
                "patient_id": appt["patient_id"], "provider_id": appt["provider_id"],
                "room_id": appt["room_id"], "start": appt["start_at"],
                "minutes": int((appt["end_at"] - appt["start_at"]).total_seconds() // 60),
                "status": "proposed", "hold_minutes": planner.hold_minutes,
                "referral_id": row["referral_id"], "itinerary_id": row["id"]},
                audit=False)
    except (Conflict, InvalidInput) as exc:
        return None, exc.detail
    s.execute(update(itinerary_visits).where(
        itinerary_visits.c.appointment_id == appt["id"]).values(appointment_id=again["id"]))
    return again["id"], ""


def _research(planner: Planner, s: Session, who: Principal, now: datetime, row: Row,
              pairs: list[tuple[Row, Row]], lost: list[tuple[Row, Row, str]]
              ) -> Confirmation:
    names = reading.place_names(planner, s)
    changes = [f"{_label(v['discipline'])} session {v['session_index']} "
               f"({planner.diary.local(a['start_at'])} with {names.get(a['provider_id'], '')}) "
               f"was lost: {why}." for v, a, why in lost]
    before = {(v["discipline"], v["session_index"]): a for v, a in pairs}
    releasing.release(planner, s, now, row["id"], "itinerary searched again")
    s.execute(delete(itinerary_visits).where(itinerary_visits.c.itinerary_id == row["id"]))
    ask = reading.ask_of(planner, row)
    held = proposing.search_and_hold(planner, s, who, now, ask, 0, row["id"], fresh=False,
                                 extra_notes=changes)
    s.execute(update(itineraries).where(itineraries.c.id == row["id"]).values(
        revision=row["revision"] + 1))
    if isinstance(held, Unplaceable):
        releasing.unplaceable(planner, s, who, now, ask, row["id"], [*changes, *held.reasons])
        view = reading.view(planner, s, now, row["id"])
        return Confirmation(view, False, [*changes, "No other itinerary fits: "
                                          + " ".join(held.reasons)])
    for v in held["visits"]:
        old = before.get((v["discipline"], v["session_index"]))
        if old and (old["start_at"], old["provider_id"]) != (v["start"], v["provider_id"]):
            changes.append(
                f"{_label(v['discipline'])} session {v['session_index']} moves from "
                f"{planner.diary.local(old['start_at'])} with "
                f"{names.get(old['provider_id'], '')} to {planner.diary.local(v['start'])} "
                f"with {v['provider_name']}.")
    planner.runtime.audit.record(s, who, "research", "itinerary", resource_id=row["id"],
                              patient_id=row["patient_id"])
    return Confirmation(held, False, changes)
