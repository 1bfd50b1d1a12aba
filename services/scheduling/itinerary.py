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

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

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


# ---------------------------------------------------------------------------------------
# The clinic's free time, indexed by local clinic day
# ---------------------------------------------------------------------------------------


class ClinicCalendar:
    """Providers' and rooms' free time, split by clinic day and clipped to clinic hours.

    Built once from the database's free intervals; ``book`` removes an itinerary's visits
    so that several searches can run against one calendar (the benchmark does).
    """

    def __init__(self, hours: ClinicHours, provider_free: Iterable[FreeInterval],
                 rooms: Iterable[Room] = (), room_free: Iterable[RoomFreeInterval] = ()) -> None:
        self.hours = hours
        self.tz = ZoneInfo(hours.timezone)
        self._bounds: dict[int, tuple[int, int] | None] = {}
        self.discipline_of: dict[str, str] = {}
        self._free: dict[str, dict[int, list[tuple[int, int]]]] = {}
        for iv in provider_free:
            self.discipline_of[iv.provider_id] = iv.discipline
            self._split(self._free.setdefault(iv.provider_id, {}),
                        _minutes(iv.start), _minutes(iv.end))
        self.providers: dict[str, tuple[str, ...]] = {}
        for pid, disc in sorted(self.discipline_of.items()):
            self.providers[disc] = (*self.providers.get(disc, ()), pid)
        self.rooms: dict[str, Room] = {r.room_id: r for r in rooms}
        self._room_free: dict[str, dict[int, list[tuple[int, int]]]] = {
            rid: {} for rid in self.rooms}
        for iv in room_free:
            if iv.room_id in self.rooms:
                self._split(self._room_free[iv.room_id], _minutes(iv.start), _minutes(iv.end))
        for table in (*self._free.values(), *self._room_free.values()):
            for day, ivs in table.items():
                table[day] = _merge(ivs)
        self._pmask: dict[tuple[str, int], dict[tuple[int, int], int]] = {}
        self._rmask: dict[int, dict[tuple[str, int, int], int]] = {}

    # -- days --------------------------------------------------------------------------
    def day_of(self, minute: int) -> int:
        """The clinic-local date (as an ordinal) of a UTC minute."""
        return _moment(minute).astimezone(self.tz).date().toordinal()

    def bounds(self, day: int) -> tuple[int, int] | None:
        """Opening and closing UTC minutes of a clinic day, None when closed."""
        if day not in self._bounds:
            d = date.fromordinal(day)
            if d.weekday() not in self.hours.weekdays:
                self._bounds[day] = None
            else:
                self._bounds[day] = (
                    _minutes(datetime.combine(d, self.hours.opens, tzinfo=self.tz)),
                    _minutes(datetime.combine(d, self.hours.closes, tzinfo=self.tz)))
        return self._bounds[day]

    def _split(self, table: dict[int, list[tuple[int, int]]], a: int, b: int) -> None:
        if b <= a:
            return
        for day in range(self.day_of(a), self.day_of(b - 1) + 1):
            bnd = self.bounds(day)
            if bnd is not None and min(b, bnd[1]) > max(a, bnd[0]):
                table.setdefault(day, []).append((max(a, bnd[0]), min(b, bnd[1])))

    # -- masks -------------------------------------------------------------------------
    def provider_mask(self, pid: str, day: int, dur: int, step: int) -> int:
        cache = self._pmask.setdefault((pid, day), {})
        key = (dur, step)
        if key not in cache:
            bnd = self.bounds(day)
            ivs = self._free.get(pid, {}).get(day, ())
            cache[key] = _starts_mask(ivs, bnd[0], dur, step) if bnd and ivs else 0
        return cache[key]

    def _one_room_mask(self, rid: str, day: int, dur: int, step: int) -> int:
        bnd = self.bounds(day)
        ivs = self._room_free[rid].get(day, ())
        return _starts_mask(ivs, bnd[0], dur, step) if bnd and ivs else 0

    def room_mask(self, discipline: str, day: int, dur: int, step: int) -> int:
        """Starts at which some fit room is free; -1 (every start) when rooms are not given."""
        if not self.rooms:
            return -1
        cache = self._rmask.setdefault(day, {})
        key = (discipline, dur, step)
        if key not in cache:
            m = 0
            for rid, room in self.rooms.items():
                if discipline in room.fit_for:
                    m |= self._one_room_mask(rid, day, dur, step)
            cache[key] = m
        return cache[key]

    def room_for(self, discipline: str, day: int, start: int, dur: int) -> str | None:
        """The first fit room free for [start, start+dur), None when rooms are not given."""
        if not self.rooms:
            return None
        for rid in sorted(self.rooms):
            if discipline in self.rooms[rid].fit_for and any(
                    a <= start and start + dur <= b
                    for a, b in self._room_free[rid].get(day, ())):
                return rid
        return None

    # -- checks and booking ------------------------------------------------------------
    def provider_is_free(self, pid: str, start: int, end: int,
                         also_free: Sequence[tuple[int, int]] = ()) -> bool:
        ivs = _merge([*self._free.get(pid, {}).get(self.day_of(start), ()), *also_free])
        return any(a <= start and end <= b for a, b in ivs)

    def room_is_free(self, rid: str, start: int, end: int,
                     also_free: Sequence[tuple[int, int]] = ()) -> bool:
        ivs = _merge([*self._room_free.get(rid, {}).get(self.day_of(start), ()), *also_free])
        return any(a <= start and end <= b for a, b in ivs)

    def book(self, visits: Iterable[Visit]) -> None:
        """Remove booked visits from the free time (and from the cached masks)."""
        for v in visits:
            a, b = _minutes(v.start), _minutes(v.end)
            day = self.day_of(a)
            table = self._free.get(v.provider_id, {})
            if day in table:
                table[day] = _subtract(table[day], a, b)
            self._pmask.pop((v.provider_id, day), None)
            if v.room_id is not None and v.room_id in self._room_free:
                rt = self._room_free[v.room_id]
                if day in rt:
                    rt[day] = _subtract(rt[day], a, b)
                self._rmask.pop(day, None)


