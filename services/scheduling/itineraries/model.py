"""Multi-specialty itinerary search: one referral's care pathway laid onto the clinic's free time.

Pure (no Flask, SQLAlchemy or Kafka): the integrator feeds it the providers' and rooms' free
time, the patient's busy times and the clinic hours, and books what it returns.

How it searches
  1. First visit. On the earliest clinic day E on which the first discipline(s) of the
     pathway can be seen, look for a same-day cluster: one visit per discipline, in
     clinical order (the pathway's ``after`` constraints), each gap between two visits
     within [min_gap, max_gap] minutes, each visit in a fit room when rooms are given
     (a dynamic programme over (disciplines seen, end time), least waiting wins).
     Where capacity does not allow it, fall back and say why: split the first visit over
     several days (as many disciplines as fit on E, the rest on the next days that have
     them), and also offer a full same-day cluster on a later day when one exists.
  2. Follow-up series. A beam search places one session at a time (the discipline whose
     interval window closes first goes next), each session ``interval_days`` after the
     previous one of its discipline, within +/- ``interval_tolerance_days``. It prefers
     days the patient already comes (fewer trips), then new days that other disciplines'
     windows also cover, the series' own provider (continuity), and slots next to the
     day's other visits (least waiting).
     A local-improvement pass then moves a follow-up that is alone on its day onto another
     trip day when its intervals allow it and the objective improves. When no itinerary
     keeps the tolerance and ``fallback_tolerance_days`` is set, the follow-ups are searched
     again at that wider tolerance, and the itinerary's notes say so.
  3. Every complete itinerary is scored with the objective below; the best ``top_k``
     distinct ones are returned (each with its score breakdown and notes explaining any
     fallback), or ``Unplaceable`` with the reasons.

Inputs are aware datetimes; inside, time is integer UTC minutes and a day's possible start
times (every ``slot_minutes`` from opening) are bits of an int, so "which providers can start
within 60 minutes of this visit's end" is one AND. ``ClinicCalendar`` indexes the free time
once; ``check_move`` re-validates an itinerary after the scheduler moves one visit.

The objective (lower is better), weights in ``ObjectiveWeights``:
    days_to_first_visit * (first visit date - earliest date, in days)
  + trips               * (number of distinct days the patient comes to the clinic)
  + waiting_minutes     * (minutes between consecutive visits on the same day, summed)
  + provider_changes    * (follow-up sessions not with the discipline's first-session provider)
  + target_breach_days  * (days the first visit falls after the referral's due_by date)
  + interval_drift_days * (sum over sessions of |actual - planned interval| in days)
The defaults weigh a day of delay to the first visit (25) above the three trips a
four-discipline same-day cluster saves (3 * 8): the first visit is never later than the
earliest possible one just to cluster it (unless no itinerary from that day completes);
lower ``days_to_first_visit`` to trade days for trips.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any

CLINICAL_ORDER = ("pain_medicine", "physical_therapy", "psychology", "acupuncture")
# How an itinerary's notes begin when it was placed at the fallback tolerance.
WIDENED_NOTE = "No itinerary keeps every follow-up"

# ---------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FreeInterval:
    """A stretch of a provider's free time (aware datetimes)."""

    provider_id: str
    discipline: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Room:
    """A room and the disciplines it is fit for (a gym for physical therapy...)."""

    room_id: str
    fit_for: frozenset[str]


