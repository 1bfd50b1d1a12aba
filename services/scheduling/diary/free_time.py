"""Free time: the stored templates, exceptions and bookings fed to the pure interval
sweep (`shared.availability`), for people and for rooms.

Each use case runs inside the caller's transaction (`Diary.run`); the rules themselves
live in `domain.py` and `shared/availability.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.scheduling.diary import booking, domain, roster, templates
from services.scheduling.diary.context import (
    Diary,
    Row,
)
from services.scheduling.diary.db import (
    appointments,
)
from shared import availability as av
from shared.errors import Conflict, InvalidInput


def availability(d: Diary, s: Session, now: datetime, *, first_day: date, last_day: date,
                 minutes: int, discipline: str | None = None,
                 provider_id: str | None = None, visit_type: str = "",
                 step_minutes: int = 15, with_room: bool = False) -> list[Row]:
    """Free time and fitting slots per provider over local dates first..last; with
    `with_room`, only the slots where a room fit for the visit is free too."""
    if last_day < first_day:
        raise InvalidInput("to is before from", field="to")
    if (last_day - first_day).days > 184:
        raise InvalidInput("ask for at most six months at a time", field="to")
    if provider_id:
        chosen = [roster.provider(d, s, provider_id)]
    else:
        chosen = roster.list_providers(d, s, discipline=discipline)
    if discipline:
        chosen = [p for p in chosen if p["discipline"] == discipline]
    if visit_type:
        chosen = [p for p in chosen if not p["visit_types"] or visit_type in p["visit_types"]]
    ids = [p["id"] for p in chosen]
    if not ids:
        return []
    span = av.local_days(first_day, last_day, d.tz)
    blocks, closed, busy = (templates.blocks(d, s, ids), templates.closed(d, s, ids, span),
                            templates.busy(d, s, ids, span, now))
    all_rooms = [r for r in roster.list_rooms(d, s) if r["active"]] if with_room else []
    rooms_taken = room_busy(d, s, [r["id"] for r in all_rooms], span, now)
    out = []
    for p in chosen:
        free = av.free_time(blocks.get(p["id"], []), first_day, last_day, d.tz,
                            closed=closed[p["id"]], busy=busy[p["id"]], not_before=now)
        if with_room:
            fitting = [r["id"] for r in all_rooms
                       if domain.room_fits(r["fit_for"], p["discipline"], visit_type)]
            found = {slot for rid in fitting for slot in av.slots(
                av.subtract(free, rooms_taken[rid]), minutes, d.tz,
                step_minutes=step_minutes)}
            fitting_slots = sorted(found)
        else:
            fitting_slots = av.slots(free, minutes, d.tz, step_minutes=step_minutes)
        out.append({"provider_id": p["id"], "provider_name": p["name"],
                    "discipline": p["discipline"], "free": free, "slots": fitting_slots})
    return out


def room_busy(d: Diary, s: Session, room_ids: Sequence[str], span: av.Interval,
              now: datetime) -> dict[str, list[av.Interval]]:
    a = appointments.c
    out: dict[str, list[av.Interval]] = {r: [] for r in room_ids}
    if not room_ids:
        return out
    q = select(a.room_id, a.start_at, a.end_at).where(
        a.room_id.in_(room_ids), a.start_at < span.end, a.end_at > span.start,
        booking.blocking(now))
    for rid, start, end in s.execute(q):
        out[rid].append(av.Interval(start, end))
    return out


def free_room(d: Diary, s: Session, now: datetime, visit: av.Interval, discipline: str,
              visit_type: str) -> Row:
    """The first room (by name) fit for the visit and free for all of it."""
    candidates = [r for r in roster.list_rooms(d, s) if r["active"]
                  and domain.room_fits(r["fit_for"], discipline, visit_type)]
    busy = room_busy(d, s, [r["id"] for r in candidates], visit, now)
    for room in candidates:
        if not any(b.overlaps(visit) for b in busy[room["id"]]):
            return room
    raise Conflict(f"no room fit for {visit_type or discipline} is free from "
                   f"{d.local(visit.start)} to {visit.end.astimezone(d.tz):%H:%M}")


def working_free(d: Diary, s: Session, provider_id: str, visit: av.Interval) -> list[av.Interval]:
    """The provider's working time around a visit, minus leave and closures."""
    first = visit.start.astimezone(d.tz).date()
    last = visit.end.astimezone(d.tz).date()
    span = av.local_days(first, last, d.tz)
    return av.free_time(templates.blocks(d, s, [provider_id]).get(provider_id, []), first, last,
                        d.tz, closed=templates.closed(d, s, [provider_id], span)[provider_id])
