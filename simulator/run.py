"""Runs the simulated clinic: new patients arrive at a steady rate, each on their own
journey (a thread from a bounded pool), while the front desk works through the visits
whose day has come. `python -m simulator.run --help` for a run against a live clinic.
"""

from __future__ import annotations

import argparse
import random
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from services.scheduling import demo as scheduling_demo
from shared.config import Settings
from simulator.client import ClinicClient, Timings, Unanswered
from simulator.journeys import FrontDesk, PatientJourney, Staff, moment
from simulator.ledger import Ledger, VisitRecord
from simulator.people import decide, make_patient

# A clinic open round the clock, so that every step of a journey (check-in, no-show, the
# visit's note) is reachable within a run of minutes at any hour the run happens.
ROUND_THE_CLOCK_HOURS = [("00:00", "23:55")]
ROUND_THE_CLOCK: list[dict] = [
    {"name": f"Sim {discipline.replace('_', ' ').title()} {n}", "discipline": discipline,
     "visit_types": types, "email": f"sim.{discipline}.{n}@paincare.test",
     "hours": ROUND_THE_CLOCK_HOURS}
    for discipline, types in (
        ("pain_medicine", ["initial_assessment", "follow_up", "medication_review"]),
        ("physical_therapy", ["initial_assessment", "follow_up"]),
        ("psychology", ["initial_assessment", "follow_up"]),
        ("acupuncture", ["initial_assessment", "follow_up"]))
    for n in (1, 2, 3)]
# What the services must be told for the same clinic: the itinerary search keeps to the
# clinic's opening hours (ITINERARY_CLINIC_*), office hours by default; a five-minute grid
# lets the first visits begin (and be missed) within a run.
ROUND_THE_CLOCK_ENV = {"ITINERARY_CLINIC_OPENS": "00:00", "ITINERARY_CLINIC_CLOSES": "23:59",
                       "ITINERARY_CLINIC_WEEKDAYS": "0,1,2,3,4,5,6",
                       "ITINERARY_SLOT_MINUTES": "5"}
ROUND_THE_CLOCK_ROOMS: list[dict] = [
    {"name": f"Sim {kind.replace('_', ' ')} {n}", "kind": kind, "fit_for": [discipline]}
    for discipline, kind in (("pain_medicine", "consulting_room"), ("physical_therapy", "pt_gym"),
                             ("psychology", "psychology_room"),
                             ("acupuncture", "acupuncture_room"))
    for n in (1, 2, 3)]


@dataclass
class SimulationPlan:
    """How much clinic to simulate."""

    patients: int = 20  # upper bound on new referrals
    seconds: float | None = None  # stop admitting new patients after this long
    rate: float = 1.0  # new referrals per second
    concurrency: int = 8  # journeys in flight at once
    short_pathways: bool = True  # one visit per discipline (load); False: full courses
    round_the_clock: bool = True  # the simulator's own clinic; False: the demo clinic
    seed: int = 7
    run_id: str = field(default_factory=lambda: datetime.now(UTC).strftime("%H%M%S"))
    front_desk_every: float = 2.0
    # The first patients of the run miss their first visit (see people.decide); in an empty
    # clinic those visits begin within minutes, so `await_missed_visits` can see them out.
    missed_first_visits: int = 0


