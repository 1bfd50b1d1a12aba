"""Breach risk, pure: a first visit after the due date (in the clinic's time zone), a
referral still unscheduled close to its due date, and the risk raised and lifted."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.referrals import domain
from services.referrals.domain import Actor, BreachRisk, Referral

LONDON = ZoneInfo("Europe/London")
DUE = date(2026, 7, 10)
NOW = datetime(2026, 6, 20, 9, tzinfo=UTC)
SYSTEM = Actor("scheduling", "service")


def referral(status: str = domain.ACCEPTED, due_by: date | None = DUE, **kw) -> Referral:  # type: ignore[no-untyped-def]
    return Referral("ref-1", "pat-1", "crps", datetime(2026, 6, 12, tzinfo=UTC),
                    status=status, priority="soon", due_by=due_by, **kw)


@pytest.mark.parametrize(("first_visit", "late"), [
    (datetime(2026, 7, 10, 22, 59, tzinfo=UTC), False),  # 23:59 BST on the due date
    (datetime(2026, 7, 10, 23, 0, tzinfo=UTC), True),    # 00:00 BST the day after
    (datetime(2026, 7, 9, 23, 30, tzinfo=UTC), False),   # 00:30 BST on the due date
    (datetime(2026, 7, 11, 8, tzinfo=UTC), True),
])
def test_a_first_visit_is_late_by_the_clinics_calendar(first_visit: datetime,
                                                       late: bool) -> None:
    assert domain.first_visit_is_late(DUE, first_visit, LONDON) is late


def test_no_due_date_is_never_late() -> None:
    assert not domain.first_visit_is_late(None, datetime(2030, 1, 1, tzinfo=UTC), LONDON)


@pytest.mark.parametrize(("today", "near"), [
    (DUE - timedelta(days=3), False), (DUE - timedelta(days=2), True),
    (DUE, True), (DUE + timedelta(days=5), True),  # already past: still worth saying
])
def test_unscheduled_near_due_within_the_warning_days(today: date, near: bool) -> None:
    assert domain.is_unscheduled_near_due(referral(), today=today, warning_days=2) is near


@pytest.mark.parametrize("status", [domain.RECEIVED, domain.SCHEDULED, domain.ON_HOLD,
                                    domain.IN_CARE, domain.CANCELLED])
def test_only_triaged_or_accepted_referrals_count_as_unscheduled(status: str) -> None:
    assert not domain.is_unscheduled_near_due(referral(status), today=DUE, warning_days=2)
    assert domain.is_unscheduled_near_due(referral(domain.TRIAGED), today=DUE, warning_days=2)


def test_a_negative_warning_is_refused() -> None:
    with pytest.raises(ValueError):
        domain.near_due_cutoff(DUE, -1)


def test_an_itinerary_after_the_due_date_is_a_risk_and_one_within_it_is_not() -> None:
    late = datetime(2026, 7, 14, 9, tzinfo=UTC)
    risk = domain.assess_itinerary(referral(), first_visit_at=late, tz=LONDON, now=NOW)
    assert risk == BreachRisk(domain.FIRST_VISIT_AFTER_DUE, NOW, late)
    assert domain.assess_itinerary(referral(), first_visit_at=late - timedelta(days=5),
                                   tz=LONDON, now=NOW) is None
    assert domain.assess_itinerary(referral(domain.DISCHARGED), first_visit_at=late,
                                   tz=LONDON, now=NOW) is None


def test_flagging_moves_nothing_and_clearing_keeps_the_history() -> None:
    risk = BreachRisk(domain.UNSCHEDULED_NEAR_DUE, NOW)
    flagged, step = domain.flag_breach(referral(), risk, actor=SYSTEM, note="near due")
    assert flagged.breach_risk == risk and flagged.status == domain.ACCEPTED
    assert (step.action, step.from_status, step.to_status) == (
        "breach_risk", domain.ACCEPTED, domain.ACCEPTED)
    cleared, undo = domain.clear_breach(flagged, actor=SYSTEM, now=NOW, note="booked")
    assert cleared.breach_risk is None and undo is not None
    assert undo.action == "breach_cleared"
    assert domain.clear_breach(cleared, actor=SYSTEM, now=NOW, note="again") == (cleared, None)
    with pytest.raises(ValueError):
        domain.flag_breach(referral(), BreachRisk("bored", NOW), actor=SYSTEM, note="")
