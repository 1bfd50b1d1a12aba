"""Booking an appointment, and its life after (cancel, reschedule, check in, complete).

Double booking: the overlap check runs after any expired holds in the way are
cancelled and before the insert, in one transaction. On SQLite that transaction holds
the write lock from its first statement (BEGIN IMMEDIATE), so the check cannot go stale;
on PostgreSQL a concurrent insert may slip past the check, and the exclusion constraints
refuse it (translated to the same 409).

Each use case runs inside the caller's transaction (`Diary.run`); the rules themselves
live in `domain.py` and `shared/availability.py`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.scheduling.diary import domain, free_time, roster, wishes
from services.scheduling.diary.context import (
    Diary,
    Row,
    new_id,
)
from services.scheduling.diary.db import (
    EXCLUSIONS,
    appointments,
    patient_links,
    waitlist,
)
from shared import availability as av
from shared import patient_links as links
from shared.auth import Principal
from shared.errors import Conflict, InvalidInput, NotFound


def appointment(d: Diary, s: Session, appointment_id: str, *, lock: bool = False) -> Row:
    q = select(appointments).where(appointments.c.id == appointment_id)
    row = s.execute(q.with_for_update() if lock else q).mappings().first()
    if row is None:
        raise NotFound(f"no appointment {appointment_id}")
    return dict(row)


def _place(d: Diary, s: Session, now: datetime, *, provider: Row, visit: av.Interval,
           patient_id: str, room: Row | None, visit_type: str,
           moving: str | None = None) -> None:
    """Refuse (409) unless the provider works then and provider, room and patient
    are all free; the caller's insert or update follows in the same transaction."""
    domain.check_not_past(visit, now)
    if not provider["active"]:
        raise Conflict(f"provider {provider['name']} is not taking appointments")
    domain.check_provider_offers(provider["discipline"], provider["visit_types"], visit_type)
    if room is not None:
        if not room["active"]:
            raise Conflict(f"room {room['name']} is out of use")
        domain.check_room_fit(room["name"], room["fit_for"], provider["discipline"],
                              visit_type)
    if not av.fits(free_time.working_free(d, s, provider["id"], visit), visit.start, visit.end):
        raise Conflict(f"{provider['name']} is not working from {d.local(visit.start)} "
                       f"to {d.local(visit.end)} (outside their template, on leave or "
                       "the clinic is closed)")
    _release_expired_holds(d, s, now, visit, provider["id"],
                                room["id"] if room else None, patient_id)
    clash = _clash(d, s, now, visit, provider["id"], room["id"] if room else None,
                        patient_id, exclude=moving)
    if clash:
        raise Conflict(clash)


def _release_expired_holds(d: Diary, s: Session, now: datetime, visit: av.Interval,
                           provider_id: str, room_id: str | None, patient_id: str) -> None:
    a = appointments.c
    s.execute(update(appointments).where(
        a.status.in_(domain.HOLD_STATUSES), a.hold_expires_at.is_not(None),
        a.hold_expires_at <= now, a.start_at < visit.end, a.end_at > visit.start,
        _any_resource(provider_id, room_id, patient_id),
    ).values(status="cancelled", cancel_reason="hold expired", updated_at=now))


def _clash(d: Diary, s: Session, now: datetime, visit: av.Interval, provider_id: str,
           room_id: str | None, patient_id: str, exclude: str | None) -> str | None:
    a = appointments.c
    q = select(a.provider_id, a.room_id, a.patient_id, a.start_at, a.end_at).where(
        a.start_at < visit.end, a.end_at > visit.start, blocking(now),
        _any_resource(provider_id, room_id, patient_id))
    if exclude:
        q = q.where(a.id != exclude)
    for pid, rid, pat, start, end in s.execute(q.limit(5)):
        when = f"{d.local(start)}-{end.astimezone(d.tz):%H:%M}"
        if pid == provider_id:
            return f"the provider is already booked {when}"
        if room_id and rid == room_id:
            return f"the room is already in use {when}"
        if pat == patient_id:
            return f"the patient already has an appointment {when}"
    return None


def _write(d: Diary, s: Session, stmt: Any) -> None:
    """Run an insert/update under a savepoint; an exclusion violation is a 409."""
    try:
        with s.begin_nested():
            s.execute(stmt)
    except IntegrityError as exc:
        name = getattr(getattr(exc.orig, "diag", None), "constraint_name", None)
        if name in EXCLUSIONS:
            raise Conflict(f"the {EXCLUSIONS[name]} already has an appointment overlapping "
                           "that time") from None
        raise


