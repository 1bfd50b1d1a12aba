"""The simulated patients' visits, lived in real time after `make up`: a front desk that
keeps working, so the demo clinic is not frozen at its start.

Each round it asks scheduling for the booked and checked-in visits of simulated patients
(ids starting `sim-`; the curated demo story is left as it is) that begin soon, checks a
patient in shortly before their visit, completes it once it has begun and has the
specialist sign a note, and records a no-show once a missed visit has begun. Which
visits are missed is drawn from the appointment id, so a restart decides the same way.
Only public APIs are used.
    python -m simulator.clinic_day [--every 30]
"""

from __future__ import annotations

import argparse
import hashlib
import signal
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.config import Settings
from simulator.client import ClinicClient
from simulator.journeys import PATIENCE, FrontDesk
from simulator.ledger import Ledger, VisitRecord

SIMULATED = "sim-"
NO_SHOW_PERCENT = 8  # the simulator's mix (people.decide)
CHECK_IN_FROM = timedelta(minutes=10)
LOOK_BACK = timedelta(hours=2)  # a visit begun this long ago may still be missed


def plan_of(appointment_id: str, no_show_percent: int = NO_SHOW_PERCENT) -> str:
    """Attend or miss, the same answer on every round and after a restart."""
    draw = int.from_bytes(hashlib.sha256(appointment_id.encode()).digest()[:4], "big") % 100
    return "no_show" if draw < no_show_percent else "attend"


FOLLOWED = ("booked", "arrived")  # still the desk's to act on (arrived: to complete)


def visits_to_follow(appointments: Iterable[Mapping[str, Any]], known: Mapping[str, object],
                     plan: Callable[[str], str] = plan_of) -> list[VisitRecord]:
    """The booked or checked-in visits of simulated patients the desk does not follow
    yet (a checked-in one after a restart: it is still to be completed)."""
    return [VisitRecord(a["id"], a.get("itinerary_id"), a["patient_id"], a["provider_id"],
                        a["discipline"], a["start"], status=a["status"],
                        plan="attend" if a["status"] == "arrived" else plan(a["id"]))
            for a in appointments
            if a["status"] in FOLLOWED and a["patient_id"].startswith(SIMULATED)
            and a["id"] not in known]


class ClinicDay:
    """One front desk over the clinic's real time."""

    def __init__(self, urls: dict[str, str], settings: Settings, *,
                 plan: Callable[[str], str] = plan_of) -> None:
        """`plan(appointment_id)`: "attend" or "no_show" (a test picks its own)."""
        self.urls, self.settings, self.plan = urls, settings, plan
        self.ledger = Ledger()

    def round(self, now: datetime) -> int:
        """Learn the visits coming up, act on those whose moment has come; returns how
        many were acted on. A fresh client each round: tokens stay fresh for ever."""
        client = ClinicClient(self.urls, self.settings)
        scheduler = client.headers("scheduler", "sim-front-desk")
        for status in FOLLOWED:
            resp = client.retrying("GET", "scheduling", "/appointments", "/appointments",
                                   scheduler, patience=PATIENCE, params={
                                       "status": status, "limit": 500,
                                       "from": (now - LOOK_BACK).isoformat(),
                                       "to": (now + CHECK_IN_FROM).isoformat()})
            resp.raise_for_status()
            for record in visits_to_follow(resp.json(), self.ledger.visits, self.plan):
                self.ledger.add(record)
        acted = FrontDesk(client, self.ledger, check_in_from=CHECK_IN_FROM).work(now)
        with self.ledger.lock:  # done with: forget, so a clinic running for weeks stays small
            for done in [k for k, v in self.ledger.visits.items() if v.status not in FOLLOWED]:
                del self.ledger.visits[done]
            del self.ledger.failures[:-100]
        return acted

    def run(self, stop: threading.Event, every: float) -> None:
        while not stop.is_set():
            try:
                acted = self.round(datetime.now(UTC))
            except Exception as exc:  # a service down for a while: try again next round
                print(f"clinic day: round failed: {exc!r}", flush=True)
            else:
                if acted:
                    print(f"clinic day: acted on {acted} visit(s); "
                          f"{dict(self.ledger.outcomes)}", flush=True)
            stop.wait(every)


def main() -> int:
    from shared.launcher import PORTS

    parser = argparse.ArgumentParser(description="Keep the simulated patients' visits "
                                                 "going at a running PainCare clinic.")
    parser.add_argument("--every", type=float, default=30.0, help="seconds between rounds")
    args = parser.parse_args()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    urls = {s: f"http://127.0.0.1:{p}" for s, p in PORTS.items()}
    print(f"clinic day: the front desk works every {args.every:.0f} s", flush=True)
    ClinicDay(urls, Settings.for_service("simulator")).run(stop, args.every)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
