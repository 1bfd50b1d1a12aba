"""The front desk acts on a visit only when the clinic allows it: check-in from 11 hours
before (the service opens it at 12), completion and a no-show only once the visit has
begun."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.config import Settings
from simulator.client import ClinicClient
from simulator.journeys import FrontDesk
from simulator.ledger import Ledger, VisitRecord

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)


def visit(n: int, start: datetime, plan: str, status: str = "booked",
          uncertain: bool = False) -> VisitRecord:
    return VisitRecord(f"a{n}", "it", "p", "prov", "psychology", start.isoformat(),
                       status=status, plan=plan, uncertain=uncertain)


def test_only_visits_whose_moment_has_come_are_due() -> None:
    ledger = Ledger()
    for record in (
        visit(1, NOW + timedelta(hours=10), "attend"),  # check-in open: due
        visit(2, NOW + timedelta(hours=12), "attend"),  # too early
        visit(3, NOW - timedelta(minutes=1), "no_show"),  # has begun: due
        visit(4, NOW + timedelta(minutes=1), "no_show"),  # not yet begun
        visit(5, NOW - timedelta(hours=1), "attend", status="cancelled"),  # not booked
        visit(6, NOW, "attend", uncertain=True),  # outcome unknown: left alone
        visit(7, NOW, "cancel"),  # called off by the journey, not the desk
        visit(8, NOW + timedelta(seconds=1), "attend", status="arrived"),  # not begun
        visit(9, NOW, "attend", status="arrived"),  # begun: to complete
        visit(10, NOW - timedelta(hours=1), "attend", status="fulfilled"),  # done
    ):
        ledger.add(record)
    desk = FrontDesk(ClinicClient({}, Settings.for_service("tests")), ledger)
    assert sorted(v.appointment_id for v in desk.due(NOW)) == ["a1", "a3", "a9"]


def test_each_visit_gets_the_step_its_moment_allows() -> None:
    desk = FrontDesk(ClinicClient({}, Settings.for_service("tests")), Ledger())
    later = visit(1, NOW + timedelta(hours=3), "attend")
    assert desk.next_step(later, NOW) == "check-in"
    later.status = "arrived"  # checked in hours ahead: completed only once begun
    assert desk.next_step(later, NOW) is None
    assert desk.next_step(later, NOW + timedelta(hours=3)) == "complete"
    late = visit(2, NOW - timedelta(minutes=5), "attend")  # a late arrival
    assert desk.next_step(late, NOW) == "check-in"
    missed = visit(3, NOW, "no_show")
    assert desk.next_step(missed, NOW - timedelta(seconds=1)) is None
    assert desk.next_step(missed, NOW) == "no-show"