def book(d: Diary, s: Session, who: Principal, now: datetime, cmd: Row, *,
         series_id: str | None = None, waitlist_id: str | None = None,
         audit: bool = True) -> Row:
    """Book (or hold, status proposed/pending with an expiry) one visit."""
    provider = roster.provider(d, s, cmd["provider_id"])
    visit = domain.visit_interval(cmd["start"], cmd["minutes"])
    if cmd.get("room_id"):
        room = roster.room(d, s, cmd["room_id"])
    elif cmd.get("assign_room"):
        room = free_time.free_room(d, s, now, visit, provider["discipline"],
                              cmd.get("visit_type", ""))
    else:
        room = None
    status = cmd.get("status", "booked")
    if status not in ("booked", *domain.HOLD_STATUSES):
        raise InvalidInput("a new appointment is booked, proposed or pending", field="status")
    hold_until = None
    if status in domain.HOLD_STATUSES:
        hold_until = now + timedelta(minutes=cmd.get("hold_minutes") or 30)
    _place(d, s, now, provider=provider, visit=visit, patient_id=cmd["patient_id"],
                room=room, visit_type=cmd.get("visit_type", ""))
    row = {"id": new_id(), "patient_id": cmd["patient_id"], "provider_id": provider["id"],
           "room_id": room["id"] if room else None, "discipline": provider["discipline"],
           "visit_type": cmd.get("visit_type", ""), "start_at": visit.start,
           "end_at": visit.end, "status": status, "hold_expires_at": hold_until,
           "series_id": series_id, "referral_id": cmd.get("referral_id"),
           "itinerary_id": cmd.get("itinerary_id"), "waitlist_id": waitlist_id,
           "cancel_reason": None, "changed_by": who.subject, "created_at": now,
           "updated_at": now}
    _write(d, s, insert(appointments).values(**row))
    if status == "booked":
        d.emit(s, "appointment.booked",
                   {**_visit(d, s, row, provider, room), "visit_type": row["visit_type"]},
                   key=row["patient_id"])
    if audit:
        d.audit(s, who, "book", row)
    return row


def _visit(d: Diary, s: Session, appt: Row, provider: Row | None = None,
           room: Row | None = None) -> Row:
    """The visit as every appointment.* event carries it (ids, no patient names)."""
    provider = provider or roster.provider(d, s, appt["provider_id"])
    if room is None and appt["room_id"]:
        room = roster.room(d, s, appt["room_id"])
    return {"appointment_id": appt["id"], "patient_id": appt["patient_id"],
            "provider_id": appt["provider_id"], "provider_name": provider["name"],
            "discipline": appt["discipline"], "room_id": appt["room_id"],
            "room_name": room["name"] if room else "",
            "start": appt["start_at"].isoformat(), "end": appt["end_at"].isoformat(),
            "referral_id": appt["referral_id"], "itinerary_id": appt["itinerary_id"],
            "series_id": appt["series_id"]}


def cancel(d: Diary, s: Session, who: Principal, now: datetime, appointment_id: str,
           reason: str) -> Row:
    appt = appointment(d, s, appointment_id, lock=True)
    was_booked = appt["status"] not in domain.HOLD_STATUSES
    appt["status"] = domain.move(appt["status"], "cancelled")
    appt.update(cancel_reason=reason, changed_by=who.subject, updated_at=now)
    s.execute(update(appointments).where(appointments.c.id == appointment_id).values(
        status="cancelled", cancel_reason=reason, changed_by=who.subject, updated_at=now))
    if was_booked:
        d.emit(s, "appointment.cancelled",
                   {**_visit(d, s, appt), "reason": reason, "by": who.subject},
                   key=appt["patient_id"])
    d.audit(s, who, "cancel", appt)
    if appt["waitlist_id"]:
        s.execute(update(waitlist).where(waitlist.c.id == appt["waitlist_id"],
                                         waitlist.c.status == "offered")
                  .values(status="waiting", offered_appointment_id=None,
                          offer_expires_at=None))
    wishes.offer_waitlist(d, s, who, now, roster.provider(d, s, appt["provider_id"]),
                        av.Interval(appt["start_at"], appt["end_at"]),
                        skip=[appt["waitlist_id"]] if appt["waitlist_id"] else [])
    return appt


