"""What an itinerary search is asked and how long it holds, without a database: the
window (never before now, long enough for the pathway's series, in the clinic's local
days) and the hold settings.

Now is Fri 20 Mar 2026 08:00 UTC; London changes to BST on Sun 29 March.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from services.scheduling.itineraries.planner import Planner
from services.scheduling.itineraries.use_cases import searching
from shared.config import Settings
from shared.errors import InvalidInput

NOW = datetime(2026, 3, 20, 8, tzinfo=UTC)
PAIN = {"discipline": "pain_medicine", "visit_minutes": 60, "sessions": 1, "interval_days": 0}


def itineraries(**extra: str) -> Planner:
    settings = Settings.for_service("scheduling", database_url="sqlite://", extra=extra)
    desk = SimpleNamespace(runtime=SimpleNamespace(settings=settings),
                           tz=ZoneInfo(settings.clinic_timezone))
    return Planner(desk)  # type: ignore[arg-type]


def ask(**data: object):  # type: ignore[no-untyped-def]
    return searching.ask(itineraries(), NOW, {"patient_id": "p-1", "pathway": [PAIN], **data})


def test_without_dates_the_window_runs_six_weeks_from_now_to_local_midnight() -> None:
    a = ask()
    assert a.earliest == NOW
    # 20 Mar + 42 days = Fri 1 May; it ends at local midnight after it (BST: 23:00 UTC)
    assert a.latest == datetime(2026, 5, 1, 23, tzinfo=UTC)


def test_the_window_never_starts_in_the_past() -> None:
    assert ask(first_day=date(2026, 3, 1), last_day=date(2026, 3, 27)).earliest == NOW
    later = ask(first_day=date(2026, 3, 23), last_day=date(2026, 3, 27))
    assert later.earliest == datetime(2026, 3, 23, 0, tzinfo=UTC)
    assert later.latest == datetime(2026, 3, 28, 0, tzinfo=UTC)


def test_a_long_series_stretches_the_window_to_fit_it() -> None:
    """Twelve weekly PT sessions: 11 intervals of 7 days plus 3 of slack each, plus two
    weeks for the first visit = 124 days."""
    pt = {"discipline": "physical_therapy", "visit_minutes": 45, "sessions": 12,
          "interval_days": 7}
    a = ask(pathway=[PAIN, pt])
    assert a.latest.astimezone(ZoneInfo("Europe/London")).date() == date(2026, 7, 23)
    huge = {**pt, "sessions": 52, "interval_days": 90}
    capped = ask(pathway=[PAIN, huge])
    assert (capped.latest - capped.earliest).days <= 191


@pytest.mark.parametrize(("data", "field"), [
    ({"first_day": date(2026, 3, 27), "last_day": date(2026, 3, 23)}, "to"),
    ({"last_day": date(2026, 3, 19)}, "to"),
    ({"last_day": date(2026, 12, 31)}, "to"),
    ({"pathway": [{**PAIN, "discipline": "reiki"}]}, "discipline"),
])
def test_a_window_or_pathway_the_clinic_cannot_search(data: dict, field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        ask(**data)
    assert field in refused.value.errors


def test_only_known_rules_and_weights_are_kept() -> None:
    a = ask(rules={"max_gap_minutes": 30, "beam_width": 99},
            weights={"trips": 2.0, "bribes": 1.0},
            unavailable=[{"start": datetime(2026, 3, 23, 10, tzinfo=UTC),
                          "end": datetime(2026, 3, 23, 11, tzinfo=UTC)}])
    assert a.rules == {"max_gap_minutes": 30}
    assert a.weights == {"trips": 2.0}
    assert a.patient_busy == [(datetime(2026, 3, 23, 10, tzinfo=UTC),
                               datetime(2026, 3, 23, 11, tzinfo=UTC))]
    assert searching.rules_of(itineraries(), a).slot_minutes == 15


def test_hold_time_and_clinic_hours_come_from_the_settings() -> None:
    default = itineraries()
    assert default.hold_minutes == 15.0
    assert (default.hours.opens, default.hours.closes) == (time(8), time(18))
    assert default.hours.weekdays == frozenset(range(5))
    custom = itineraries(ITINERARY_HOLD_MINUTES="5", ITINERARY_CLINIC_OPENS="07:30",
                         ITINERARY_CLINIC_WEEKDAYS="0,2,4,5")
    assert custom.hold_minutes == 5.0
    assert custom.hours.opens == time(7, 30)
    assert custom.hours.weekdays == frozenset({0, 2, 4, 5})
