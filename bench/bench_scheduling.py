"""Scheduling benchmark: booking throughput through HTTP (gunicorn, several workers) and
the availability query for 40 providers over 90 days, each with a baseline measured in
the same run:

- bookings/s against a no-op endpoint's requests/s (/healthz) with the same clients;
- our interval-sweep availability against a naive computation (every 15-minute candidate
  checked against every template block, exception and booking), on identical data,
  after checking both give the same slots.

    .venv/bin/python bench/bench_scheduling.py [--backend sqlite|postgres]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as wall
from pathlib import Path
from zoneinfo import ZoneInfo

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from services.scheduling.diary import templates  # noqa: E402
from services.scheduling.diary.context import Diary  # noqa: E402
from services.scheduling.wiring import build_runtime  # noqa: E402
from shared import availability as av  # noqa: E402
from shared.config import Settings  # noqa: E402
from shared.launcher import ServiceProcesses  # noqa: E402
from tests.support.clinic import bearer  # noqa: E402
from tests.support.processes import free_port  # noqa: E402

TZ = ZoneInfo("Europe/London")
PROVIDERS = 40
DAYS = 90
CLIENTS = 8
BOOKINGS = 480
VISIT = 45
DISCIPLINES = ("pain_medicine", "physical_therapy", "psychology", "acupuncture")


def _parallel(n: int, clients: int, call) -> float:  # type: ignore[no-untyped-def]
    """Run call(i) for i < n over `clients` threads; return calls per second."""
    counter = iter(range(n))
    lock = threading.Lock()
    failures: list[str] = []

    def worker() -> None:
        with requests.Session() as http:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                problem = call(http, i)
                if problem:
                    failures.append(problem)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise SystemExit(f"{len(failures)} failed calls, first: {failures[0]}")
    return n / elapsed


def _seed(url: str, admin: dict, first_day: date) -> list[str]:
    """40 providers, Mon-Fri with a lunch break, a week of leave each, a closure day."""
    http = requests.Session()
    http.headers.update(admin)
    ids = []
    for i in range(PROVIDERS):
        made = http.post(f"{url}/providers", json={"name": f"Provider {i:02d}",
                                                   "discipline": DISCIPLINES[i % 4]})
        pid = made.json()["id"]
        ids.append(pid)
        blocks = [{"weekday": d, "start": "08:30" if i % 2 else "09:00", "end": "12:30"}
                  for d in range(5)]
        blocks += [{"weekday": d, "start": "13:30", "end": "17:30" if i % 3 else "17:00"}
                   for d in range(5)]
        assert http.put(f"{url}/providers/{pid}/template",
                        json={"blocks": blocks}).status_code == 200
        leave = first_day + timedelta(days=7 + (i * 3) % 70)
        assert http.post(f"{url}/exceptions", json={
            "provider_id": pid, "kind": "leave", "first_day": leave.isoformat(),
            "last_day": (leave + timedelta(days=4)).isoformat()}).status_code == 201
    assert http.post(f"{url}/exceptions", json={
        "kind": "closure", "first_day": (first_day + timedelta(days=30)).isoformat()}
        ).status_code == 201
    return ids


def _booking_plan(ids: list[str], first_day: date) -> list[dict]:
    """Distinct, non-clashing visits inside everyone's working hours, day after day."""
    plan = []
    day = first_day
    while len(plan) < BOOKINGS:
        if day.weekday() < 5:
            for hour in (9, 10, 11, 14, 15):
                for i, pid in enumerate(ids):
                    start = datetime.combine(day, wall(hour, 30 * (i % 2)), tzinfo=TZ)
                    plan.append({"patient_id": f"bench-{len(plan)}", "provider_id": pid,
                                 "start": start.isoformat(), "minutes": VISIT})
        day += timedelta(days=1)
    return plan[:BOOKINGS]


