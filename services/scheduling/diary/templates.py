"""Weekly templates and their exceptions (leave, closures), and the capacity they
give each provider (`provider.capacity_changed`, read by the dashboard).

Each use case runs inside the caller's transaction (`Diary.run`); the rules themselves
live in `domain.py` and `shared/availability.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import delete, insert, or_, select
from sqlalchemy.orm import Session

from services.scheduling.diary import booking, roster
from services.scheduling.diary.context import (
    CAPACITY_HISTORY,
    CAPACITY_MAX_EXCEPTIONS,
    Diary,
    Row,
    new_id,
)
from services.scheduling.diary.db import (
    appointments,
    exceptions,
    template_blocks,
)
from shared import availability as av
from shared.auth import Principal
from shared.errors import InvalidInput, NotFound


def set_template(d: Diary, s: Session, provider_id: str, blocks: Sequence[Row],
                 now: datetime | None = None) -> list[Row]:
    """Replace a provider's weekly template; blocks of one weekday may not overlap.
    Publishes the provider's capacity in the same transaction."""
    provider = roster.provider(d, s, provider_id)
    parsed = [av.WeeklyBlock(b["weekday"], b["start"], b["end"], b.get("valid_from"),
                             b.get("valid_until")) for b in blocks]
    for i, a in enumerate(parsed):
        if a.end <= a.start:
            raise InvalidInput("a block ends after it starts", field=f"blocks.{i}")
        for b in parsed[:i]:
            if (a.weekday == b.weekday and a.start < b.end and b.start < a.end
                    and _validity_overlaps(a, b)):
                raise InvalidInput("two blocks of one weekday overlap", field=f"blocks.{i}")
    s.execute(delete(template_blocks).where(template_blocks.c.provider_id == provider_id))
    if parsed:
        s.execute(insert(template_blocks), [
            {"provider_id": provider_id, "weekday": b.weekday, "start_time": b.start,
             "end_time": b.end, "valid_from": b.valid_from, "valid_until": b.valid_until}
            for b in parsed])
    publish_capacity(d, s, [provider], now or d.clock())
    return template(d, s, provider_id)


def template(d: Diary, s: Session, provider_id: str) -> list[Row]:
    weekly = blocks(d, s, [provider_id]).get(provider_id, [])
    return [{"weekday": b.weekday, "start": b.start, "end": b.end,
             "valid_from": b.valid_from, "valid_until": b.valid_until} for b in weekly]


def blocks(d: Diary, s: Session, provider_ids: Sequence[str]) -> dict[str, list[av.WeeklyBlock]]:
    q = select(template_blocks).where(template_blocks.c.provider_id.in_(provider_ids)) \
        .order_by(template_blocks.c.weekday, template_blocks.c.start_time)
    out: dict[str, list[av.WeeklyBlock]] = {}
    for r in s.execute(q).mappings():
        out.setdefault(r["provider_id"], []).append(av.WeeklyBlock(
            r["weekday"], r["start_time"], r["end_time"], r["valid_from"], r["valid_until"]))
    return out


def add_exception(d: Diary, s: Session, who: Principal, data: Row, now: datetime) -> Row:
    """Leave, training or sickness of one provider, or a closure of the whole clinic;
    given as instants, or as whole local days (first_day..last_day)."""
    if data.get("provider_id"):
        roster.provider(d, s, data["provider_id"])
    elif data["kind"] != "closure":
        raise InvalidInput("only a clinic closure has no provider", field="provider_id")
    if data.get("first_day"):
        last_day = data.get("last_day") or data["first_day"]
        if last_day < data["first_day"]:
            raise InvalidInput("last_day is before first_day", field="last_day")
        span = av.local_days(data["first_day"], last_day, d.tz)
    elif data.get("start") and data.get("end"):
        if data["end"] <= data["start"]:  # before an Interval, which refuses it too
            raise InvalidInput("an exception ends after it starts", field="end")
        span = av.Interval(data["start"].astimezone(UTC), data["end"].astimezone(UTC))
    else:
        raise InvalidInput("give first_day (and last_day), or start and end", field="start")
    row = {"id": new_id(), "provider_id": data.get("provider_id"), "kind": data["kind"],
           "start_at": span.start, "end_at": span.end, "note": data.get("note", ""),
           "created_by": who.subject, "created_at": now}
    s.execute(insert(exceptions).values(**row))
    _capacity_changed(d, s, row["provider_id"], now)
    return row


