"""The clinic's times on the day, on a real database: a patient is checked in only once
the visit's check-in window has opened (12 hours before, SCHEDULING_CHECK_IN_HOURS), and
a visit is completed or recorded as missed only once it has begun. Each refusal is a 409
problem+json that says when the step becomes possible, and changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.scheduling.app import create_app
from tests.integration.scheduling.conftest import Clinic, Clock
from tests.support.clinic import bearer

MON_10 = "2026-03-23T10:00:00+00:00"  # London is on GMT until 29 March
START = datetime(2026, 3, 23, 10, tzinfo=UTC)
JUST = timedelta(seconds=1)


def _visit(clinic: Clinic) -> str:
    made = clinic.book("pain", MON_10)
    assert made.status_code == 201, made.json
    return f"/appointments/{made.json['id']}"


def _status(clinic: Clinic, path: str) -> str:
    return clinic.get(path).json["status"]


def _refused(resp, words: str) -> None:  # type: ignore[no-untyped-def]
    assert resp.status_code == 409, resp.json
    assert resp.headers["Content-Type"] == "application/problem+json"
    assert words in resp.json["detail"]
    assert "start" in resp.json["errors"]


def test_check_in_opens_twelve_hours_before_the_visit_to_the_second(clinic: Clinic) -> None:
    path = _visit(clinic)
    clinic.clock.now = START - timedelta(hours=12) - JUST
    early = clinic.post(path + "/check-in", {})
    _refused(early, "check-in for this visit opens at Sun 22 Mar 2026 22:00 clinic time")
    assert "2026-03-22T22:00:00+00:00" in early.json["detail"]
    assert _status(clinic, path) == "booked"
    assert not clinic.events("appointment.checked_in")

    clinic.clock.now = START - timedelta(hours=12)
    assert clinic.post(path + "/check-in", {}).json["status"] == "arrived"
    assert len(clinic.events("appointment.checked_in")) == 1


def test_a_visit_is_completed_only_once_it_has_begun(clinic: Clinic) -> None:
    """The visit at 10:00 completed at 03:35 and shown as fulfilled: no longer."""
    path = _visit(clinic)
    clinic.clock.now = START - timedelta(hours=6, minutes=25)  # 03:35
    assert clinic.post(path + "/check-in", {}).json["status"] == "arrived"
    for now in (START - timedelta(hours=6, minutes=25), START - JUST):
        clinic.clock.now = now
        early = clinic.post(path + "/complete", {})
        _refused(early, "can be completed only once it has begun, from Mon 23 Mar 2026 10:00")
        assert "2026-03-23T10:00:00+00:00" in early.json["errors"]["start"][0]
        assert _status(clinic, path) == "arrived"
    assert not clinic.events("appointment.completed")

    clinic.clock.now = START
    assert clinic.post(path + "/complete", {}).json["status"] == "fulfilled"
    assert len(clinic.events("appointment.completed")) == 1


def test_a_no_show_only_from_the_start_to_the_second(clinic: Clinic) -> None:
    path = _visit(clinic)
    clinic.clock.now = START - JUST
    _refused(clinic.post(path + "/no-show", {}), "recorded as a no-show only once it has begun")
    clinic.clock.now = START + JUST
    assert clinic.post(path + "/no-show", {}).json["status"] == "noshow"


def test_a_refused_move_says_so_before_it_talks_of_time(clinic: Clinic) -> None:
    """A booked visit cannot be completed at all (check-in first), whatever the hour."""
    path = _visit(clinic)
    clinic.clock.now = START - timedelta(days=2)
    refused = clinic.post(path + "/complete", {})
    assert refused.status_code == 409
    assert "booked cannot become fulfilled" in refused.json["detail"]


def test_the_check_in_window_is_the_clinics_setting(settings_for) -> None:  # type: ignore[no-untyped-def]
    settings = settings_for("scheduling", extra={"SCHEDULING_CHECK_IN_HOURS": "2"})
    clock = Clock()
    app = create_app(settings, clock=clock)
    clinic = Clinic(app.test_client(), app, clock, bearer(settings, "admin"),
                    bearer(settings, "scheduler"))
    made = clinic.post("/providers", {"name": "Dr Okafor", "discipline": "pain_medicine",
                                      "email": "pain@clinic.test"}, clinic.admin)
    clinic.ids["pain"] = made.json["id"]
    week = [{"weekday": d, "start": "09:00", "end": "17:00"} for d in range(5)]
    assert clinic.client.put(f"/providers/{clinic.ids['pain']}/template",
                             json={"blocks": week}, headers=clinic.admin).status_code == 200
    path = _visit(clinic)
    clock.now = START - timedelta(hours=2) - JUST
    _refused(clinic.post(path + "/check-in", {}), "opens at Mon 23 Mar 2026 08:00")
    clock.now = START - timedelta(hours=2)
    assert clinic.post(path + "/check-in", {}).json["status"] == "arrived"
