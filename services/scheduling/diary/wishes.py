"""The waitlist: a patient's wish for an earlier visit, offered a freed slot that they
take or let go; offers that lapse are withdrawn.

Each use case runs inside the caller's transaction (`Diary.run`); the rules themselves
live in `domain.py` and `shared/availability.py`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.orm import Session

from services.scheduling.diary import booking, domain, roster
from services.scheduling.diary.context import (
    SYSTEM,
    Diary,
    Row,
    new_id,
)
from services.scheduling.diary.db import (
    appointments,
    waitlist,
)
from shared import availability as av
from shared.auth import Principal
from shared.errors import Conflict, InvalidInput, NotFound


def add_wish(d: Diary, s: Session, who: Principal, now: datetime, data: Row) -> Row:
    domain.check_discipline(data["discipline"])
    if data.get("earliest") and data.get("latest") and data["latest"] < data["earliest"]:
        raise InvalidInput("latest is before earliest", field="latest")
    if data.get("day_start") and data.get("day_end") and data["day_end"] <= data["day_start"]:
        raise InvalidInput("day_end is not after day_start", field="day_end")
    if data.get("provider_id"):
        p = roster.provider(d, s, data["provider_id"])
        if p["discipline"] != data["discipline"]:
            raise InvalidInput("that provider is of another discipline", field="provider_id")
    row = {"id": new_id(), "provider_id": None, "visit_type": "", "priority": "routine",
           "earliest": None, "latest": None, "weekdays": [], "day_start": None,
           "day_end": None, "referral_id": None, **data, "status": "waiting",
           "offered_appointment_id": None, "offer_expires_at": None,
           "created_by": who.subject, "created_at": now}
    s.execute(insert(waitlist).values(**row))
    d.audit(s, who, "add", row, resource="waitlist")
    return row


def wish(d: Diary, s: Session, wish_id: str) -> Row:
    row = s.execute(select(waitlist).where(waitlist.c.id == wish_id)).mappings().first()
    if row is None:
        raise NotFound(f"no waitlist entry {wish_id}")
    return dict(row)


def list_wishes(d: Diary, s: Session, *, discipline: str | None = None,
                status: str | None = None) -> list[Row]:
    q = select(waitlist).order_by(waitlist.c.created_at)
    if discipline:
        q = q.where(waitlist.c.discipline == discipline)
    if status:
        q = q.where(waitlist.c.status == status)
    return [dict(r) for r in s.execute(q).mappings()]


def offer_waitlist(d: Diary, s: Session, who: Principal, now: datetime, provider: Row,
                   opening: av.Interval, *, skip: Iterable[str] = ()) -> Row | None:
    """Offer a freed slot to the best-matching waiting patient: hold it for them
    (a proposed appointment that expires) and emit waitlist.offered."""
    if opening.start <= now or not provider["active"]:
        return None
    w = waitlist.c
    rows = s.execute(select(waitlist).where(
        w.discipline == provider["discipline"],
        or_(w.status == "waiting",
            and_(w.status == "offered", w.offer_expires_at <= now)))).mappings().all()
    skipped = set(skip)
    wishes = [_wish(r) for r in rows if r["id"] not in skipped]
    ranked = domain.rank_waitlist(wishes, opening, provider["discipline"], provider["id"],
                                  d.tz)
    expires = min(now + timedelta(hours=d.offer_hours), opening.start)
    for wish, visit in ranked:
        row = next(r for r in rows if r["id"] == wish.id)
        try:
            with s.begin_nested():
                appt = booking.book(d, s, who, now, {
                    "patient_id": wish.patient_id, "provider_id": provider["id"],
                    "start": visit.start, "minutes": wish.visit_minutes,
                    "visit_type": row["visit_type"], "status": "proposed",
                    "hold_minutes": (expires - now).total_seconds() / 60,
                    "referral_id": row["referral_id"]}, waitlist_id=wish.id, audit=False)
        except (Conflict, InvalidInput):
            continue  # that patient is busy then, or the slot no longer fits them
        s.execute(update(waitlist).where(w.id == wish.id).values(
            status="offered", offered_appointment_id=appt["id"],
            offer_expires_at=appt["hold_expires_at"]))
        d.emit(s, "waitlist.offered", {
            "waitlist_id": wish.id, "patient_id": wish.patient_id,
            "discipline": provider["discipline"], "provider_id": provider["id"],
            "provider_name": provider["name"], "start": visit.start.isoformat(),
            "end": visit.end.isoformat(),
            "offer_expires_at": appt["hold_expires_at"].isoformat()}, key=wish.patient_id)
        d.audit(s, who, "offer", {"id": wish.id, "patient_id": wish.patient_id},
                    resource="waitlist")
        return {**row, "status": "offered", "offered_appointment_id": appt["id"],
                "offer_expires_at": appt["hold_expires_at"]}
    return None


def answer_offer(d: Diary, s: Session, who: Principal, now: datetime, wish_id: str,
                 accept: bool) -> Row:
    """The patient takes the offered slot (it is booked) or turns it down (it goes to
    the next best match and they keep waiting)."""
    row = wish(d, s, wish_id)
    if row["status"] != "offered" or not row["offered_appointment_id"]:
        raise Conflict("this waitlist entry has no open offer")
    appt_id = row["offered_appointment_id"]
    if accept:
        appt = booking.change_status(d, s, who, now, appt_id, "booked")
        s.execute(update(waitlist).where(waitlist.c.id == wish_id).values(status="booked"))
        return {**row, "status": "booked", "appointment": appt}
    appt = booking.appointment(d, s, appt_id, lock=True)
    s.execute(update(waitlist).where(waitlist.c.id == wish_id).values(
        status="waiting", offered_appointment_id=None, offer_expires_at=None))
    if appt["status"] in domain.HOLD_STATUSES:
        s.execute(update(appointments).where(appointments.c.id == appt_id).values(
            status="cancelled", cancel_reason="waitlist offer declined",
            changed_by=who.subject, updated_at=now))
        offer_waitlist(d, s, who, now, roster.provider(d, s, appt["provider_id"]),
                            av.Interval(appt["start_at"], appt["end_at"]), skip=[wish_id])
    return {**row, "status": "waiting", "offered_appointment_id": None,
            "offer_expires_at": None}


def expire_holds(d: Diary, s: Session, now: datetime, *, limit: int = 200) -> int:
    """Release holds past their expiry (for a periodic job): an unanswered waitlist
    offer goes back to waiting and its slot to the next best match."""
    a = appointments.c
    q = select(appointments).where(a.status.in_(domain.HOLD_STATUSES),
                                   a.hold_expires_at.is_not(None),
                                   a.hold_expires_at <= now).order_by(a.start_at)
    expired = [dict(r) for r in s.execute(q.limit(limit).with_for_update()).mappings()]
    for appt in expired:
        s.execute(update(appointments).where(a.id == appt["id"]).values(
            status="cancelled", cancel_reason="hold expired", updated_at=now))
        if appt["waitlist_id"]:
            s.execute(update(waitlist).where(
                waitlist.c.id == appt["waitlist_id"],
                waitlist.c.offered_appointment_id == appt["id"]).values(
                status="waiting", offered_appointment_id=None, offer_expires_at=None))
            offer_waitlist(d, s, SYSTEM, now, roster.provider(d, s, appt["provider_id"]),
                                av.Interval(appt["start_at"], appt["end_at"]),
                                skip=[appt["waitlist_id"]])
    return len(expired)


def remove_wish(d: Diary, s: Session, who: Principal, wish_id: str) -> None:
    row = wish(d, s, wish_id)
    s.execute(update(waitlist).where(waitlist.c.id == wish_id).values(status="removed"))
    d.audit(s, who, "remove", row, resource="waitlist")


def _wish(r: Any) -> domain.Wish:
    return domain.Wish(
        id=r["id"], patient_id=r["patient_id"], discipline=r["discipline"],
        visit_minutes=r["visit_minutes"], priority=r["priority"], created_at=r["created_at"],
        provider_id=r["provider_id"], earliest=r["earliest"], latest=r["latest"],
        weekdays=tuple(r["weekdays"] or ()), day_start=r["day_start"], day_end=r["day_end"])
