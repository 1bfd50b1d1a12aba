"""A series: the same visit weekly or fortnightly, booked all together or not at all.

Each use case runs inside the caller's transaction (`Diary.run`); the rules themselves
live in `domain.py` and `shared/availability.py`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from services.scheduling.diary import booking, domain, roster
from services.scheduling.diary.context import (
    Diary,
    Row,
    new_id,
)
from services.scheduling.diary.db import (
    appointments,
    series,
)
from shared.auth import Principal
from shared.errors import Conflict, InvalidInput, NotFound


def book_series(d: Diary, s: Session, who: Principal, now: datetime, cmd: Row) -> Row:
    """Book every occurrence that can be placed; report the ones that cannot."""
    provider = roster.provider(d, s, cmd["provider_id"])
    planned = domain.plan_series(cmd["first_start"], cmd["minutes"], cmd["interval_days"],
                                 cmd["count"], d.tz)
    series_id = new_id()
    s.execute(insert(series).values(
        id=series_id, patient_id=cmd["patient_id"], provider_id=provider["id"],
        visit_type=cmd.get("visit_type", ""), minutes=cmd["minutes"],
        interval_days=cmd["interval_days"], count=cmd["count"], unplaced=[],
        created_by=who.subject, created_at=now))
    booked, unplaced = [], []
    for i, visit in enumerate(planned):
        try:
            with s.begin_nested():
                booked.append(booking.book(d, s, who, now, {
                    **cmd, "start": visit.start, "status": "booked"},
                    series_id=series_id, audit=False))
        except (Conflict, InvalidInput) as exc:
            unplaced.append({"occurrence": i + 1, "start": visit.start.isoformat(),
                             "end": visit.end.isoformat(), "reason": exc.detail})
    if not booked:
        raise Conflict("no occurrence of the series could be placed",
                       errors={f"occurrence.{u['occurrence']}": [u["reason"]]
                               for u in unplaced})
    s.execute(update(series).where(series.c.id == series_id).values(unplaced=unplaced))
    d.audit(s, who, "book_series", patient_id=cmd["patient_id"], resource="series")
    return {"id": series_id, "patient_id": cmd["patient_id"],
            "provider_id": provider["id"], "booked": booked, "unplaced": unplaced}


def get_series(d: Diary, s: Session, series_id: str) -> Row:
    row = s.execute(select(series).where(series.c.id == series_id)).mappings().first()
    if row is None:
        raise NotFound(f"no series {series_id}")
    appts = [dict(r) for r in s.execute(
        select(appointments).where(appointments.c.series_id == series_id)
        .order_by(appointments.c.start_at)).mappings()]
    return {"id": row["id"], "patient_id": row["patient_id"],
            "provider_id": row["provider_id"], "booked": appts, "unplaced": row["unplaced"]}