# ---------------------------------------------------------------------------------------
# The search
# ---------------------------------------------------------------------------------------

# An internal visit: (discipline, provider, room, start minute, end minute, session, day)
_V = tuple[str, str, str | None, int, int, int, int]


def _label(d: str) -> str:
    return d.replace("_", " ")


def _clinical_order(pathway: CarePathway) -> tuple[list[str], dict[str, frozenset[str]]]:
    """A topological order of the disciplines (clinical order first) and each one's predecessors.

    Raises ValueError on a cycle.
    """
    names = [s.discipline for s in pathway.steps]
    rank = {d: (CLINICAL_ORDER.index(d) if d in CLINICAL_ORDER else 99, i)
            for i, d in enumerate(names)}
    preds = {s.discipline: frozenset(a for a in s.after if a in names and a != s.discipline)
             for s in pathway.steps}
    order: list[str] = []
    left = set(names)
    while left:
        ready = sorted((d for d in left if preds[d] <= set(order)), key=rank.__getitem__)
        if not ready:
            raise ValueError("the pathway's order constraints form a cycle: "
                             + ", ".join(sorted(left)))
        order.append(ready[0])
        left.discard(ready[0])
    return order, preds


@dataclass
class _State:
    """One partial itinerary in the follow-up beam."""

    visits: tuple[_V, ...]
    by_day: dict[int, tuple[tuple[int, int], ...]]
    series: dict[str, tuple[int, int, str]]  # discipline -> (next session, last day, provider)
    trips: int
    waiting: int
    changes: int = 0
    drift: int = 0
    cost: float = 0.0


@dataclass
class _Plan:
    visits: list[_V]
    notes: list[str]
    same_day: bool