def list_exceptions(d: Diary, s: Session, *, provider_id: str | None, span: av.Interval
                    ) -> list[Row]:
    q = select(exceptions).where(exceptions.c.start_at < span.end,
                                 exceptions.c.end_at > span.start)
    if provider_id:
        q = q.where(or_(exceptions.c.provider_id == provider_id,
                        exceptions.c.provider_id.is_(None)))
    return [dict(r) for r in s.execute(q.order_by(exceptions.c.start_at)).mappings()]


def remove_exception(d: Diary, s: Session, exception_id: str,
                     now: datetime | None = None) -> None:
    found = s.execute(select(exceptions.c.provider_id).where(
        exceptions.c.id == exception_id)).first()
    if found is None or not s.execute(
            delete(exceptions).where(exceptions.c.id == exception_id)).rowcount:
        raise NotFound(f"no exception {exception_id}")
    _capacity_changed(d, s, found[0], now or d.clock())


def _capacity_changed(d: Diary, s: Session, provider_id: str | None, now: datetime) -> None:
    """A provider's leave changes their capacity; a clinic closure everyone's."""
    if provider_id:
        publish_capacity(d, s, [roster.provider(d, s, provider_id)], now)
    else:
        publish_capacity(d, s, roster.list_providers(d, s, active=None), now)


def publish_capacity(d: Diary, s: Session, provider_rows: Sequence[Row], now: datetime
                     ) -> None:
    """Emit provider.capacity_changed (keyed by provider id) for each provider: the
    whole weekly template and every exception (own leave and clinic closures) that
    ends after CAPACITY_HISTORY before now, so the dashboard can count the minutes
    available in any window from now on without reading this service's tables."""
    if not provider_rows:
        return
    since = now - CAPACITY_HISTORY
    ids = [p["id"] for p in provider_rows]
    weekly = blocks(d, s, ids)
    q = select(exceptions).where(
        exceptions.c.end_at > since,
        or_(exceptions.c.provider_id.in_(ids), exceptions.c.provider_id.is_(None))
    ).order_by(exceptions.c.start_at, exceptions.c.id)
    time_off: dict[str | None, list[Row]] = {}
    for r in s.execute(q).mappings():
        time_off.setdefault(r["provider_id"], []).append(
            {"exception_id": r["id"], "kind": r["kind"],
             "clinic_wide": r["provider_id"] is None,
             "start": r["start_at"], "end": r["end_at"]})
    for p in provider_rows:
        own = sorted([*time_off.get(p["id"], []), *time_off.get(None, [])],
                     key=lambda e: (e["start"], e["exception_id"]))
        d.emit(s, "provider.capacity_changed", {
            "provider_id": p["id"], "discipline": p["discipline"],
            "timezone": str(d.tz),
            "blocks": [{"weekday": b.weekday, "start": b.start, "end": b.end,
                        "valid_from": b.valid_from, "valid_until": b.valid_until}
                       for b in weekly.get(p["id"], [])],
            "exceptions": own[:CAPACITY_MAX_EXCEPTIONS],
            "exceptions_since": since}, key=p["id"])


def closed(d: Diary, s: Session, provider_ids: Sequence[str], span: av.Interval
           ) -> dict[str, list[av.Interval]]:
    """Each provider's leave, plus clinic closures for everyone."""
    q = select(exceptions.c.provider_id, exceptions.c.start_at, exceptions.c.end_at).where(
        exceptions.c.start_at < span.end, exceptions.c.end_at > span.start,
        or_(exceptions.c.provider_id.in_(provider_ids), exceptions.c.provider_id.is_(None)))
    out: dict[str, list[av.Interval]] = {p: [] for p in provider_ids}
    for pid, start, end in s.execute(q):
        for target in ([pid] if pid else provider_ids):
            out.setdefault(target, []).append(av.Interval(start, end))
    return out


def busy(d: Diary, s: Session, provider_ids: Sequence[str], span: av.Interval, now: datetime
         ) -> dict[str, list[av.Interval]]:
    a = appointments.c
    q = select(a.provider_id, a.start_at, a.end_at).where(
        a.provider_id.in_(provider_ids), a.start_at < span.end, a.end_at > span.start,
        booking.blocking(now))
    out: dict[str, list[av.Interval]] = {p: [] for p in provider_ids}
    for pid, start, end in s.execute(q):
        out[pid].append(av.Interval(start, end))
    return out


def _validity_overlaps(a: av.WeeklyBlock, b: av.WeeklyBlock) -> bool:
    return ((a.valid_until is None or b.valid_from is None or b.valid_from <= a.valid_until)
            and (b.valid_until is None or a.valid_from is None or a.valid_from <= b.valid_until))
