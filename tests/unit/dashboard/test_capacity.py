"""Capacity arithmetic of the dashboard: minutes a provider's template gives in a window,
minus leave and closures, in the clinic's time zone, and utilisation from it."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.dashboard import domain
from services.dashboard.domain import Snapshot, available_minutes, clinic_figures
from shared.errors import InvalidInput
from tests.unit.dashboard.stories import NOW, capacity, provider, visit

LONDON = ZoneInfo("Europe/London")
WEEKDAYS_9_TO_5 = 5 * 8 * 60


def cap(*, blocks=None, leave=(), at=None) -> domain.Capacity:  # type: ignore[no-untyped-def]
    env = capacity("pm1", "pain_medicine", blocks=blocks, leave=leave, at=at)
    return domain.capacity_of(env.payload, env.occurred_at)


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=LONDON).astimezone(UTC)


def test_a_week_with_the_autumn_change_keeps_wall_times():
    # British Summer Time ends on Sunday 25 October 2026: 09:00-17:00 stays 8 h a day
    monday = date(2026, 10, 19)
    assert available_minutes(cap(), monday, monday + timedelta(days=6)) == WEEKDAYS_9_TO_5
    # a night block over the change is the hour longer the clock repeats, and the spring
    # change's night the hour shorter it skips
    night = cap(blocks=[(6, "00:00", "04:00")])
    assert available_minutes(night, monday, monday + timedelta(days=6)) == 5 * 60
    spring = date(2026, 3, 23)
    assert available_minutes(night, spring, spring + timedelta(days=6)) == 3 * 60
    assert available_minutes(night, date(2026, 11, 23), date(2026, 11, 29)) == 4 * 60


def test_an_exception_over_part_of_a_day_takes_only_those_minutes():
    wednesday = date(2026, 11, 25)
    leave = [(local(wednesday, 13), local(wednesday, 15, 30))]
    week = (date(2026, 11, 23), date(2026, 11, 29))
    assert available_minutes(cap(leave=leave), *week) == WEEKDAYS_9_TO_5 - 150
    # leave running past the working day counts only the working part
    evening = [(local(wednesday, 16), local(wednesday, 23))]
    assert available_minutes(cap(leave=evening), *week) == WEEKDAYS_9_TO_5 - 60


def test_overlapping_exceptions_are_counted_once():
    thursday = date(2026, 11, 26)
    leave = [(local(thursday, 10), local(thursday, 14)),   # the provider's leave
             (local(thursday, 12), local(thursday, 16)),   # a clinic closure over it
             (local(thursday, 11), local(thursday, 12))]   # and training inside it
    week = (date(2026, 11, 23), date(2026, 11, 29))
    assert available_minutes(cap(leave=leave), *week) == WEEKDAYS_9_TO_5 - 6 * 60


def test_a_block_valid_only_part_of_the_week_and_a_window_of_one_day():
    env = capacity("pm1", "pain_medicine", blocks=[(0, "09:00", "12:00"), (2, "09:00", "17:00")])
    payload = {**env.payload, "blocks": [{**env.payload["blocks"][0]},
                                         {**env.payload["blocks"][1],
                                          "valid_from": "2026-12-01"}]}
    c = domain.capacity_of(payload, NOW)
    assert available_minutes(c, date(2026, 11, 23), date(2026, 11, 29)) == 180
    assert available_minutes(c, date(2026, 11, 30), date(2026, 12, 6)) == 180 + 480


def test_utilisation_is_booked_over_available_and_the_latest_capacity_wins():
    snap = Snapshot()
    thursday = date(2026, 11, 26)
    for env in (
        provider("pm1", "pain_medicine"), provider("pm2", "pain_medicine"),
        capacity("pm1", "pain_medicine", at=NOW - timedelta(days=1),
                 leave=[(local(thursday, 9), local(thursday, 17))]),
        # an older event arriving late changes nothing
        capacity("pm1", "pain_medicine", at=NOW - timedelta(days=2)),
        visit("appointment.booked", "a1", provider_id="pm1", discipline="pain_medicine",
              start=NOW, minutes=240),
        visit("appointment.booked", "a2", provider_id="pm2", discipline="pain_medicine",
              start=NOW, minutes=90),
    ):
        snap.apply(env.type, env.payload, env.occurred_at)
    util = clinic_figures(snap, now=NOW, tz=LONDON, weekly_hours=37.5)["utilisation"]
    by_id = {p["provider_id"]: p for p in util["by_provider"]}
    assert by_id["pm1"] == {"provider_id": "pm1", "name": "Dr pm1",
                            "discipline": "pain_medicine", "booked_hours": 4.0,
                            "capacity_hours": 32.0, "capacity_known": True,
                            "utilisation": 0.125}
    assert by_id["pm2"]["capacity_known"] is False
    assert by_id["pm2"]["capacity_hours"] == 37.5
    pm = next(d for d in util["by_discipline"] if d["discipline"] == "pain_medicine")
    assert pm["capacity_hours"] == 69.5
    assert pm["utilisation"] == round(5.5 / 69.5, 4)
    assert pm["capacity_unknown"] == 1


def test_a_provider_with_no_template_this_week_has_no_ratio():
    snap = Snapshot()
    for env in (provider("pm1", "pain_medicine"),
                capacity("pm1", "pain_medicine", blocks=[])):
        snap.apply(env.type, env.payload, env.occurred_at)
    util = clinic_figures(snap, now=NOW, tz=LONDON, weekly_hours=37.5)["utilisation"]
    assert util["by_provider"][0]["capacity_hours"] == 0
    assert util["by_provider"][0]["utilisation"] is None
    assert util["capacity_unknown"] == 0


def test_an_unknown_time_zone_is_refused():
    env = capacity("pm1", "pain_medicine")
    with pytest.raises(InvalidInput):
        domain.capacity_of({**env.payload, "timezone": "Mars/Olympus"}, NOW)
