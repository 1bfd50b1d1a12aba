"""Free time and slots: pure functions, no database, no Flask, no clock of their own.

Stable API for the itinerary search and anyone else (every datetime is aware; results are
in UTC; `tz` is the clinic's `zoneinfo.ZoneInfo`):

    Interval(start, end)                       half-open [start, end), UTC
    WeeklyBlock(weekday, start, end,           one working block of a weekly template,
                valid_from=None, valid_until=None)  weekday 0 = Monday, local wall times
    working_intervals(blocks, first_day, last_day, tz) -> list[Interval]
        the template laid out on the local dates first_day..last_day (inclusive)
    free_time(blocks, first_day, last_day, tz, *, closed=(), busy=(), not_before=None)
        -> list[Interval]   working time minus leave/closures and busy appointments
    slots(free, minutes, tz, *, step_minutes=15) -> list[Interval]
        every visit of `minutes` that fits, starting on the local `step_minutes` grid
    fits(free, start, end) -> bool             does [start, end) lie inside one interval
    subtract(base, cuts) / merge(intervals)    interval arithmetic (sorted, disjoint out)
    local_days(first_day, last_day, tz) -> Interval   the UTC span of those local days
    local_to_utc(day, wall_time, tz) -> datetime      a local wall time as UTC

Loading the inputs and holding slots (not pure; scheduling's `diary/` use cases, inside
one unit of work): `templates.blocks(d, s, provider_ids)`, `templates.closed(d, s, ids,
span)`, `templates.busy(d, s, ids, span, now)` give the WeeklyBlocks, leave/closures and
taken time per provider; `booking.book(d, s, who, now, {..., "status": "proposed",
"hold_minutes": n, "itinerary_id": ...})` holds a slot (it blocks like a booking until it
expires) and `booking.change_status(d, s, who, now, appointment_id, "booked")` confirms it.

Templates are computed in the clinic's time zone, so 09:00 stays 09:00 on the clock on
both sides of a daylight-saving change even though its UTC instant moves by an hour.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

ONE_DAY = timedelta(days=1)


@dataclass(frozen=True, order=True, slots=True)
class Interval:
    """A half-open stretch of time [start, end) in UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("interval bounds must be timezone-aware")
        if self.end < self.start:
            raise ValueError("an interval cannot end before it starts")

    @property
    def minutes(self) -> float:
        return (self.end - self.start).total_seconds() / 60

    def overlaps(self, other: Interval) -> bool:
        return self.start < other.end and other.start < self.end

    def contains(self, other: Interval) -> bool:
        return self.start <= other.start and other.end <= self.end


@dataclass(frozen=True, slots=True)
class WeeklyBlock:
    """One block of a provider's weekly template, in local wall time (e.g. Mon 09:00-12:30)."""

    weekday: int
    start: time
    end: time
    valid_from: date | None = None
    valid_until: date | None = None

    def applies_on(self, day: date) -> bool:
        return (day.weekday() == self.weekday
                and (self.valid_from is None or day >= self.valid_from)
                and (self.valid_until is None or day <= self.valid_until))


def local_to_utc(day: date, wall: time, tz: tzinfo) -> datetime:
    """A wall-clock time on a local date, as UTC. A time that does not exist (the hour
    skipped in spring) lands after the gap, as a clock on the wall would show it."""
    return datetime.combine(day, wall, tzinfo=tz).astimezone(UTC)


def local_days(first_day: date, last_day: date, tz: tzinfo) -> Interval:
    """From local midnight of `first_day` to local midnight after `last_day`, in UTC."""
    return Interval(local_to_utc(first_day, time(0), tz),
                    local_to_utc(last_day + ONE_DAY, time(0), tz))


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, with overlapping or touching intervals joined."""
    out: list[Interval] = []
    for iv in sorted(intervals):
        if out and iv.start <= out[-1].end:
            if iv.end > out[-1].end:
                out[-1] = Interval(out[-1].start, iv.end)
        else:
            out.append(iv)
    return out


def subtract(base: Iterable[Interval], cuts: Iterable[Interval]) -> list[Interval]:
    """`base` with every instant of `cuts` removed; one sweep over both, O(n log n)."""
    base_sorted = merge(base)
    cut_list = merge(cuts)
    out: list[Interval] = []
    j = 0
    for iv in base_sorted:
        while j < len(cut_list) and cut_list[j].end <= iv.start:
            j += 1
        cursor = iv.start
        k = j
        while k < len(cut_list) and cut_list[k].start < iv.end:
            cut = cut_list[k]
            if cut.start > cursor:
                out.append(Interval(cursor, cut.start))
            cursor = max(cursor, cut.end)
            if cursor >= iv.end:
                break
            k += 1
        if cursor < iv.end:
            out.append(Interval(cursor, iv.end))
    return out


def working_intervals(blocks: Sequence[WeeklyBlock], first_day: date, last_day: date,
                      tz: tzinfo) -> list[Interval]:
    """The weekly template laid out on each local date from first_day to last_day."""
    by_weekday: dict[int, list[WeeklyBlock]] = {}
    for block in blocks:
        by_weekday.setdefault(block.weekday, []).append(block)
    out: list[Interval] = []
    day = first_day
    while day <= last_day:
        for block in by_weekday.get(day.weekday(), ()):
            if block.applies_on(day) and block.end > block.start:
                start = local_to_utc(day, block.start, tz)
                end = local_to_utc(day, block.end, tz)
                if end > start:
                    out.append(Interval(start, end))
        day += ONE_DAY
    return merge(out)


def free_time(blocks: Sequence[WeeklyBlock], first_day: date, last_day: date, tz: tzinfo,
              *, closed: Iterable[Interval] = (), busy: Iterable[Interval] = (),
              not_before: datetime | None = None) -> list[Interval]:
    """Working time on those local dates minus leave, training, closures (`closed`) and
    appointments or holds (`busy`), and nothing before `not_before` (usually now)."""
    cuts = [*closed, *busy]
    working = working_intervals(blocks, first_day, last_day, tz)
    if not_before is not None and working:
        cuts.append(Interval(min(working[0].start, not_before), not_before))
    return subtract(working, cuts)


def _align_up(moment: datetime, step_minutes: int, tz: tzinfo) -> datetime:
    """The first instant at or after `moment` on the local clock's grid of `step_minutes`."""
    local = moment.astimezone(tz)
    since_midnight = timedelta(hours=local.hour, minutes=local.minute, seconds=local.second,
                               microseconds=local.microsecond)
    remainder = since_midnight % timedelta(minutes=step_minutes)
    return moment if not remainder else moment + (timedelta(minutes=step_minutes) - remainder)


def slots(free: Iterable[Interval], minutes: int, tz: tzinfo, *,
          step_minutes: int = 15) -> list[Interval]:
    """Every visit of `minutes` that fits in the free time, one per step of the local grid."""
    if minutes <= 0 or step_minutes <= 0:
        raise ValueError("minutes and step_minutes must be positive")
    length = timedelta(minutes=minutes)
    step = timedelta(minutes=step_minutes)
    out: list[Interval] = []
    for iv in free:
        start = _align_up(iv.start, step_minutes, tz)
        while start + length <= iv.end:
            out.append(Interval(start, start + length))
            start += step
    return out


def fits(free: Sequence[Interval], start: datetime, end: datetime) -> bool:
    """True if [start, end) lies inside one interval of `free` (sorted and disjoint)."""
    i = bisect_right([iv.start for iv in free], start) - 1
    return i >= 0 and free[i].start <= start and end <= free[i].end
