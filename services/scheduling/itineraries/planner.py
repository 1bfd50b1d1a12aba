"""Itineraries on the clinic's real diary: the planner (the settings every itinerary use
case reads) and what they share. The use cases themselves are in `use_cases/`, one
module per step, each a function taking the `Planner` first; the pure search is in
`model.py`, `calendar.py`, `search.py`, `baseline.py` and `moves.py`.

- search: the clinic's free time (templates minus leave, closures, appointments and live
  holds, via the desk and `availability.py`) becomes a `ClinicCalendar`; the patient's
  own appointments and stated unavailable times become their busy time.
- propose: the best itinerary's visits are held as appointments with status "proposed",
  an `itinerary_id` and `hold_expires_at`. They are ordinary rows of the appointments
  table, so the database refuses the held time to everyone else exactly as it refuses a
  double booking (exclusion constraints on PostgreSQL; BEGIN IMMEDIATE on SQLite).
- confirm: every held visit becomes booked in one transaction, or none does. A visit
  whose slot was taken after its hold lapsed makes the whole itinerary be searched again
  and held anew; the caller is told what changed.
- cancel, move one visit (checked against the pathway's constraints), list the moves of
  a visit that the move would accept (one context, one check: what is offered is what is
  accepted), expire holds, and referral.accepted -> a proposal of our own (or
  itinerary.unplaceable + waitlist).

Every use case runs inside the caller's unit of work and takes `now` as a parameter.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, or_

from services.scheduling.diary import domain
from services.scheduling.diary.context import Diary
from services.scheduling.diary.db import appointments
from services.scheduling.itineraries.calendar import ClinicCalendar
from services.scheduling.itineraries.model import (
    BusyTime,
    CarePathway,
    ClinicHours,
    Itinerary,
    ObjectiveWeights,
    ScoreBreakdown,
    SearchRules,
    Visit,
)
from services.scheduling.itineraries.moves import check_move

Row = dict[str, Any]
RULE_FIELDS = ("min_gap_minutes", "max_gap_minutes", "interval_tolerance_days",
               "fallback_tolerance_days", "same_provider_required")
WEIGHT_FIELDS = tuple(ObjectiveWeights.__dataclass_fields__)
# Told to the patient with the booked itinerary (by discipline, once each).
WHAT_TO_BRING = {
    "pain_medicine": "A list of your current medicines and any recent scan or test results.",
    "physical_therapy": "Loose, comfortable clothes and trainers for exercise.",
    "psychology": "Any pain or mood diary you keep.",
    "acupuncture": "Clothing that lets the practitioner reach your arms and lower legs.",
}


@dataclass
class Ask:
    """What the search is asked: kept on the itinerary so that a lost hold can be searched
    again, and a move checked, against the very same constraints."""

    patient_id: str
    pathway: list[Row]
    earliest: datetime
    latest: datetime
    referral_id: str | None = None
    priority: str = "routine"
    due_by: date | None = None
    patient_busy: list[tuple[datetime, datetime]] = field(default_factory=list)
    rules: Row = field(default_factory=dict)
    weights: Row = field(default_factory=dict)


@dataclass
class Confirmation:
    """The outcome of a confirm: booked, or searched again (what changed and why)."""

    itinerary: Row
    booked: bool
    changes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class MoveContext:
    """One visit of an itinerary and everything a move of it is checked against: the
    clinic's free time, the patient's other time and the pathway's rules (the widened
    tolerance when the itinerary was placed at it)."""

    row: Row
    plan: list[Visit]
    index: int
    calendar: ClinicCalendar
    patient_busy: list[BusyTime]
    rules: SearchRules
    pathway: CarePathway

    @property
    def visit(self) -> Visit:
        return self.plan[self.index]

    def problems(self, moved: Visit) -> list[str]:
        """The pathway's constraints `moved` breaks (empty: the move is accepted)."""
        return check_move(Itinerary(tuple(self.plan), _NO_SCORE), self.index, moved,
                          pathway=self.pathway, calendar=self.calendar,
                          patient_busy=self.patient_busy, rules=self.rules)


def _minute(moment: datetime) -> int:
    return int(moment.timestamp()) // 60


class Planner:
    """The itinerary use cases' context: the diary (which owns booking and its checks),
    the clinic's hours, how long a hold lasts and how far a search looks."""

    def __init__(self, diary: Diary) -> None:
        self.diary = diary
        self.runtime = diary.runtime
        setting = self.runtime.settings.setting
        self.tz = diary.tz
        self.hold_minutes = float(setting("ITINERARY_HOLD_MINUTES", "15"))
        self.horizon_days = int(setting("ITINERARY_SEARCH_DAYS", "42"))
        self.hours = ClinicHours(
            self.runtime.settings.clinic_timezone,
            time.fromisoformat(setting("ITINERARY_CLINIC_OPENS", "08:00")),
            time.fromisoformat(setting("ITINERARY_CLINIC_CLOSES", "18:00")),
            frozenset(int(d) for d in setting("ITINERARY_CLINIC_WEEKDAYS", "0,1,2,3,4")
                      .split(",") if d.strip()))
        self.slot_minutes = int(setting("ITINERARY_SLOT_MINUTES", "15"))


_NO_SCORE = ScoreBreakdown(0, 0, 0, 0, 0, 0, 0.0)


def replace_window(ask: Ask, moments: list[datetime]) -> Ask:
    """The same ask over a window that covers the given moments (for the patient's time)."""
    return replace(ask, earliest=min([ask.earliest, *moments]),
                   latest=max([ask.latest, *moments]) + timedelta(days=1))


def taking_time(now: datetime) -> Any:
    """SQL: an appointment that takes its time now (booked or used, or held and the hold
    has not run out): the same rule as the desk's double-booking check."""
    a = appointments.c
    return or_(a.status.in_([st for st in domain.BLOCKING_STATUSES
                             if st not in domain.HOLD_STATUSES]),
               and_(a.status.in_(domain.HOLD_STATUSES),
                    or_(a.hold_expires_at.is_(None), a.hold_expires_at > now)))


def _planned(v: Row) -> Row:
    return {"appointment_id": v["appointment_id"], "discipline": v["discipline"],
            "provider_id": v["provider_id"], "provider_name": v["provider_name"],
            "room_id": v["room_id"], "room_name": v["room_name"],
            "start": v["start"].isoformat(), "end": v["end"].isoformat()}


def _label(discipline: str) -> str:
    return discipline.replace("_", " ").capitalize()


def _as_date(value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