class ClinicSimulation:
    """One run: a ledger of what was acknowledged and the latency of every call."""

    def __init__(self, urls: dict[str, str], settings: Settings, plan: SimulationPlan,
                 *, ledger: Ledger | None = None, timings: Timings | None = None) -> None:
        self.urls, self.settings, self.plan = urls, settings, plan
        self.ledger = ledger or Ledger()
        self.timings = timings or Timings()
        self._stop = threading.Event()
        self._local = threading.local()
        self.staff: Staff | None = None

    def client(self) -> ClinicClient:
        """One HTTP session per thread (requests' Session is not thread-safe)."""
        if not hasattr(self._local, "client"):
            self._local.client = ClinicClient(self.urls, self.settings, self.timings)
        return self._local.client

    # --------------------------------------------------------------------- set-up
    def open_clinic(self) -> Staff:
        """The simulator's staff and rooms, through the scheduling API (kept if there)."""
        admin = self.client().headers("admin", "sim-admin")
        if self.plan.round_the_clock:
            scheduling_demo.seed(self.urls["scheduling"], admin, providers=ROUND_THE_CLOCK,
                                 rooms=ROUND_THE_CLOCK_ROOMS, weekdays=range(7))
            names = {p["name"] for p in ROUND_THE_CLOCK}
        else:
            scheduling_demo.seed(self.urls["scheduling"], admin)
            names = {p["name"] for p in scheduling_demo.PROVIDERS}
        listing = self.client().retrying("GET", "scheduling", "/providers", "/providers",
                                         admin).json()
        providers = {p["id"]: p["discipline"] for p in listing if p["name"] in names}
        lead = sorted(pid for pid, d in providers.items() if d == "pain_medicine")[0]
        self.staff = Staff(lead, providers)
        return self.staff

    # ------------------------------------------------------------------------ run
    def run(self) -> Ledger:
        """Admit patients at the planned rate until the count or the time is reached,
        then let every journey and the day's due visits finish."""
        staff = self.staff or self.open_clinic()
        rng = random.Random(self.plan.seed)
        desk = threading.Thread(target=self._front_desk_loop, daemon=True)
        desk.start()
        started = time.monotonic()
        futures: list[Future] = []
        with ThreadPoolExecutor(self.plan.concurrency, thread_name_prefix="journey") as pool:
            for n in range(self.plan.patients):
                if self._stop.is_set() or (self.plan.seconds is not None and
                                           time.monotonic() - started >= self.plan.seconds):
                    break
                patient = make_patient(rng, self.plan.run_id, n)
                journey_rng = random.Random(rng.random())
                decisions = decide(journey_rng,
                                   misses_first_visit=n < self.plan.missed_first_visits)
                futures.append(pool.submit(self._journey, staff, patient, decisions,
                                           journey_rng))
                due = started + (n + 1) / self.plan.rate
                time.sleep(max(0.0, due - time.monotonic()))
            for f in futures:
                if self._stop.is_set():  # stop(): abandon what has not begun
                    pool.shutdown(wait=False, cancel_futures=True)
                    break
                f.result()
        self._stop.set()
        desk.join()  # each of its steps is bounded (PATIENCE); it must be done before we return
        self.front_desk_round()  # the visits that came due while the last journeys ran
        return self.ledger

    def stop(self) -> None:
        self._stop.set()

    def _journey(self, staff: Staff, patient, decisions, rng: random.Random) -> None:  # type: ignore[no-untyped-def]
        try:
            PatientJourney(self.client(), self.ledger, staff, patient, decisions, rng,
                           short_pathway=self.plan.short_pathways).run()
        except Unanswered as exc:
            self.ledger.fail(f"journey of {patient.patient_id} gave up: {exc}")
        except Exception as exc:  # a simulator bug must show, not hang the run
            self.ledger.fail(f"journey of {patient.patient_id} broke: {exc!r}")

    def await_missed_visits(self, within: float) -> int:
        """Keep the front desk going until each visit meant to be missed that begins in the
        next `within` seconds has begun and its no-show is recorded (the service refuses a
        no-show earlier). Returns how many such visits are still booked at the end."""
        horizon = datetime.now(UTC) + timedelta(seconds=within)

        def waiting() -> list[VisitRecord]:
            with self.ledger.lock:
                visits = list(self.ledger.visits.values())
            return [v for v in visits if v.plan == "no_show" and v.status == "booked"
                    and not v.uncertain and moment(v.start) <= horizon]

        deadline = time.monotonic() + within + 60  # the round that records the last one
        while waiting() and time.monotonic() < deadline:
            self.front_desk_round()
            time.sleep(self.plan.front_desk_every)
        return len(waiting())

    def _front_desk_loop(self) -> None:
        while not self._stop.wait(self.plan.front_desk_every):
            self.front_desk_round()

    def front_desk_round(self) -> int:
        return FrontDesk(self.client(), self.ledger).work(datetime.now(UTC))


def main() -> int:
    from shared.launcher import PORTS

    parser = argparse.ArgumentParser(description="Drive a running PainCare clinic.")
    parser.add_argument("--patients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--rate", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--demo-clinic", action="store_true",
                        help="use the demo clinic's office hours, full pathways")
    parser.add_argument("--missed-first-visits", type=int, default=0,
                        help="the first N patients miss their first visit; the run then "
                             "waits (up to --await-missed seconds) to record those no-shows")
    parser.add_argument("--await-missed", type=float, default=420.0)
    args = parser.parse_args()
    plan = SimulationPlan(patients=args.patients, seconds=args.seconds, rate=args.rate,
                          concurrency=args.concurrency, short_pathways=not args.demo_clinic,
                          round_the_clock=not args.demo_clinic,
                          missed_first_visits=args.missed_first_visits)
    urls = {s: f"http://127.0.0.1:{p}" for s, p in PORTS.items()}
    sim = ClinicSimulation(urls, Settings.for_service("simulator"), plan)
    ledger = sim.run()
    if args.missed_first_visits:
        sim.await_missed_visits(args.await_missed)
    for key, value in ledger.summary().items():
        print(f"{key}: {value}")
    for line in ledger.failures[:20]:
        print(f"  unexpected: {line}")
    for row in sim.timings.rows():
        print("  {:<40} n={:<5} p50={:.0f}ms p95={:.0f}ms p99={:.0f}ms max={:.0f}ms {}".format(
            *row))
    return 0 if not ledger.failures else 1


if __name__ == "__main__":
    raise SystemExit(main())
