"""Benchmark: itinerary search against the phone scheduler's earliest-slot baseline.

A generated clinic (40 providers across the four disciplines, 90 days, about 70 per cent
already booked, rooms fit per discipline), 200 referrals each with a pathway of one
first-visit cluster (four disciplines, pain medicine first) plus 20 follow-up sessions.
Each referral is searched against the same clinic; the baseline books the same referral
each discipline at its earliest free slot. Prints search time (median, p95) and quality
(trips per patient, days to first visit) with ratios. Exits 1 when the search takes more
trips or a later first visit (on average) than the baseline; never judges time.

Run: .venv/bin/python bench/bench_itinerary.py [--referrals 200] [--seed 7] [--book]
(--book books each result so the clinic fills up as the referrals come in.)
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time as clock
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.scheduling.itineraries.baseline import baseline_earliest_each
from services.scheduling.itineraries.calendar import ClinicCalendar
from services.scheduling.itineraries.model import (
    BusyTime,
    CarePathway,
    ClinicHours,
    FreeInterval,
    Itinerary,
    PathwayStep,
    Room,
    RoomFreeInterval,
    SearchRules,
    Unplaceable,
)
from services.scheduling.itineraries.search import search_itineraries

DISCIPLINES = ("pain_medicine", "physical_therapy", "psychology", "acupuncture")
TZ = "Europe/London"
START = date(2027, 1, 4)  # a Monday
DAYS = 90
OPENS, CLOSES = time(8, 0), time(17, 0)

# (discipline, minutes, sessions, interval days): 1 first visit each + 20 follow-ups.
PATHWAYS = (
    ((60, 3, 28), (45, 9, 7), (50, 6, 10), (30, 6, 10)),
    ((60, 2, 42), (45, 9, 7), (50, 7, 7), (30, 6, 10)),
    ((45, 3, 21), (45, 8, 7), (50, 6, 14), (30, 7, 7)),
)


def _local(day: date, minute: int) -> datetime:
    from zoneinfo import ZoneInfo
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(TZ)) + timedelta(minutes=minute)


def _free_runs(rng: random.Random, booked_share: float) -> list[tuple[int, int]]:
    """Free stretches (minutes after midnight) of one working day, ~booked_share booked."""
    runs: list[tuple[int, int]] = []
    t, end = OPENS.hour * 60, CLOSES.hour * 60
    while t < end:
        length = rng.choice((30, 45, 60))
        if rng.random() >= booked_share:
            runs.append((t, min(end, t + length)))
        t += length
    return runs


def build_clinic(rng: random.Random) -> ClinicCalendar:
    free: list[FreeInterval] = []
    rooms = [Room(f"consult-{i}", frozenset({"pain_medicine", "psychology"})) for i in range(6)]
    rooms += [Room(f"gym-{i}", frozenset({"physical_therapy"})) for i in range(5)]
    rooms += [Room(f"treatment-{i}", frozenset({"acupuncture", "physical_therapy"}))
              for i in range(4)]
    room_free: list[RoomFreeInterval] = []
    for offset in range(DAYS):
        day = START + timedelta(days=offset)
        if day.weekday() >= 5:
            continue
        for disc in DISCIPLINES:
            for n in range(10):
                for a, b in _free_runs(rng, 0.70):
                    free.append(FreeInterval(f"{disc}-{n:02d}", disc, _local(day, a),
                                             _local(day, b)))
        for room in rooms:
            for a, b in _free_runs(rng, 0.55):
                room_free.append(RoomFreeInterval(room.room_id, _local(day, a), _local(day, b)))
    return ClinicCalendar(ClinicHours(TZ, OPENS, CLOSES), free, rooms, room_free)


def referral(rng: random.Random) -> tuple[CarePathway, datetime, date, list[BusyTime]]:
    shape = rng.choice(PATHWAYS)
    steps = tuple(
        PathwayStep(d, m, s, i, () if d == "pain_medicine" else ("pain_medicine",))
        for d, (m, s, i) in zip(DISCIPLINES, shape, strict=True))
    arrives = START + timedelta(days=rng.randrange(0, 14))
    earliest = _local(arrives, 7 * 60)
    due_by = arrives + timedelta(days=rng.choice((7, 14, 28)))
    busy: list[BusyTime] = []
    for offset in range(DAYS):
        day = START + timedelta(days=offset)
        if day.weekday() < 5 and rng.random() < 0.2:  # the patient works some mornings
            busy.append(BusyTime(_local(day, 8 * 60), _local(day, 12 * 60)))
    return CarePathway(steps), earliest, due_by, busy


def _days_to_first(it: Itinerary, earliest: datetime) -> int:
    return (it.visits[0].start.date() - earliest.date()).days


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--referrals", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--book", action="store_true",
                        help="book each result, so the clinic fills up referral by referral "
                             "(search and baseline each in their own copy of the clinic)")
    args = parser.parse_args()
    built = clock.perf_counter()
    clinic = build_clinic(random.Random(args.seed))
    built = clock.perf_counter() - built
    base_clinic = build_clinic(random.Random(args.seed)) if args.book else clinic
    rng = random.Random(args.seed + 1)
    latest = datetime.combine(START + timedelta(days=DAYS), time(0), tzinfo=UTC)
    rules = SearchRules(min_gap_minutes=0, max_gap_minutes=60, interval_tolerance_days=2,
                        fallback_tolerance_days=7)
    referrals = [referral(rng) for _ in range(args.referrals)]

    times: list[float] = []
    base_times: list[float] = []
    s_trips: list[int] = []
    b_trips: list[int] = []
    s_first: list[int] = []
    b_first: list[int] = []
    s_wait: list[int] = []
    b_wait: list[int] = []
    s_changes: list[int] = []
    b_changes: list[int] = []
    same_day = 0
    unplaceable = {"search": 0, "baseline": 0}
    for pathway, earliest, due_by, busy in referrals:
        t0 = clock.perf_counter()
        found = search_itineraries(pathway, clinic, earliest=earliest, latest=latest,
                                   patient_busy=busy, due_by=due_by, rules=rules, top_k=3)
        times.append(clock.perf_counter() - t0)
        t0 = clock.perf_counter()
        base = baseline_earliest_each(pathway, base_clinic, earliest=earliest, latest=latest,
                                      patient_busy=busy, due_by=due_by, rules=rules)
        base_times.append(clock.perf_counter() - t0)
        if args.book:
            if not isinstance(found, Unplaceable):
                clinic.book(found[0].visits)
            if not isinstance(base, Unplaceable):
                base_clinic.book(base.visits)
        if isinstance(found, Unplaceable) or isinstance(base, Unplaceable):
            unplaceable["search"] += isinstance(found, Unplaceable)
            unplaceable["baseline"] += isinstance(base, Unplaceable)
            continue
        best = found[0]
        same_day += best.first_visit_same_day
        s_trips.append(best.score.trips)
        b_trips.append(base.score.trips)
        s_first.append(_days_to_first(best, earliest))
        b_first.append(_days_to_first(base, earliest))
        s_wait.append(best.score.waiting_minutes)
        b_wait.append(base.score.waiting_minutes)
        s_changes.append(best.score.provider_changes)
        b_changes.append(base.score.provider_changes)

    def ms(xs: list[float], q: float) -> float:
        return 1000 * statistics.quantiles(xs, n=100)[int(q) - 1] if q < 100 else 0.0

    n = len(s_trips)
    print(f"clinic: 40 providers, {DAYS} days, 15 rooms, built in {built:.2f}s"
          f"{', booking as it goes' if args.book else ''}; "
          f"{len(referrals)} referrals, {n} placed by both "
          f"(unplaceable: search {unplaceable['search']}, baseline {unplaceable['baseline']})")
    print(f"search time: median {1000 * statistics.median(times):.1f} ms, "
          f"p95 {ms(times, 95):.1f} ms, total {sum(times):.1f} s "
          f"(baseline median {1000 * statistics.median(base_times):.1f} ms)")
    if not n:
        print("nothing placed by both")
        return 1
    st, bt = statistics.mean(s_trips), statistics.mean(b_trips)
    sf, bf = statistics.mean(s_first), statistics.mean(b_first)
    sw, bw = statistics.mean(s_wait), statistics.mean(b_wait)
    print(f"trips per patient: search {st:.2f} vs baseline {bt:.2f} ({st / bt:.2f}x)")
    print(f"days to first visit: search {sf:.2f} vs baseline {bf:.2f} "
          f"(median {statistics.median(s_first)} vs {statistics.median(b_first)}; "
          f"later for {sum(a > b for a, b in zip(s_first, b_first, strict=True))} patients)")
    print(f"waiting minutes between same-day visits: search {sw:.0f} vs baseline {bw:.0f}")
    print(f"follow-ups away from the series provider: search "
          f"{statistics.mean(s_changes):.2f} vs baseline {statistics.mean(b_changes):.2f}")
    print(f"same-day first visit (all four disciplines): {same_day} of {n}")
    ok = st < bt and sf <= bf
    print("quality rules (fewer trips, no later first visit):", "met" if ok else "VIOLATED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
