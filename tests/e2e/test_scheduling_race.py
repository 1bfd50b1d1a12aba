"""Never in two places at once, under fire: 50 clients book at the same moment through
the real HTTP API (gunicorn, several workers) and exactly one of them wins, on SQLite and
on PostgreSQL — for the same slot, for overlapping times, and for one patient asked of
two providers at once; and fifty visits moved into one slot at once."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests

from services.scheduling import demo
from shared.config import Settings
from tests.support.clinic import bearer
from tests.support.processes import running_services

pytestmark = pytest.mark.kafka

CLIENTS = 50
LONDON = ZoneInfo("Europe/London")


def _next_monday() -> date:
    """A Monday at least a week ahead, so the race never books in the past."""
    today = datetime.now(UTC).date() + timedelta(days=7)
    return today + timedelta(days=(7 - today.weekday()) % 7)


def _at(day: date, hh: int, mm: int = 0) -> str:
    return datetime.combine(day, time(hh, mm), tzinfo=LONDON).isoformat()


def _race(url: str, headers: dict, bodies: list[dict], paths: list[str] | None = None
          ) -> list[requests.Response]:
    """Every client waits at the barrier, then all post at once."""
    barrier = threading.Barrier(len(bodies))
    results: list[requests.Response | None] = [None] * len(bodies)
    paths = paths or ["/appointments"] * len(bodies)

    def client(i: int) -> None:
        with requests.Session() as session:
            barrier.wait()
            results[i] = session.post(url + paths[i], json=bodies[i], headers=headers,
                                      timeout=60)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [r for r in results if r is not None]


def _assert_one_winner(responses: list[requests.Response], what: str, ok: int = 201) -> dict:
    codes = sorted(r.status_code for r in responses)
    odd = [f"{r.status_code} {r.text[:300]}" for r in responses if r.status_code not in (ok, 409)]
    assert len(responses) == CLIENTS
    assert codes.count(ok) == 1, f"{what}: {codes} {odd}"
    assert codes.count(409) == CLIENTS - 1, f"{what}: {codes} {odd}"
    for r in responses:
        if r.status_code == 409:
            assert r.headers["Content-Type"] == "application/problem+json"
            assert "already" in r.json()["detail"], r.json()
    return next(r.json() for r in responses if r.status_code == ok)


def _provider(url: str, admin: dict, name: str, discipline: str) -> str:
    made = requests.post(url + "/providers", json={"name": name, "discipline": discipline},
                         headers=admin, timeout=10)
    assert made.status_code == 201, made.text
    pid = made.json()["id"]
    week = [{"weekday": d, "start": "08:00", "end": "18:00"} for d in range(5)]
    assert requests.put(f"{url}/providers/{pid}/template", json={"blocks": week},
                        headers=admin, timeout=10).status_code == 200
    return pid


def _booked(url: str, headers: dict, **query: str) -> list[dict]:
    got = requests.get(url + "/appointments", params={**query, "status": "booked",
                                                      "limit": 500},
                       headers=headers, timeout=10)
    assert got.status_code == 200, got.text
    return got.json()


def test_fifty_clients_racing_for_one_diary_leave_exactly_one_booking(
        new_database_url, topic_prefix, tmp_path):
    admin = bearer(Settings.for_service("tests"), "admin")
    scheduler = bearer(Settings.for_service("tests"), "scheduler")
    monday = _next_monday()
    with running_services(["scheduling"], database_url=new_database_url,
                          topic_prefix=topic_prefix, log_dir=tmp_path / "logs",
                          web_workers=4) as clinic:
        url = clinic["scheduling"].url
        pain = _provider(url, admin, "Dr Okafor", "pain_medicine")
        physio = _provider(url, admin, "Sam Reid", "physical_therapy")

        # Given one slot wanted by fifty different patients at once
        same_slot = [{"patient_id": f"same-{i}", "provider_id": pain,
                      "start": _at(monday, 9), "minutes": 45} for i in range(CLIENTS)]
        won = _assert_one_winner(_race(url, scheduler, same_slot), "identical slot")
        assert [a["id"] for a in _booked(url, scheduler, provider_id=pain)] == [won["id"]]

        # Given fifty overlapping (not identical) hours: 11:00, 11:01, ... 11:49
        overlapping = [{"patient_id": f"overlap-{i}", "provider_id": pain,
                        "start": _at(monday, 11, i), "minutes": 60} for i in range(CLIENTS)]
        won_overlap = _assert_one_winner(_race(url, scheduler, overlapping), "overlapping")
        diary = _booked(url, scheduler, provider_id=pain)
        assert sorted(a["id"] for a in diary) == sorted([won["id"], won_overlap["id"]])

        # Given one patient asked of two providers at the same time, by fifty clients
        one_patient = [{"patient_id": "patient-race", "provider_id": (pain, physio)[i % 2],
                        "start": _at(monday, 14, (i % 5) * 5), "minutes": 30}
                       for i in range(CLIENTS)]
        won_patient = _assert_one_winner(_race(url, scheduler, one_patient), "one patient")
        assert [a["id"] for a in _booked(url, scheduler, patient_id="patient-race")] \
            == [won_patient["id"]]

        # Given fifty visits on Tuesday, all moved by fifty clients into one 17:00 slot
        tuesday = monday + timedelta(days=1)
        ids = []
        for i in range(CLIENTS):
            made = requests.post(url + "/appointments", headers=scheduler, timeout=10, json={
                "patient_id": f"move-{i}", "provider_id": pain,
                "start": _at(tuesday, 8 + (i * 10) // 60, (i * 10) % 60), "minutes": 10})
            assert made.status_code == 201, made.text
            ids.append(made.json()["id"])
        moves = _race(url, scheduler, [{"start": _at(tuesday, 17)}] * CLIENTS,
                      [f"/appointments/{i}/reschedule" for i in ids])
        moved = _assert_one_winner(moves, "reschedule", ok=200)
        at_five = [a for a in _booked(url, scheduler, provider_id=pain)
                   if a["start"] == datetime.fromisoformat(_at(tuesday, 17)).astimezone(UTC)
                   .isoformat()]
        assert [a["id"] for a in at_five] == [moved["id"]]

        # The demo loader's clinic seeds through the same API, and twice is harmless
        seeded = demo.seed(url, admin)
        assert demo.seed(url, admin) == seeded
        assert len(seeded["providers"]) == 8 and len(seeded["rooms"]) == 6
        everyone = requests.get(url + "/providers", headers=admin, timeout=10).json()
        assert {p["discipline"] for p in everyone} == {
            "pain_medicine", "physical_therapy", "psychology", "acupuncture"}