def naive_slots(blocks: list[av.WeeklyBlock], closed: list[av.Interval],
                busy: list[av.Interval], first_day: date, last_day: date,
                minutes: int, not_before: datetime) -> list[av.Interval]:
    """The obvious way: try every 15-minute start of every day against everything."""
    out = []
    length = timedelta(minutes=minutes)
    day = first_day
    while day <= last_day:
        for q in range(24 * 4):
            local = datetime.combine(day, wall(q // 4, (q % 4) * 15), tzinfo=TZ)
            start = local.astimezone(UTC)
            if start.astimezone(TZ).replace(tzinfo=None) != local.replace(tzinfo=None):
                continue  # a wall time that does not exist today
            end = start + length
            if start < not_before:
                continue
            end_local = end.astimezone(TZ)
            inside = any(b.applies_on(day) and b.start <= local.time()
                         and end_local.date() == day and end_local.time() <= b.end
                         and end_local.time() != wall(0) for b in blocks)
            if not inside:
                continue
            if any(c.start < end and start < c.end for c in closed):
                continue
            if any(b.start < end and start < b.end for b in busy):
                continue
            out.append(av.Interval(start, end))
        day += timedelta(days=1)
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-scheduling-"))
    pg_name = None
    if args.backend == "postgres":
        from tests.support import infra

        infra.ensure_postgres()
        pg_name = infra.create_pg_database()
        db_url = infra.pg_url(pg_name)
    else:
        db_url = f"sqlite:///{tmp / 'scheduling.db'}"
    settings = Settings.for_service("scheduling", database_url=db_url, kafka_enabled=False)
    admin = bearer(settings, "admin")
    scheduler = bearer(settings, "scheduler")
    procs = ServiceProcesses("scheduling", free_port(),
                             {"DATABASE_URL": db_url, "KAFKA_ENABLED": "false",
                              "LOG_LEVEL": "WARNING"}, tmp / "logs", web_workers=4)
    try:
        procs.migrate()
        procs.start_web()
        procs.wait_ready()
        url = procs.url
        today = datetime.now(UTC).date()
        first_day = today + timedelta(days=(7 - today.weekday()) % 7 or 7)  # next Monday
        last_day = first_day + timedelta(days=DAYS - 1)
        ids = _seed(url, admin, first_day)
        plan = _booking_plan(ids, first_day)

        def noop(http: requests.Session, _i: int) -> str | None:
            r = http.get(f"{url}/healthz")
            return None if r.status_code == 200 else r.text

        def book(http: requests.Session, i: int) -> str | None:
            r = http.post(f"{url}/appointments", json=plan[i], headers=scheduler)
            return None if r.status_code == 201 else f"{r.status_code} {r.text}"

        noop_rate = _parallel(BOOKINGS, CLIENTS, noop)
        book_rate = _parallel(BOOKINGS, CLIENTS, book)

        query = {"from": first_day.isoformat(), "to": last_day.isoformat(),
                 "visit_minutes": VISIT}
        http_times = []
        for _ in range(3):
            started = time.perf_counter()
            r = requests.get(f"{url}/availability", params=query, headers=scheduler)
            http_times.append(time.perf_counter() - started)
            assert r.status_code == 200 and len(r.json()) == PROVIDERS, r.text[:300]
        slot_count = sum(len(p["slots"]) for p in r.json())
        free_only = []
        for _ in range(3):
            started = time.perf_counter()
            r = requests.get(f"{url}/availability", params={**query, "slots": "false"},
                             headers=scheduler)
            free_only.append(time.perf_counter() - started)
            assert r.status_code == 200, r.text[:300]

        runtime = build_runtime(settings)
        desk = Diary(runtime)
        now = datetime.now(UTC)
        span = av.local_days(first_day, last_day, TZ)
        with runtime.db.transaction() as s:
            blocks, closed, busy = (templates.blocks(desk, s, ids),
                                    templates.closed(desk, s, ids, span),
                                    templates.busy(desk, s, ids, span, now))

        def ours() -> list[list[av.Interval]]:
            return [av.slots(av.free_time(blocks[p], first_day, last_day, TZ, closed=closed[p],
                                          busy=busy[p], not_before=now), VISIT, TZ)
                    for p in ids]

        def naive() -> list[list[av.Interval]]:
            return [naive_slots(blocks[p], closed[p], busy[p], first_day, last_day, VISIT, now)
                    for p in ids]

        t_ours = min(_timed(ours) for _ in range(3))
        t_naive = _timed(naive)
        assert ours() == naive(), "naive and interval-sweep availability disagree"
        runtime.db.dispose()
    finally:
        procs.stop()
        if pg_name:
            from tests.support import infra

            infra.drop_pg_database(pg_name)

    booked = sum(len(b) for b in busy.values())
    print(f"scheduling benchmark ({args.backend}, gunicorn 4 workers, {CLIENTS} clients)")
    print(f"  no-op endpoint (/healthz):      {noop_rate:8.1f} requests/s  (baseline)")
    print(f"  booking (POST /appointments):   {book_rate:8.1f} bookings/s "
          f"({booked} booked)")
    print(f"  booking / no-op ratio:          {book_rate / noop_rate:8.2f}")
    print(f"  availability via HTTP, {PROVIDERS} providers x {DAYS} days: "
          f"{statistics.median(http_times) * 1000:7.1f} ms median of 3 ({slot_count} slots)")
    print(f"  same, free time only (slots=false): {statistics.median(free_only) * 1000:7.1f} ms"
          " (the rest is serialising the slots)")
    print(f"  availability computation, ours:  {t_ours * 1000:8.1f} ms")
    print(f"  availability computation, naive: {t_naive * 1000:8.1f} ms  (baseline)")
    print(f"  naive / ours speed-up:           {t_naive / t_ours:8.1f}x")
    return 0


def _timed(fn) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


if __name__ == "__main__":
    sys.exit(main())