def reschedule(d: Diary, s: Session, who: Principal, now: datetime, appointment_id: str,
               cmd: Row) -> Row:
    """Move one visit (of a series too) to a new time, provider or room."""
    appt = appointment(d, s, appointment_id, lock=True)
    if not domain.can_reschedule(appt["status"]):
        raise Conflict(f"an appointment that is {appt['status']} cannot be moved")
    old = av.Interval(appt["start_at"], appt["end_at"])
    minutes = cmd.get("minutes") or int(old.minutes)
    provider = roster.provider(d, s, cmd.get("provider_id") or appt["provider_id"])
    if provider["discipline"] != appt["discipline"]:
        raise InvalidInput("a visit moves to a provider of the same discipline",
                           field="provider_id")
    room_id = cmd["room_id"] if "room_id" in cmd else appt["room_id"]
    room = roster.room(d, s, room_id) if room_id else None
    visit = domain.visit_interval(cmd["start"], minutes)
    _place(d, s, now, provider=provider, visit=visit, patient_id=appt["patient_id"],
                room=room, visit_type=appt["visit_type"], moving=appointment_id)
    changes = {"provider_id": provider["id"], "room_id": room_id, "start_at": visit.start,
               "end_at": visit.end, "changed_by": who.subject, "updated_at": now}
    _write(d, s, update(appointments).where(appointments.c.id == appointment_id)
                .values(**changes))
    previous_provider = appt["provider_id"]
    appt.update(changes)
    if appt["status"] == "booked":
        d.emit(s, "appointment.rescheduled", {
            **_visit(d, s, appt, provider, room), "previous_start": old.start.isoformat(),
            "previous_end": old.end.isoformat(), "previous_provider_id": previous_provider,
            "by": who.subject}, key=appt["patient_id"])
    d.audit(s, who, "reschedule", appt)
    freed = roster.provider(d, s, previous_provider)
    still_taken = [visit] if previous_provider == provider["id"] else []
    for opening in av.subtract([old], still_taken):
        wishes.offer_waitlist(d, s, who, now, freed, opening)
    return appt


def change_status(d: Diary, s: Session, who: Principal, now: datetime, appointment_id: str,
                  target: str) -> Row:
    """Check in (arrived), complete (fulfilled), no-show, or confirm a hold (booked)."""
    appt = appointment(d, s, appointment_id, lock=True)
    if target == "booked" and appt["hold_expires_at"] and appt["hold_expires_at"] <= now:
        raise Conflict("the hold on this slot has expired; book it again")
    status = domain.move(appt["status"], target)
    domain.check_visit_moment(target, appt["start_at"], now,
                              check_in_opens=d.check_in_opens, tz=d.tz)
    appt["status"] = status
    appt.update(changed_by=who.subject, updated_at=now,
                hold_expires_at=None if target == "booked" else appt["hold_expires_at"])
    s.execute(update(appointments).where(appointments.c.id == appointment_id).values(
        status=target, changed_by=who.subject, updated_at=now,
        hold_expires_at=appt["hold_expires_at"]))
    event = {"booked": "appointment.booked", "arrived": "appointment.checked_in",
             "fulfilled": "appointment.completed", "noshow": "appointment.no_show"}[target]
    payload = _visit(d, s, appt)
    if target == "booked":
        payload["visit_type"] = appt["visit_type"]
    d.emit(s, event, payload, key=appt["patient_id"])
    d.audit(s, who, target, appt)
    return appt


def list_appointments(d: Diary, s: Session, *, provider_id: str | None = None,
                      patient_id: str | None = None, status: str | None = None,
                      start: datetime | None = None, end: datetime | None = None,
                      limit: int = 50, offset: int = 0) -> list[Row]:
    a = appointments.c
    q = select(appointments).order_by(a.start_at, a.id)
    if provider_id:
        q = q.where(a.provider_id == provider_id)
    if patient_id:  # with those of everyone the registry links with the patient
        q = q.where(a.patient_id.in_(links.group(s, patient_links, patient_id)))
    if status:
        q = q.where(a.status == status)
    if start:
        q = q.where(a.end_at > start)
    if end:
        q = q.where(a.start_at < end)
    return [dict(r) for r in s.execute(q.limit(limit).offset(offset)).mappings()]


def blocking(now: datetime) -> Any:
    """SQL: the appointment takes its time now (booked, or held and not expired)."""
    a = appointments.c
    return or_(a.status.in_(("booked", "arrived", "fulfilled")),
               and_(a.status.in_(domain.HOLD_STATUSES),
                    or_(a.hold_expires_at.is_(None), a.hold_expires_at > now)))


def _any_resource(provider_id: str, room_id: str | None, patient_id: str) -> Any:
    a = appointments.c
    terms = [a.provider_id == provider_id, a.patient_id == patient_id]
    if room_id:
        terms.append(a.room_id == room_id)
    return or_(*terms)
