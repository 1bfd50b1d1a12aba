"""The front desk `make up` leaves running (simulator.clinic_day), against real services
and the real broker: as their times come, a simulated patient's visit is checked in,
completed once it has begun and its note signed; a missed one becomes a no-show only
once it has begun; the curated demo story's patients are left alone."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from shared.config import Settings
from simulator.clinic_day import ClinicDay
from simulator.run import ROUND_THE_CLOCK_ENV, ClinicSimulation, SimulationPlan
from tests.support.clinic import bearer
from tests.support.processes import running_services

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(600)]


def test_visits_go_on_as_their_times_come(kafka_bootstrap: str, topic_prefix: str,
                                          tmp_path: Path) -> None:
    with running_services(["scheduling", "notes"], topic_prefix=topic_prefix,
                          database_url=lambda s: f"sqlite:///{tmp_path}/{s}.db",
                          log_dir=tmp_path / "logs", extra_env=ROUND_THE_CLOCK_ENV,
                          web_workers=1) as procs:
        urls = {s: p.url for s, p in procs.items()}
        settings = Settings.for_service("tests", topic_prefix=topic_prefix,
                                        kafka_bootstrap=kafka_bootstrap)
        staff = ClinicSimulation(urls, settings, SimulationPlan()).open_clinic()
        psychologists = sorted(p for p, d in staff.providers.items() if d == "psychology")
        scheduler = bearer(settings, "scheduler")
        begins = (datetime.now(UTC) + timedelta(seconds=90)).replace(second=0, microsecond=0)

        def book(patient: str, provider: str) -> str:
            resp = requests.post(f"{urls['scheduling']}/appointments", headers=scheduler,
                                 timeout=10, json={"patient_id": patient,
                                                   "provider_id": provider,
                                                   "start": begins.isoformat(),
                                                   "minutes": 30})
            assert resp.status_code == 201, resp.text
            return resp.json()["id"]

        attended = book("sim-live-00001", psychologists[0])
        missed = book("sim-live-00002", psychologists[1])
        curated = book("demo-pat-777", psychologists[2])

        def status(appointment_id: str) -> str:
            return requests.get(f"{urls['scheduling']}/appointments/{appointment_id}",
                                headers=scheduler, timeout=10).json()["status"]

        day = ClinicDay(urls, settings,
                        plan=lambda a: "no_show" if a == missed else "attend")
        day.round(datetime.now(UTC))  # within check-in time: checked in, not yet seen
        assert status(attended) == "arrived", day.ledger.failures
        assert status(missed) == "booked"  # not begun: no no-show yet
        deadline = time.monotonic() + 240
        while "booked" in (status(missed), status(attended)) or status(attended) == "arrived":
            if time.monotonic() > deadline:
                break
            if datetime.now(UTC) < begins:  # before the start the desk completes nothing
                assert status(attended) == "arrived", day.ledger.failures
            time.sleep(2)
            day.round(datetime.now(UTC))
        assert status(missed) == "noshow", day.ledger.failures
        assert status(attended) == "fulfilled", day.ledger.failures
        assert day.ledger.outcomes["note signed"] == 1, day.ledger.failures
        assert datetime.now(UTC) >= begins
        assert status(curated) == "booked"  # the demo story is not the desk's to act on
        assert not day.ledger.failures
        assert not day.ledger.visits  # done with: forgotten, so the desk stays small