@dataclass(frozen=True)
class RoomFreeInterval:
    """A stretch of a room's free time (aware datetimes)."""

    room_id: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class BusyTime:
    """A time the patient cannot come (work, dialysis, another appointment)."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class ClinicHours:
    """When the clinic is open, in its own timezone (DST handled per day)."""

    timezone: str
    opens: time
    closes: time
    weekdays: frozenset[int] = frozenset(range(5))


@dataclass(frozen=True)
class PathwayStep:
    """One discipline's part of the care pathway (mirrors the referral event's PathwayStep)."""

    discipline: str
    visit_minutes: int
    sessions: int = 1
    interval_days: int = 0
    after: tuple[str, ...] = ()


@dataclass(frozen=True)
class CarePathway:
    """The disciplines to book; ``after`` orders the first visits (pain medicine first)."""

    steps: tuple[PathwayStep, ...]

    @classmethod
    def from_payload(cls, steps: Iterable[Mapping[str, Any]]) -> CarePathway:
        """Build from the ``pathway`` list of a referral.accepted payload."""
        return cls(tuple(
            PathwayStep(s["discipline"], int(s["visit_minutes"]), int(s.get("sessions", 1)),
                        int(s.get("interval_days", 0)), tuple(s.get("after") or ()))
            for s in steps))

    def step(self, discipline: str) -> PathwayStep:
        for s in self.steps:
            if s.discipline == discipline:
                return s
        raise KeyError(discipline)


@dataclass(frozen=True)
class SearchRules:
    """Hard constraints and search effort.

    ``fallback_tolerance_days``: when no itinerary keeps every follow-up within
    ``interval_tolerance_days``, search once more at this wider tolerance (None: never) and
    say so in the itinerary's notes; check_move must then be given the wider rules.
    ``slot_minutes`` is the grid of start times; ``beam_width`` and ``day_choices`` the effort;
    ``later_cluster_days``: how far past the earliest first visit to look for a full same-day
    cluster when the earliest day cannot hold one.
    """

    min_gap_minutes: int = 0
    max_gap_minutes: int = 60
    interval_tolerance_days: int = 2
    fallback_tolerance_days: int | None = None
    same_provider_required: bool = False
    slot_minutes: int = 5
    beam_width: int = 5
    day_choices: int = 2
    later_cluster_days: int = 10


@dataclass(frozen=True)
class ObjectiveWeights:
    """The written-down objective (see the module docstring); lower totals rank first."""

    days_to_first_visit: float = 25.0
    trips: float = 8.0
    waiting_minutes: float = 0.1
    provider_changes: float = 4.0
    target_breach_days: float = 100.0
    interval_drift_days: float = 1.0


# ---------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Visit:
    """One booked-to-be visit; session_index counts from 1 (the first visit) per discipline."""

    discipline: str
    provider_id: str
    room_id: str | None
    start: datetime
    end: datetime
    session_index: int


@dataclass(frozen=True)
class ScoreBreakdown:
    """Each term of the objective, so a scheduler can see why one itinerary beats another."""

    days_to_first_visit: int
    trips: int
    waiting_minutes: int
    provider_changes: int
    target_breach_days: int
    interval_drift_days: int
    total: float


@dataclass(frozen=True)
class Itinerary:
    """A whole pathway's visits, sorted by start, with its score and explanations."""

    visits: tuple[Visit, ...]
    score: ScoreBreakdown
    notes: tuple[str, ...] = ()
    first_visit_same_day: bool = True


@dataclass(frozen=True)
class Unplaceable:
    """No itinerary fits; the reasons say what is missing, in the clinic's words."""

    reasons: tuple[str, ...]


# ---------------------------------------------------------------------------------------
# Time helpers: everything inside runs on integer UTC minutes and bit masks of start slots.
# ---------------------------------------------------------------------------------------


def _minutes(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("itinerary search needs aware datetimes")
    return int(moment.timestamp()) // 60


def _minutes_up(moment: datetime) -> int:
    """A search may start at the first whole minute not before `moment`: rounding down
    would offer a slot that has begun (and the booking would refuse it as past)."""
    whole = _minutes(moment)
    return whole + 1 if moment.timestamp() > whole * 60 else whole


def _moment(minute: int) -> datetime:
    return datetime.fromtimestamp(minute * 60, tz=UTC)


def _bits(lo: int, hi: int) -> int:
    """Mask with bits lo..hi set (empty when hi < lo)."""
    lo = max(lo, 0)
    return ((1 << (hi - lo + 1)) - 1) << lo if hi >= lo else 0


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _starts_mask(intervals: Iterable[tuple[int, int]], opens: int, dur: int, step: int) -> int:
    """Bit i set when a visit of ``dur`` minutes starting at opens + i*step fits an interval."""
    mask = 0
    for a, b in intervals:
        mask |= _bits(_ceil_div(a - opens, step), (b - dur - opens) // step)
    return mask


def _merge(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(intervals):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        elif b > a:
            out.append((a, b))
    return out


def _subtract(intervals: list[tuple[int, int]], a: int, b: int) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for x, y in intervals:
        if y <= a or x >= b:
            out.append((x, y))
            continue
        if x < a:
            out.append((x, a))
        if y > b:
            out.append((b, y))
    return out


def _low(mask: int) -> int:
    return (mask & -mask).bit_length() - 1


def _iter_bits(mask: int) -> Iterable[int]:
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


