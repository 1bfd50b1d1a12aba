"""The clinic's free time indexed once for the itinerary search: per provider and room, per
clinic day, the possible start times as bits of an int (pure).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from zoneinfo import ZoneInfo

from services.scheduling.itineraries.model import (
    ClinicHours,
    FreeInterval,
    Room,
    RoomFreeInterval,
    Visit,
    _merge,
    _minutes,
    _moment,
    _starts_mask,
    _subtract,
)

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