@dataclass
class _Search:
    pathway: CarePathway
    cal: ClinicCalendar
    earliest: int
    latest: int
    busy: list[tuple[int, int]]
    rules: SearchRules
    weights: ObjectiveWeights
    order: list[str]
    preds: dict[str, frozenset[str]]
    due_day: int | None = None
    _pat: dict[tuple[int, int], int] = field(default_factory=dict)
    _av: dict[tuple[str, int], tuple[list[tuple[str, int]], int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.step = self.rules.slot_minutes
        self.first_day = self.cal.day_of(self.earliest)
        self.last_day = self.cal.day_of(self.latest - 1)
        self.steps = {s.discipline: s for s in self.pathway.steps}
        self.names = [s.discipline for s in self.pathway.steps]

    # -- availability ------------------------------------------------------------------
    def patient_mask(self, day: int, dur: int) -> int:
        key = (day, dur)
        if key not in self._pat:
            bnd = self.cal.bounds(day)
            if bnd is None:
                self._pat[key] = 0
            else:
                ivs = [(max(bnd[0], self.earliest), min(bnd[1], self.latest))]
                for a, b in self.busy:
                    if b > bnd[0] and a < bnd[1]:
                        ivs = _subtract(ivs, a, b)
                self._pat[key] = _starts_mask(ivs, bnd[0], dur, self.step)
        return self._pat[key]

    def avail(self, disc: str, day: int) -> tuple[list[tuple[str, int]], int]:
        """Providers of ``disc`` with their usable starts that day (room and patient free)."""
        key = (disc, day)
        if key not in self._av:
            dur = self.steps[disc].visit_minutes
            common = self.patient_mask(day, dur)
            if common:
                common &= self.cal.room_mask(disc, day, dur, self.step)
            out: list[tuple[str, int]] = []
            union = 0
            if common:
                for pid in self.cal.providers.get(disc, ()):
                    m = self.cal.provider_mask(pid, day, dur, self.step) & common
                    if m:
                        out.append((pid, m))
                        union |= m
            self._av[key] = (out, union)
        return self._av[key]

    def why_not(self, disc: str, day: int) -> str:
        """Why a discipline has no usable start on a day, in the clinic's words."""
        dur = self.steps[disc].visit_minutes
        when = date.fromordinal(day).isoformat()
        if self.cal.bounds(day) is None:
            return f"the clinic is closed on {when}"
        if not self.patient_mask(day, dur):
            return f"the patient is unavailable on {when}"
        free = 0
        for pid in self.cal.providers.get(disc, ()):
            free |= self.cal.provider_mask(pid, day, dur, self.step)
        if not free & self.patient_mask(day, dur):
            return f"no {_label(disc)} provider is free for {dur} min on {when}"
        return f"no room fit for {_label(disc)} is free when a provider is, on {when}"

    def opens(self, day: int) -> int:
        bnd = self.cal.bounds(day)
        assert bnd is not None
        return bnd[0]

    def materialise(self, disc: str, day: int, start: int, session: int,
                    prefer: str | None = None) -> _V:
        dur = self.steps[disc].visit_minutes
        bit = (start - self.opens(day)) // self.step
        providers = self.avail(disc, day)[0]
        pid = next((p for p, m in providers if p == prefer and m >> bit & 1), None)
        if pid is None:
            pid = next(p for p, m in providers if m >> bit & 1)
        # The room is chosen once the itinerary is final (see ``itinerary``): the room
        # mask already guarantees that some fit room is free at this start.
        return (disc, pid, None, start, start + dur, session, day)

    # -- first visit -------------------------------------------------------------------
    def chain(self, day: int, discs: Sequence[str], done: frozenset[str]
              ) -> tuple[list[tuple[str, int]], list[str]]:
        """Longest, then least-waiting, same-day chain of ``discs`` in clinical order.

        Returns [(discipline, start minute)] and, for those left out, why.
        """
        bnd = self.cal.bounds(day)
        if bnd is None or day < self.first_day or day > self.last_day:
            return [], []
        opens, step = bnd[0], self.step
        lo_gap, hi_gap = self.rules.min_gap_minutes, self.rules.max_gap_minutes
        index = {d: i for i, d in enumerate(discs)}
        need = {d: sum(1 << index[p] for p in self.preds[d] if p in index and p not in done)
                for d in discs}
        union = {d: self.avail(d, day)[1] for d in discs}
        dur = {d: self.steps[d].visit_minutes for d in discs}
        # state (seen-set bits, end minute) -> (waiting, first start, back key, disc, start)
        Key = tuple[int, int]
        level: dict[Key, tuple[int, int, Key | None, str, int]] = {}
        for d in discs:
            if need[d] == 0:
                for i in _iter_bits(union[d]):
                    s = opens + i * step
                    key = (1 << index[d], s + dur[d])
                    cand = (0, s, None, d, s)
                    if key not in level or cand[:2] < level[key][:2]:
                        level[key] = cand
        levels = [level] if level else []
        while level:
            nxt: dict[Key, tuple[int, int, Key | None, str, int]] = {}
            for (seen, end), (wait, first, _b, _d, _s) in level.items():
                window = _bits(_ceil_div(end + lo_gap - opens, step),
                               (end + hi_gap - opens) // step)
                for d in discs:
                    bit = 1 << index[d]
                    if seen & bit or need[d] & ~seen:
                        continue
                    for i in _iter_bits(union[d] & window):
                        s = opens + i * step
                        key = (seen | bit, s + dur[d])
                        cand = (wait + s - end, first, (seen, end), d, s)
                        if key not in nxt or cand[:2] < nxt[key][:2]:
                            nxt[key] = cand
            if nxt:
                levels.append(nxt)
            level = nxt
        if not levels:
            roots = [d for d in discs if need[d] == 0]
            return [], [f"{_label(d)}: {self.why_not(d, day)}" for d in roots]
        last = levels[-1]
        key = min(last, key=lambda k: last[k][:2])
        out: list[tuple[str, int]] = []
        for lvl in reversed(levels):
            _w, _f, back, d, s = lvl[key]
            out.append((d, s))
            if back is None:
                break
            key = back
        out.reverse()
        placed = {d for d, _ in out}
        why: list[str] = []
        for d in discs:
            if d in placed:
                continue
            if not union[d]:
                why.append(f"{_label(d)}: {self.why_not(d, day)}")
            else:
                why.append(f"{_label(d)}: no slot within {lo_gap}-{hi_gap} min of the other "
                           f"visits in clinical order on {date.fromordinal(day).isoformat()}")
        return out, why

    def first_visit_plans(self) -> tuple[list[_Plan], list[str]]:
        order = self.order
        everyone = frozenset()
        start_day = None
        first: list[tuple[str, int]] = []
        why: list[str] = []
        for day in range(self.first_day, self.last_day + 1):
            first, why = self.chain(day, order, everyone)
            if first:
                start_day = day
                break
        if start_day is None:
            roots = [d for d in order if not self.preds[d]]
            return [], [f"no {_label(d)} visit of {self.steps[d].visit_minutes} min can be "
                        f"placed between {date.fromordinal(self.first_day).isoformat()} and "
                        f"{date.fromordinal(self.last_day).isoformat()} (no free provider, "
                        "fit room or patient time)" for d in roots]
        when = date.fromordinal(start_day).isoformat()
        plans: list[_Plan] = []
        if len(first) == len(order):
            plans.append(_Plan(self._visits(start_day, first), [
                f"Same-day first visit on {when}: "
                + ", ".join(_label(d) for d, _ in first) + "."], True))
            return plans, []
        # Fallback 1: split the first visit over several days.
        visits = self._visits(start_day, first)
        done = frozenset(d for d, _ in first)
        parts = [f"{', '.join(_label(d) for d, _ in first)} on {when}"]
        day = start_day
        while len(done) < len(order):
            day += 1
            if day > self.last_day:
                break
            rest = [d for d in order if d not in done]
            more, _ = self.chain(day, rest, done)
            if more:
                visits += self._visits(day, more)
                done |= {d for d, _ in more}
                parts.append(f"{', '.join(_label(d) for d, _ in more)} on "
                             f"{date.fromordinal(day).isoformat()}")
        reason = (f"No same-day first visit across all {len(order)} disciplines on {when} "
                  f"({'; '.join(why)}).")
        if len(done) == len(order):
            plans.append(_Plan(visits, [reason, f"First visit split over {len(parts)} days: "
                                        + "; ".join(parts) + "."], False))
        # Fallback 2: the whole cluster on a later day.
        for day in range(start_day + 1,
                         min(self.last_day, start_day + self.rules.later_cluster_days) + 1):
            if self.cal.bounds(day) is None:
                continue
            if any(not self.avail(d, day)[1] for d in order):
                continue
            full, _ = self.chain(day, order, everyone)
            if len(full) == len(order):
                plans.append(_Plan(self._visits(day, full), [
                    reason, f"Same-day first visit on {date.fromordinal(day).isoformat()}, "
                    f"{day - start_day} day(s) after the earliest possible first visit."], True))
                break
        if not plans:
            return [], [reason, "The remaining disciplines find no first visit before "
                        f"{date.fromordinal(self.last_day).isoformat()}."]
        return plans, []

    def _visits(self, day: int, chain: list[tuple[str, int]]) -> list[_V]:
        return [self.materialise(d, day, s, 1) for d, s in chain]

    # -- follow-ups --------------------------------------------------------------------
    def window(self, disc: str, last: int) -> tuple[int, int, int]:
        """(first day, last day, ideal day) for a discipline's next session."""
        st = self.steps[disc]
        tol = self.rules.interval_tolerance_days
        ideal = last + max(1, st.interval_days)
        return (last + max(1, st.interval_days - tol), last + max(1, st.interval_days + tol),
                ideal)

    def place(self, state: _State, disc: str, day: int, main: str
              ) -> tuple[str, int, int] | None:
        """Best (provider, start, added waiting) for one session on a day, or None."""
        providers, union = self.avail(disc, day)
        if not union:
            return None
        dur = self.steps[disc].visit_minutes
        opens, step = self.opens(day), self.step
        lo_gap, hi_gap = self.rules.min_gap_minutes, self.rules.max_gap_minutes
        here = state.by_day.get(day, ())
        # options: (mask of allowed starts, take highest?, waiting function)
        options: list[tuple[int, bool, int]] = []
        if not here:
            options.append((-1, False, 0))
        else:
            s1, e_n = here[0][0], here[-1][1]
            options.append((_bits(_ceil_div(s1 - hi_gap - dur - opens, step),
                                  (s1 - lo_gap - dur - opens) // step), True, 0))
            options.append((_bits(_ceil_div(e_n + lo_gap - opens, step),
                                  (e_n + hi_gap - opens) // step), False, 1))
            for (_a, e), (s, _b) in pairwise(here):
                options.append((_bits(_ceil_div(e + lo_gap - opens, step),
                                      (s - lo_gap - dur - opens) // step), False, 2))
        best: tuple[int, int, str] | None = None
        ordered = sorted(providers, key=lambda pm: pm[0] != main)
        for pid, m in ordered:
            if self.rules.same_provider_required and pid != main:
                break
            for allowed, high, kind in options:
                x = m & allowed
                if not x:
                    continue
                i = x.bit_length() - 1 if high else _low(x)
                s = opens + i * step
                if kind == 0 and here:
                    wait = here[0][0] - (s + dur)
                elif kind == 1:
                    wait = s - here[-1][1]
                elif kind == 2:
                    wait = -dur
                else:
                    wait = 0
                if best is None or wait < best[0]:
                    best = (wait, s, pid)
            if best is not None and pid == main:
                break
        if best is None:
            return None
        return best[2], best[1], best[0]

    def cost(self, st: _State) -> float:
        """Objective so far plus a look-ahead: half a trip for each pending session whose
        window holds none of the patient's trip days yet (it will likely need a new trip)."""
        w = self.weights
        lonely = 0
        for d, (n, last, _p) in st.series.items():
            if n <= self.steps[d].sessions:
                lo, hi, _i = self.window(d, last)
                lonely += not any(lo <= day <= hi for day in st.by_day)
        return (w.trips * (st.trips + 0.5 * lonely) + w.waiting_minutes * st.waiting
                + w.provider_changes * st.changes + w.interval_drift_days * st.drift)

    def expand(self, st: _State) -> tuple[list[_State], str | None]:
        pending = [(self.window(d, last)[1], self.names.index(d), d)
                   for d, (n, last, _p) in st.series.items() if n <= self.steps[d].sessions]
        _hi, _i, disc = min(pending)
        n, last, main = st.series[disc]
        lo, hi, ideal = self.window(disc, last)
        hi = min(hi, self.last_day)
        others = [self.window(d, lst)[:2] for d, (k, lst, _p) in st.series.items()
                  if d != disc and k <= self.steps[d].sessions]
        existing = sorted((abs(d - ideal), d) for d in st.by_day if lo <= d <= hi)
        fresh = []
        for d in range(lo, hi + 1):
            if d in st.by_day or not self.avail(disc, d)[1]:
                continue
            cover = sum(1 for a, b in others if a <= d <= b)
            fresh.append((-cover, abs(d - ideal), d))
        fresh.sort()
        k = self.rules.day_choices
        days = [d for _, d in existing[:k]] + [d for *_, d in fresh[:k]]
        days += [d for _, d in existing[k:]] + [d for *_, d in fresh[k:]]
        kids: list[_State] = []
        for day in days:
            got = self.place(st, disc, day, main)
            if got is None:
                continue
            pid, s, wait = got
            v = self.materialise(disc, day, s, n, prefer=pid)
            by_day = dict(st.by_day)
            by_day[day] = tuple(sorted((*by_day.get(day, ()), (v[3], v[4]))))
            series = dict(st.series)
            series[disc] = (n + 1, day, main)
            kid = _State((*st.visits, v), by_day, series, st.trips + (day not in st.by_day),
                         st.waiting + wait, st.changes + (pid != main),
                         st.drift + abs(day - last - self.steps[disc].interval_days))
            kid.cost = self.cost(kid)
            kids.append(kid)
            if len(kids) >= 2 * k:
                break
        if kids:
            return kids, None
        if lo > hi:
            return [], (f"{_label(disc)} session {n} of {self.steps[disc].sessions} would fall "
                        f"after the search window ends on "
                        f"{date.fromordinal(self.last_day).isoformat()}")
        return [], (f"{_label(disc)} session {n} of {self.steps[disc].sessions}: no "
                    f"{_label(disc)} visit of {self.steps[disc].visit_minutes} min can be placed "
                    f"between {date.fromordinal(lo).isoformat()} and "
                    f"{date.fromordinal(hi).isoformat()} (every "
                    f"{self.steps[disc].interval_days} days, +/- "
                    f"{self.rules.interval_tolerance_days})"
                    + ("" if not self.rules.same_provider_required else
                       f" with the series provider {main}"))

    def follow_ups(self, plan: _Plan) -> tuple[list[_State], list[str]]:
        by_day: dict[int, tuple[tuple[int, int], ...]] = {}
        for v in plan.visits:
            by_day[v[6]] = tuple(sorted((*by_day.get(v[6], ()), (v[3], v[4]))))
        series = {v[0]: (2, v[6], v[1]) for v in plan.visits}
        waiting = sum(b[0] - a[1] for spans in by_day.values()
                      for a, b in pairwise(spans))
        beam = [_State(tuple(plan.visits), by_day, series, len(by_day), waiting)]
        todo = sum(s.sessions - 1 for s in self.pathway.steps)
        reasons: list[str] = []
        for _ in range(todo):
            best: dict[frozenset[tuple[str, int]], _State] = {}
            for st in beam:
                more, why = self.expand(st)
                if why and why not in reasons:
                    reasons.append(why)
                for kid in more:
                    # One state per pattern of days: the beam keeps different day plans,
                    # not the same plan with other providers or times.
                    sig = frozenset((v[0], v[6]) for v in kid.visits)
                    if sig not in best or kid.cost < best[sig].cost:
                        best[sig] = kid
            if not best:
                return [], reasons
            beam = sorted(best.values(), key=lambda s: s.cost)[: self.rules.beam_width]
        return beam, []

    def improve(self, visits: Sequence[_V]) -> list[_V]:
        """Local improvement: move a follow-up that is alone on its day onto another trip day
        when its series' intervals and that day's gaps allow it and the objective improves
        (one trip fewer each time)."""
        out = list(visits)
        moved = True
        while moved:
            moved = False
            by_day: dict[int, list[_V]] = {}
            for v in out:
                by_day.setdefault(v[6], []).append(v)
            for day in sorted(by_day):
                if len(by_day[day]) != 1 or by_day[day][0][5] == 1:
                    continue
                v = by_day[day][0]
                disc, n = v[0], v[5]
                mine = {x[5]: x for x in out if x[0] == disc}
                prev, nxt = mine[n - 1], mine.get(n + 1)
                lo, hi, ideal = self.window(disc, prev[6])
                targets = sorted(
                    (abs(d - ideal), d) for d in by_day
                    if d != day and lo <= d <= min(hi, self.last_day)
                    and (nxt is None or self.window(disc, d)[0] <= nxt[6]
                         <= self.window(disc, d)[1]))
                for _drift, target in targets:
                    spans = tuple(sorted((x[3], x[4]) for x in by_day[target]))
                    probe = _State((), {target: spans}, {}, 0, 0)
                    got = self.place(probe, disc, target, mine[1][1])
                    if got is None:
                        continue
                    pid, start, _w = got
                    trial = list(out)
                    trial[out.index(v)] = self.materialise(disc, target, start, n, prefer=pid)
                    if self.breakdown(trial).total < self.breakdown(out).total:
                        out = trial
                        moved = True
                        break
                if moved:
                    break
        return out

    # -- scoring -----------------------------------------------------------------------
    def breakdown(self, visits: Sequence[_V]) -> ScoreBreakdown:
        return _breakdown(visits, self.pathway, self.first_day, self.due_day, self.weights)

    def itinerary(self, visits: Sequence[_V], notes: list[str], same_day: bool) -> Itinerary:
        ordered = sorted(((v[0], v[1], self.cal.room_for(v[0], v[6], v[3], v[4] - v[3]),
                           *v[3:]) for v in visits), key=lambda v: (v[3], v[0]))
        extra = list(notes)
        main = {v[0]: v[1] for v in ordered if v[5] == 1}
        for disc in self.names:
            away = [v[5] for v in ordered if v[0] == disc and v[1] != main.get(disc)]
            if away:
                extra.append(f"{_label(disc)} session(s) {', '.join(map(str, away))} with "
                             f"another provider: {main.get(disc)} was not free in the window.")
        return Itinerary(tuple(Visit(v[0], v[1], v[2], _moment(v[3]), _moment(v[4]), v[5])
                               for v in ordered),
                         self.breakdown(visits), tuple(extra), same_day)


def _breakdown(visits: Sequence[_V], pathway: CarePathway, first_day: int,
               due_day: int | None, weights: ObjectiveWeights) -> ScoreBreakdown:
    days: dict[int, list[tuple[int, int]]] = {}
    for v in visits:
        days.setdefault(v[6], []).append((v[3], v[4]))
    waiting = 0
    for spans in days.values():
        spans.sort()
        waiting += sum(max(0, b[0] - a[1]) for a, b in pairwise(spans))
    first = min(days) if days else first_day
    changes = drift = 0
    for step in pathway.steps:
        mine = sorted((v for v in visits if v[0] == step.discipline), key=lambda v: v[3])
        if not mine:
            continue
        changes += sum(1 for v in mine[1:] if v[1] != mine[0][1])
        drift += sum(abs(b[6] - a[6] - step.interval_days)
                     for a, b in pairwise(mine))
    to_first = first - first_day
    breach = max(0, first - due_day) if due_day is not None else 0
    w = weights
    total = (w.days_to_first_visit * to_first + w.trips * len(days)
             + w.waiting_minutes * waiting + w.provider_changes * changes
             + w.target_breach_days * breach + w.interval_drift_days * drift)
    return ScoreBreakdown(to_first, len(days), waiting, changes, breach, drift, round(total, 3))


def _prepare(pathway: CarePathway, calendar: ClinicCalendar, earliest: datetime,
             latest: datetime, patient_busy: Iterable[BusyTime], due_by: date | None,
             rules: SearchRules, weights: ObjectiveWeights) -> _Search | Unplaceable:
    names = [s.discipline for s in pathway.steps]
    if len(set(names)) != len(names):
        return Unplaceable(("The care pathway names a discipline twice.",))
    try:
        order, preds = _clinical_order(pathway)
    except ValueError as exc:
        return Unplaceable((f"The care pathway cannot be ordered: {exc}.",))
    missing = [d for d in names if not calendar.providers.get(d)]
    if missing:
        return Unplaceable(tuple(f"The clinic has no {_label(d)} provider with free time."
                                 for d in missing))
    if calendar.rooms:
        unfit = [d for d in names if not any(d in r.fit_for for r in calendar.rooms.values())]
        if unfit:
            return Unplaceable(tuple(f"No room is fit for {_label(d)}." for d in unfit))
    return _Search(pathway, calendar, _minutes_up(earliest), _minutes(latest),
                   sorted((_minutes(b.start), _minutes(b.end)) for b in patient_busy),
                   rules, weights, order, preds,
                   due_by.toordinal() if due_by is not None else None)


def search_itineraries(pathway: CarePathway, calendar: ClinicCalendar, *, earliest: datetime,
                       latest: datetime, patient_busy: Iterable[BusyTime] = (),
                       due_by: date | None = None, rules: SearchRules | None = None,
                       weights: ObjectiveWeights | None = None,
                       top_k: int = 3) -> list[Itinerary] | Unplaceable:
    """The best ``top_k`` distinct itineraries for a pathway, best first, or why none fits.

    ``earliest``/``latest`` bound every visit; ``due_by`` is the referral's priority target
    for the first visit (its breach is penalised, not forbidden).
    """
    rules = rules or SearchRules()
    weights = weights or ObjectiveWeights()
    search = _prepare(pathway, calendar, earliest, latest, patient_busy, due_by, rules, weights)
    if isinstance(search, Unplaceable):
        return search
    plans, reasons = search.first_visit_plans()
    if not plans:
        return Unplaceable(tuple(reasons))
    finished: list[tuple[float, int, Itinerary]] = []
    why: list[str] = []
    tolerances = [rules.interval_tolerance_days]
    if (rules.fallback_tolerance_days or 0) > rules.interval_tolerance_days:
        tolerances.append(rules.fallback_tolerance_days or 0)
    for tolerance in tolerances:
        search.rules = replace(rules, interval_tolerance_days=tolerance)
        widened = ([] if tolerance == rules.interval_tolerance_days else [
            f"{WIDENED_NOTE} within +/- {rules.interval_tolerance_days} "
            f"days of its interval ({'; '.join(why)}); intervals widened to +/- {tolerance} "
            "days."])
        for plan in plans:
            beam, lost = search.follow_ups(plan)
            why += [r for r in lost if r not in why]
            for st in beam:
                # The improved itinerary and, as an alternative, the beam's own.
                for visits in (search.improve(st.visits), st.visits):
                    it = search.itinerary(visits, plan.notes + widened, plan.same_day)
                    finished.append((it.score.total, len(finished), it))
        if finished:
            break
    if not finished:
        notes = [n for plan in plans for n in plan.notes if not n.startswith("Same-day")]
        return Unplaceable(tuple(dict.fromkeys(notes + why)))
    finished.sort(key=lambda t: t[:2])
    out: list[Itinerary] = []
    seen: set[tuple[Visit, ...]] = set()
    for _t, _i, it in finished:
        if it.visits not in seen:
            seen.add(it.visits)
            out.append(it)
        if len(out) == top_k:
            break
    return out


def baseline_earliest_each(pathway: CarePathway, calendar: ClinicCalendar, *,
                           earliest: datetime, latest: datetime,
                           patient_busy: Iterable[BusyTime] = (), due_by: date | None = None,
                           rules: SearchRules | None = None,
                           weights: ObjectiveWeights | None = None) -> Itinerary | Unplaceable:
    """What a scheduler on the phone does: each session at its discipline's earliest free slot.

    First visits in clinical order (each after its predecessors end), each follow-up at the
    earliest slot from ``interval_days`` after the previous session, never overlapping the
    patient's other visits (min_gap apart); no grouping of days, no continuity.
    """
    rules = rules or SearchRules()
    weights = weights or ObjectiveWeights()
    search = _prepare(pathway, calendar, earliest, latest, patient_busy, due_by, rules, weights)
    if isinstance(search, Unplaceable):
        return search
    gap = rules.min_gap_minutes
    visits: list[_V] = []
    first_end: dict[str, int] = {}

    def earliest_slot(disc: str, not_before: int, session: int) -> _V | None:
        dur = search.steps[disc].visit_minutes
        for day in range(max(search.first_day, calendar.day_of(not_before)),
                         search.last_day + 1):
            bnd = calendar.bounds(day)
            if bnd is None:
                continue
            _p, union = search.avail(disc, day)
            if not union:
                continue
            opens, step = bnd[0], search.step
            allowed = union & ~_bits(0, _ceil_div(not_before - opens, step) - 1)
            for v in visits:
                if v[6] == day:
                    allowed &= ~_bits(_ceil_div(v[3] - gap - dur + 1 - opens, step),
                                      (v[4] + gap - 1 - opens) // step)
            if allowed:
                return search.materialise(disc, day, opens + _low(allowed) * step, session)
        return None

    for disc in search.order:
        after = [first_end[p] + gap for p in search.preds[disc]]
        v = earliest_slot(disc, max([search.earliest, *after]), 1)
        if v is None:
            return Unplaceable((f"{_label(disc)}: no first visit in the window.",))
        visits.append(v)
        first_end[disc] = v[4]
    for disc in search.order:
        step = search.steps[disc]
        last = next(v for v in visits if v[0] == disc)
        for n in range(2, step.sessions + 1):
            bnd = calendar.bounds(last[6] + max(1, step.interval_days))
            start_day = date.fromordinal(last[6] + max(1, step.interval_days))
            not_before = bnd[0] if bnd else _minutes(
                datetime.combine(start_day, time(0), tzinfo=calendar.tz))
            v = earliest_slot(disc, not_before, n)
            if v is None:
                return Unplaceable((f"{_label(disc)} session {n}: no slot in the window.",))
            visits.append(v)
            last = v
    return search.itinerary(visits, ["Baseline: each session at its earliest free slot."],
                            len({v[6] for v in visits if v[5] == 1}) == 1)


def check_move(itinerary: Itinerary, index: int, moved: Visit, *, pathway: CarePathway,
               calendar: ClinicCalendar, patient_busy: Iterable[BusyTime] = (),
               rules: SearchRules | None = None) -> list[str]:
    """Constraints broken if visit ``index`` of the itinerary becomes ``moved`` (empty: legal).

    ``calendar`` is the clinic's free time with this itinerary's holds taken out; the moved
    visit's old slot counts as free again for its provider and room.
    """
    rules = rules or SearchRules()
    problems: list[str] = []
    old = itinerary.visits[index]
    visits = list(itinerary.visits)
    visits[index] = moved
    a, b = _minutes(moved.start), _minutes(moved.end)
    when = moved.start.astimezone(calendar.tz).strftime("%Y-%m-%d %H:%M")
    disc = moved.discipline
    try:
        step = pathway.step(disc)
    except KeyError:
        return [f"{_label(disc)} is not part of the care pathway."]
    if disc != old.discipline or moved.session_index != old.session_index:
        problems.append("A move keeps the visit's discipline and session.")
    if b - a != step.visit_minutes:
        problems.append(f"A {_label(disc)} visit lasts {step.visit_minutes} min, not {b - a}.")
    day = calendar.day_of(a)
    bnd = calendar.bounds(day)
    if bnd is None or a < bnd[0] or b > bnd[1]:
        problems.append(f"{when} is outside clinic hours.")
    if calendar.discipline_of.get(moved.provider_id) != disc:
        problems.append(f"{moved.provider_id} is not a {_label(disc)} provider.")
    else:
        old_slot = ([(_minutes(old.start), _minutes(old.end))]
                    if old.provider_id == moved.provider_id else [])
        if not calendar.provider_is_free(moved.provider_id, a, b, old_slot):
            problems.append(f"{moved.provider_id} is not free at {when}.")
    if calendar.rooms:
        room = calendar.rooms.get(moved.room_id or "")
        if room is None or disc not in room.fit_for:
            problems.append(f"Room {moved.room_id} is not fit for {_label(disc)}.")
        else:
            old_slot = ([(_minutes(old.start), _minutes(old.end))]
                        if old.room_id == moved.room_id else [])
            if not calendar.room_is_free(room.room_id, a, b, old_slot):
                problems.append(f"Room {room.room_id} is not free at {when}.")
    for busy in patient_busy:
        if _minutes(busy.start) < b and a < _minutes(busy.end):
            problems.append(f"The patient is unavailable at {when}.")
            break
    # Same-day overlaps and gaps.
    same_day = sorted((v for v in visits if calendar.day_of(_minutes(v.start)) == day),
                      key=lambda v: v.start)
    for x, y in pairwise(same_day):
        gap = (_minutes(y.start) - _minutes(x.end))
        if moved not in (x, y):
            continue
        if gap < 0:
            problems.append(f"Overlaps the {_label(x.discipline if y is moved else y.discipline)}"
                            " visit that day.")
        elif gap < rules.min_gap_minutes or gap > rules.max_gap_minutes:
            problems.append(f"{gap} min between the {_label(x.discipline)} and "
                            f"{_label(y.discipline)} visits; allowed "
                            f"{rules.min_gap_minutes}-{rules.max_gap_minutes}.")
    # Clinical order of first visits.
    firsts = {v.discipline: v for v in visits if v.session_index == 1}
    for s in pathway.steps:
        for p in s.after:
            if s.discipline in firsts and p in firsts and \
                    firsts[s.discipline].start < firsts[p].end and disc in (s.discipline, p):
                problems.append(f"The first {_label(s.discipline)} visit must come after the "
                                f"first {_label(p)} visit.")
    # The series' interval.
    series = sorted((v for v in visits if v.discipline == disc), key=lambda v: v.session_index)
    tol = rules.interval_tolerance_days
    lo, hi = max(1, step.interval_days - tol), max(1, step.interval_days + tol)
    for x, y in pairwise(series):
        if moved not in (x, y):
            continue
        days = calendar.day_of(_minutes(y.start)) - calendar.day_of(_minutes(x.start))
        if not lo <= days <= hi:
            problems.append(f"{_label(disc)} sessions {x.session_index} and {y.session_index} "
                            f"are {days} days apart; allowed {lo}-{hi}.")
    if rules.same_provider_required and series and \
            any(v.provider_id != series[0].provider_id for v in series):
        problems.append(f"The {_label(disc)} series must stay with one provider.")
    return problems


__all__ = [
    "CLINICAL_ORDER", "BusyTime", "CarePathway", "ClinicCalendar", "ClinicHours",
    "FreeInterval", "Itinerary", "ObjectiveWeights", "PathwayStep", "Room",
    "RoomFreeInterval", "ScoreBreakdown", "SearchRules", "Unplaceable", "Visit",
    "baseline_earliest_each", "check_move", "search_itineraries",
]

