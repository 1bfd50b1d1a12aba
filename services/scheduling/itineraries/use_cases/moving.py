"""Move one visit, checked against the pathway's constraints, and list the moves of a
visit that the move would accept (one context, one check)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from services.scheduling.diary import booking, roster
from services.scheduling.itineraries.calendar import ClinicCalendar
from services.scheduling.itineraries.db import itineraries
from services.scheduling.itineraries.model import (
    WIDENED_NOTE,
    CarePathway,
    Visit,
)
from services.scheduling.itineraries.planner import (
    MoveContext,
    Planner,
    Row,
    _label,
    _minute,
    replace_window,
)
from services.scheduling.itineraries.use_cases import (
    reading,
    searching,
)
from shared import availability as av
from shared.auth import Principal
from shared.errors import Conflict, InvalidInput, NotFound


def _move_context(planner: Planner, s: Session, now: datetime, itinerary_id: str,
                  appointment_id: str, reach: Callable[[Visit], list[datetime]], *,
                  lock: bool = False
                  ) -> MoveContext:
    """What a move of one visit is checked against, built once: the single place both
    the move and the offered moves take their rules from, so the console can never
    offer a slot the move then refuses. `reach(visit)`: the moments the move may go
    to (the calendar and the patient's time are read over them and the plan)."""
    row = reading.itinerary_row(planner, s, itinerary_id, lock=lock)
    if row["status"] not in ("proposed", "booked"):
        raise Conflict(f"a visit of a {row['status']} itinerary cannot be moved")
    pairs = reading.visits_of(planner, s, itinerary_id)
    plan = [Visit(v["discipline"], a["provider_id"], a["room_id"], a["start_at"],
                  a["end_at"], v["session_index"]) for v, a in pairs]
    index = next((k for k, (_v, a) in enumerate(pairs) if a["id"] == appointment_id), None)
    if index is None:
        raise NotFound(f"appointment {appointment_id} is not part of itinerary "
                       f"{itinerary_id}")
    ask = reading.ask_of(planner, row)
    moments = [v.start for v in plan] + reach(plan[index])
    calendar = searching.clinic_calendar(planner, s, now, [st["discipline"] for st in ask.pathway],
                             max(now, min(moments)), max(moments) + timedelta(days=1))
    busy = searching.patient_busy(planner, s, now, replace_window(ask, moments),
                             except_itinerary=itinerary_id)
    rules = searching.rules_of(planner, ask)
    if rules.fallback_tolerance_days and any(
            n.startswith(WIDENED_NOTE) for n in row["notes"]):
        # it was placed at the wider tolerance: check the move against that one
        rules = replace(rules, interval_tolerance_days=rules.fallback_tolerance_days)
    return MoveContext(row, plan, index, calendar, busy, rules,
                       CarePathway.from_payload(ask.pathway))


def _moved(planner: Planner, ctx: MoveContext, start: datetime, provider_id: str | None,
           room_id: str | None) -> Visit:
    """The visit as it would be at `start` (with this provider), in the room the move
    would take."""
    old = ctx.visit
    start = start.astimezone(UTC)
    moved = Visit(old.discipline, provider_id or old.provider_id, old.room_id, start,
                  start + (old.end - old.start), old.session_index)
    if ctx.calendar.rooms:
        moved = replace(moved, room_id=_room_for(planner, ctx.calendar, old, moved, room_id))
    return moved


def move(planner: Planner, s: Session, who: Principal, now: datetime, itinerary_id: str,
         appointment_id: str, cmd: Row) -> Row:
    """Move one visit (time, provider, room) only where the pathway's constraints still
    hold: order, gaps, intervals, continuity, room fitness, the patient's time."""
    start = cmd["start"].astimezone(UTC)
    ctx = _move_context(planner, s, now, itinerary_id, appointment_id, lambda _old: [start],
                             lock=True)
    moved = _moved(planner, ctx, start, cmd.get("provider_id"), cmd.get("room_id"))
    problems = ctx.problems(moved)
    if problems:
        raise Conflict("the move breaks the itinerary's constraints: " + " ".join(problems),
                       errors={"start": problems})
    booking.reschedule(planner.diary, s, who, now, appointment_id, {
        "start": moved.start, "provider_id": moved.provider_id, "room_id": moved.room_id})
    s.execute(update(itineraries).where(itineraries.c.id == itinerary_id).values(
        updated_at=now))
    return reading.view(planner, s, now, itinerary_id)


def moves(planner: Planner, s: Session, who: Principal, now: datetime, itinerary_id: str,
          appointment_id: str, *, provider_id: str | None = None, days: int = 2,
          step_minutes: int = 30) -> list[Row]:
    """The moves of one visit that `move` would accept, within `days` of its day, on a
    grid of `step_minutes` from each clinic day's opening: what the console offers."""
    tz = planner.tz

    def reach(old: Visit) -> list[datetime]:
        day = old.start.astimezone(tz).date()
        return [av.local_to_utc(day - timedelta(days=days), time(0), tz),
                max(now, av.local_to_utc(day + timedelta(days=days), time(0), tz))]

    ctx = _move_context(planner, s, now, itinerary_id, appointment_id, reach)
    old = ctx.visit
    provider = provider_id or old.provider_id
    if provider != old.provider_id and not any(
            p["id"] == provider for p in roster.list_providers(planner.diary,
                s, discipline=old.discipline)):
        raise InvalidInput(f"{provider} is not an active {_label(old.discipline)} "
                           "provider", field="query.provider_id")
    length = old.end - old.start
    first = old.start.astimezone(tz).date() - timedelta(days=days)
    options: list[Row] = []
    for k in range(2 * days + 1):
        bounds = ctx.calendar.bounds((first + timedelta(days=k)).toordinal())
        if bounds is None:
            continue
        opens, closes = (datetime.fromtimestamp(m * 60, UTC) for m in bounds)
        start = opens
        while start + length <= closes:
            if start > now and not (start == old.start and provider == old.provider_id):
                moved = _moved(planner, ctx, start, provider, None)
                if not ctx.problems(moved):
                    options.append({"start": moved.start, "end": moved.end,
                                    "provider_id": moved.provider_id,
                                    "room_id": moved.room_id})
            start += timedelta(minutes=step_minutes)
    planner.runtime.audit.record(s, who, "moves", "itinerary", resource_id=itinerary_id,
                              patient_id=ctx.row["patient_id"])
    return options


def _room_for(planner: Planner, calendar: ClinicCalendar, old: Visit, moved: Visit,
              asked: str | None) -> str | None:
    """The room asked for; else the visit's own room if it is still free then; else
    the first fit free room."""
    if asked:
        return asked
    a, b = _minute(moved.start), _minute(moved.end)
    if old.room_id in calendar.rooms:
        also = [(_minute(old.start), _minute(old.end))]
        if moved.discipline in calendar.rooms[old.room_id].fit_for and \
                calendar.room_is_free(old.room_id, a, b, also):
            return old.room_id
    return calendar.room_for(moved.discipline, calendar.day_of(a), a, b - a) or old.room_id
