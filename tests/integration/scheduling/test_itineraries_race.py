"""Itineraries under real concurrency (two threads, two transactions), on SQLite and
PostgreSQL: whoever wins, a slot is never given twice.

Same clinic as test_itineraries.py; the cluster a search finds first for Mon 23 March is
pain medicine 09:00-10:00, PT 10:00-10:45, psychology 10:45-11:30.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from itertools import combinations

from sqlalchemy import select

from services.scheduling.diary.db import appointments
from services.scheduling.itineraries.planner import taking_time
from tests.integration.scheduling.test_itineraries import ask, propose


def race(app, *calls: Callable[[object], object]) -> list:
    """Run each call on its own test client at the same moment; their responses."""
    barrier = threading.Barrier(len(calls))
    out: list = [None] * len(calls)

    def run(i: int, call: Callable[[object], object]) -> None:
        client = app.test_client()
        barrier.wait()
        out[i] = call(client)

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out


def assert_never_in_two_places(clinic) -> None:
    """No provider, room or patient has two live appointments that overlap."""
    runtime = clinic.app.extensions["paincare.runtime"]
    a = appointments.c
    with runtime.db.transaction() as s:
        live = s.execute(select(a.provider_id, a.room_id, a.patient_id, a.start_at, a.end_at)
                         .where(taking_time(clinic.clock.now))).all()
    for x, y in combinations(live, 2):
        if x.start_at < y.end_at and y.start_at < x.end_at:
            assert x.provider_id != y.provider_id, (x, y)
            assert x.patient_id != y.patient_id, (x, y)
            assert x.room_id is None or x.room_id != y.room_id, (x, y)


def test_a_booking_racing_the_confirm_of_a_lapsed_hold(clinic):
    """The hold has lapsed. A scheduler confirms while another books Dr Okafor at 09:00 for
    someone else: either the itinerary is booked and the booking refused, or the booking
    wins and the confirm answers 409 with the itinerary searched again. Never both."""
    it = propose(clinic)
    clinic.clock.advance(minutes=20)
    confirm, steal = race(
        clinic.app,
        lambda c: c.post(f"/itineraries/{it['id']}/confirm", json={},
                         headers=clinic.scheduler),
        lambda c: c.post("/appointments", json={
            "patient_id": "p-2", "provider_id": clinic.ids["pain"],
            "start": "2026-03-23T09:00:00+00:00", "minutes": 45}, headers=clinic.scheduler))
    assert (confirm.status_code, steal.status_code) in ((200, 409), (409, 201)), \
        (confirm.json, steal.json)
    if steal.status_code == 201:
        assert "was lost" in confirm.json["errors"]["changes"][0]
        again = clinic.get(f"/itineraries/{it['id']}").json
        assert again["status"] == "proposed"
        assert again["visits"][0]["start"].startswith("2026-03-23T09:45")
    else:
        assert "already booked" in steal.json["detail"]
        assert {v["status"] for v in confirm.json["visits"]} == {"booked"}
    assert_never_in_two_places(clinic)


def test_two_schedulers_proposing_at_once_never_hold_the_same_slot(clinic):
    """Both see the same free morning; one holds the 09:00 cluster, the other is held the
    next cluster that fits (pain medicine from 11:30, after the first one's rooms)."""
    first, second = race(
        clinic.app,
        lambda c: c.post("/itineraries", json=ask(patient_id="p-1", referral_id="r-1"),
                         headers=clinic.scheduler),
        lambda c: c.post("/itineraries", json=ask(patient_id="p-2", referral_id="r-2"),
                         headers=clinic.scheduler))
    assert first.status_code == 201, first.json
    assert second.status_code == 201, second.json
    starts = sorted(r.json["visits"][0]["start"][11:16] for r in (first, second))
    assert starts == ["09:00", "11:30"]
    assert_never_in_two_places(clinic)
