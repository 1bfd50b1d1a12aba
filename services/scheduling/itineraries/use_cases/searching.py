"""Asking and searching: an API body or event payload becomes an `Ask`; the clinic's free
time becomes a `ClinicCalendar`; the pure search returns the best itineraries."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from services.scheduling.diary import domain, roster, templates
from services.scheduling.diary.db import appointments, exceptions
from services.scheduling.itineraries.calendar import ClinicCalendar
from services.scheduling.itineraries.model import (
    BusyTime,
    CarePathway,
    FreeInterval,
    Itinerary,
    ObjectiveWeights,
    Room,
    RoomFreeInterval,
    SearchRules,
    Unplaceable,
)
from services.scheduling.itineraries.planner import (
    RULE_FIELDS,
    WEIGHT_FIELDS,
    Ask,
    Planner,
    Row,
    taking_time,
)
from services.scheduling.itineraries.search import search_itineraries
from services.scheduling.itineraries.use_cases import (
    reading,
)
from shared import availability as av
from shared.errors import InvalidInput
from shared.events.vocabulary import DISCIPLINES


def ask(planner: Planner, now: datetime, data: Row) -> Ask:
    """An Ask from an API body or an event payload: local dates from/to become the
    window (never before now); without `to` the window spans the longest series."""
    steps = [dict(s) for s in data["pathway"]]
    for step in steps:
        domain.check_discipline(step["discipline"])
        step["after"] = list(step.get("after") or [])
    first_day: date | None = data.get("first_day")
    last_day: date | None = data.get("last_day")
    earliest = now if first_day is None else max(
        now, av.local_to_utc(first_day, time(0), planner.tz))
    if last_day is None:
        span = max(((s.get("sessions", 1) - 1) * (s.get("interval_days", 0) + 3)
                    for s in steps), default=0) + 14
        last_day = earliest.astimezone(planner.tz).date() + timedelta(
            days=min(max(planner.horizon_days, span), 190))
    latest = av.local_to_utc(last_day + timedelta(days=1), time(0), planner.tz)
    if latest <= earliest:
        raise InvalidInput("the window ends before it starts (or has passed)", field="to")
    if (latest - earliest).days > 200:
        raise InvalidInput("search at most 200 days at a time", field="to")
    busy = [(b["start"].astimezone(UTC), b["end"].astimezone(UTC))
            for b in data.get("unavailable") or ()]
    return Ask(patient_id=data["patient_id"], pathway=steps, earliest=earliest,
               latest=latest, referral_id=data.get("referral_id"),
               priority=data.get("priority") or "routine", due_by=data.get("due_by"),
               patient_busy=busy,
               rules={k: v for k, v in (data.get("rules") or {}).items()
                      if k in RULE_FIELDS},
               weights={k: v for k, v in (data.get("weights") or {}).items()
                        if k in WEIGHT_FIELDS})


def rules_of(planner: Planner, ask: Ask) -> SearchRules:
    return SearchRules(**ask.rules, slot_minutes=planner.slot_minutes)


def clinic_calendar(planner: Planner, s: Session, now: datetime, disciplines: list[str],
                    earliest: datetime, latest: datetime) -> ClinicCalendar:
    """Free time of the disciplines' active providers and of the active rooms, as the
    desk sees it now (live holds and bookings taken out)."""
    first = earliest.astimezone(planner.tz).date()
    last = (latest - timedelta(microseconds=1)).astimezone(planner.tz).date()
    span = av.local_days(first, last, planner.tz)
    chosen = [p for p in roster.list_providers(planner.diary, s) if p["discipline"] in disciplines]
    ids = [p["id"] for p in chosen]
    free: list[FreeInterval] = []
    if ids:
        blocks = templates.blocks(planner.diary, s, ids)
        closed = templates.closed(planner.diary, s, ids, span)
        busy = templates.busy(planner.diary, s, ids, span, now)
        for p in chosen:
            for iv in av.free_time(blocks.get(p["id"], []), first, last, planner.tz,
                                   closed=closed[p["id"]], busy=busy[p["id"]],
                                   not_before=now):
                free.append(FreeInterval(p["id"], p["discipline"], iv.start, iv.end))
    room_rows = [r for r in roster.list_rooms(planner.diary, s) if r["active"]]
    room_list = [Room(r["id"], frozenset(d for d in (r["fit_for"] or DISCIPLINES)
                                         if d in DISCIPLINES)) for r in room_rows]
    room_free: list[RoomFreeInterval] = []
    if room_rows:
        e, a = exceptions.c, appointments.c
        closures = [av.Interval(x, y) for x, y in s.execute(
            select(e.start_at, e.end_at).where(
                e.provider_id.is_(None), e.start_at < span.end, e.end_at > span.start))]
        taken: dict[str, list[av.Interval]] = {r["id"]: [] for r in room_rows}
        for rid, x, y in s.execute(select(a.room_id, a.start_at, a.end_at).where(
                a.room_id.in_(list(taken)), a.start_at < span.end, a.end_at > span.start,
                taking_time(now))):
            taken[rid].append(av.Interval(x, y))
        base = [av.Interval(max(span.start, now), span.end)] if span.end > now else []
        for rid, busy_room in taken.items():
            for iv in av.subtract(base, [*closures, *busy_room]):
                room_free.append(RoomFreeInterval(rid, iv.start, iv.end))
    return ClinicCalendar(planner.hours, free, room_list, room_free)


def patient_busy(planner: Planner, s: Session, now: datetime, ask: Ask, *,
                 except_itinerary: str | None = None) -> list[BusyTime]:
    """The patient's stated unavailable times and their own live appointments."""
    a = appointments.c
    q = select(a.start_at, a.end_at).where(
        a.patient_id == ask.patient_id, a.start_at < ask.latest, a.end_at > ask.earliest,
        taking_time(now))
    if except_itinerary:
        q = q.where(or_(a.itinerary_id.is_(None), a.itinerary_id != except_itinerary))
    return ([BusyTime(x, y) for x, y in ask.patient_busy]
            + [BusyTime(x, y) for x, y in s.execute(q)])


def search_calendar(planner: Planner, s: Session, now: datetime, ask: Ask, top_k: int
            ) -> tuple[list[Itinerary] | Unplaceable, ClinicCalendar]:
    pathway = CarePathway.from_payload(ask.pathway)
    earliest = max(ask.earliest, now)
    if earliest >= ask.latest:
        return Unplaceable(("The search window has passed.",)), ClinicCalendar(planner.hours, [])
    calendar = clinic_calendar(planner, s, now, [st.discipline for st in pathway.steps], earliest,
                             ask.latest)
    found = search_itineraries(
        pathway, calendar, earliest=earliest, latest=ask.latest,
        patient_busy=patient_busy(planner, s, now, ask), due_by=ask.due_by,
        rules=rules_of(planner, ask), weights=ObjectiveWeights(**ask.weights), top_k=top_k)
    return found, calendar


def search(planner: Planner, s: Session, now: datetime, ask: Ask, top_k: int = 3) -> Row:
    """The best few itineraries, best first, each with its score and notes (nothing is
    held), or the reasons none fits."""
    found, _cal = search_calendar(planner, s, now, ask, top_k)
    if isinstance(found, Unplaceable):
        return {"itineraries": [], "unplaceable": list(found.reasons)}
    names = reading.place_names(planner, s)
    return {"itineraries": [reading.plan_view(planner, it, rank, names)
                            for rank, it in enumerate(found, 1)],
            "unplaceable": []}
