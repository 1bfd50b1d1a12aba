"""The visit's moments, pure: check-in from the window's opening, completion and no-show
from the start; the refusal says when."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.scheduling.diary import domain
from shared.errors import Conflict

LONDON = ZoneInfo("Europe/London")
START = datetime(2026, 7, 1, 14, tzinfo=LONDON)  # 13:00 UTC, British Summer Time
WINDOW = timedelta(hours=12)
SECOND = timedelta(seconds=1)


def check(target: str, now: datetime) -> None:
    domain.check_visit_moment(target, START.astimezone(UTC), now, check_in_opens=WINDOW,
                              tz=LONDON)


@pytest.mark.parametrize(("target", "allowed_from"), [
    ("arrived", START - WINDOW), ("fulfilled", START), ("noshow", START)])
def test_each_step_is_allowed_from_its_moment_and_not_a_second_before(
        target: str, allowed_from: datetime) -> None:
    check(target, allowed_from)
    check(target, allowed_from + timedelta(hours=3))
    with pytest.raises(Conflict) as refused:
        check(target, allowed_from - SECOND)
    assert refused.value.status == 409
    assert "start" in refused.value.errors


def test_the_refusal_says_when_in_clinic_time_and_utc() -> None:
    with pytest.raises(Conflict) as early:
        check("fulfilled", datetime(2026, 7, 1, 3, 35, tzinfo=LONDON))
    assert "from Wed 01 Jul 2026 14:00 clinic time (2026-07-01T13:00:00+00:00)" in \
        early.value.detail
    with pytest.raises(Conflict) as too_soon:
        check("arrived", START - WINDOW - SECOND)
    assert "opens at Wed 01 Jul 2026 02:00 clinic time" in too_soon.value.detail


def test_confirming_a_hold_is_no_business_of_the_clock() -> None:
    check("booked", START - timedelta(days=30))


@pytest.mark.parametrize("hours", [0, -1, 25])
def test_a_check_in_window_that_makes_no_sense_is_refused(hours: float) -> None:
    with pytest.raises(ValueError, match="SCHEDULING_CHECK_IN_HOURS"):
        domain.check_in_window(hours)


def test_the_default_window_is_twelve_hours() -> None:
    assert domain.check_in_window(domain.DEFAULT_CHECK_IN_HOURS) == timedelta(hours=12)
