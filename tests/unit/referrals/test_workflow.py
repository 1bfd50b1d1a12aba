"""The referral workflow, alone: every move from every status, legal or not, with no
database, no Flask and a fixed clock."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from services.referrals import domain
from services.referrals.domain import (
    Actor,
    PathwayStep,
    PriorityTargets,
    Referral,
    Screening,
)
from shared.errors import Conflict, Forbidden, InvalidInput

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
LEAD = Actor("dr-okafor", "specialist", "pain_medicine")
PHYSIO = Actor("pt-lee", "specialist", "physical_therapy")
SCHEDULER = Actor("sam", "scheduler")
ADMIN = Actor("root", "admin")
SCHEDULING = Actor("scheduling", "service")
PATHWAY = (PathwayStep("pain_medicine", 45, 1, 0),
           PathwayStep("physical_therapy", 45, 6, 7, ("pain_medicine",)))

# Where each named move may start and where it lands (resume: back where it was held).
LEGAL = {
    ("triage", "received"): "triaged",
    ("triage", "triaged"): "triaged",
    ("accept", "triaged"): "accepted",
    ("reject", "received"): "rejected",
    ("reject", "triaged"): "rejected",
    ("cancel", "received"): "cancelled",
    ("cancel", "triaged"): "cancelled",
    ("cancel", "accepted"): "cancelled",
    ("cancel", "scheduled"): "cancelled",
    ("cancel", "on_hold"): "cancelled",
    ("hold", "received"): "on_hold",
    ("hold", "triaged"): "on_hold",
    ("hold", "accepted"): "on_hold",
    ("hold", "scheduled"): "on_hold",
    ("hold", "in_care"): "on_hold",
    ("resume", "on_hold"): "accepted",  # held from accepted, below
    ("schedule", "accepted"): "scheduled",
    ("start_care", "scheduled"): "in_care",
    ("discharge", "in_care"): "discharged",
}
ALL_MOVES = [(a, s) for a in domain.MOVES for s in domain.STATUSES]
ILLEGAL = [m for m in ALL_MOVES if m not in LEGAL]


def referral_in(status: str) -> Referral:
    """A referral that has reached `status` (an on-hold one was held once accepted)."""
    triaged = status not in ("received",)
    return Referral(
        id="ref-1", patient_id="pat-1", condition="crps", received_at=NOW - timedelta(days=3),
        status=status, held_from="accepted" if status == "on_hold" else None,
        priority="soon" if triaged else None, target_days=28,
        due_by=(NOW - timedelta(days=3)).date() + timedelta(days=28),
        pathway=PATHWAY if triaged else ())


def do(action: str, referral: Referral, actor: Actor = LEAD, reason: str | None = "because"):
    if action == "triage":
        return domain.triage(referral, priority="urgent", screening=Screening("dn4", 7),
                             pathway=PATHWAY, targets=PriorityTargets(), actor=actor, now=NOW)
    return domain.move(referral, action, actor=actor, now=NOW, reason=reason)


def test_the_table_covers_every_move_from_every_status():
    assert len(ALL_MOVES) == 81
    assert len(LEGAL) + len(ILLEGAL) == 81
    assert {s for _a, s in LEGAL} | {"discharged", "rejected", "cancelled"} == set(
        domain.STATUSES)


@pytest.mark.parametrize(("action", "status"), sorted(LEGAL))
def test_a_legal_move_lands_where_the_workflow_says_and_is_written_down(action, status):
    before = referral_in(status)
    after, step = do(action, before)
    assert after.status == LEGAL[(action, status)]
    assert (step.action, step.from_status, step.to_status) == (action, status, after.status)
    assert step.at == NOW and step.actor == LEAD
    assert before.status == status  # the domain returns a new referral, never edits one


@pytest.mark.parametrize(("action", "status"), ILLEGAL)
def test_an_illegal_move_is_a_conflict_that_names_the_status(action, status):
    before = referral_in(status)
    with pytest.raises(Conflict) as refused:
        do(action, before)
    assert refused.value.status == 409
    assert status in refused.value.detail
    assert "status" in refused.value.errors


@pytest.mark.parametrize("status", ["discharged", "rejected", "cancelled"])
def test_a_closed_referral_allows_no_move_at_all(status):
    assert domain.allowed_moves(status) == []


def test_a_referral_arrives_received_with_a_provisional_due_date():
    referral, step = domain.receive("ref-9", patient_id="pat-9", condition="radiculopathy",
                                    urgency_requested="urgent", targets=PriorityTargets(),
                                    actor=SCHEDULER, now=NOW)
    assert referral.status == "received" and referral.received_at == NOW
    assert referral.due_by == date(2026, 3, 9)  # urgent: 7 days by default
    assert (step.from_status, step.to_status, step.actor) == (None, "received", SCHEDULER)


@pytest.mark.parametrize("action", sorted(domain.REASON_REQUIRED))
def test_reject_cancel_and_hold_must_say_why(action):
    with pytest.raises(InvalidInput) as refused:
        do(action, referral_in("triaged"), reason="   ")
    assert refused.value.errors == {"reason": [refused.value.detail]}


def test_a_held_referral_resumes_where_it_was():
    held, _ = do("hold", referral_in("scheduled"), reason="patient in hospital")
    assert (held.status, held.held_from) == ("on_hold", "scheduled")
    resumed, step = do("resume", held, reason=None)
    assert (resumed.status, resumed.held_from) == ("scheduled", None)
    assert (step.from_status, step.to_status) == ("on_hold", "scheduled")


def test_rejection_and_cancellation_keep_their_reason():
    rejected, step = do("reject", referral_in("received"), reason="not neuropathic pain")
    assert rejected.closed_reason == "not neuropathic pain" == step.reason
    assert rejected.decided_by == LEAD.id


@pytest.mark.parametrize("action", ["triage", "accept", "reject"])
@pytest.mark.parametrize("actor", [PHYSIO, SCHEDULER])
def test_only_pain_medicine_triages_and_decides(action, actor):
    start = "received" if action != "accept" else "triaged"
    with pytest.raises(Forbidden):
        do(action, referral_in(start), actor=actor)


def test_an_admin_neither_triages_nor_decides():
    """admin is the operations role: no clinical decision passes implicitly."""
    with pytest.raises(Forbidden):
        do("triage", referral_in("received"), actor=ADMIN)
    with pytest.raises(Forbidden):
        do("accept", referral_in("triaged"), actor=ADMIN)


def test_triage_sets_priority_target_and_a_due_date_from_receipt():
    targets = PriorityTargets({"urgent": 5, "soon": 21, "routine": 60})
    referral, _ = domain.triage(referral_in("received"), priority="soon",
                                screening=Screening("lanss", 17), pathway=PATHWAY,
                                targets=targets, actor=LEAD, now=NOW)
    assert (referral.priority, referral.target_days) == ("soon", 21)
    assert referral.due_by == (NOW - timedelta(days=3)).date() + timedelta(days=21)
    assert referral.screening == Screening("lanss", 17)
    assert (referral.triaged_by, referral.triaged_at) == (LEAD.id, NOW)


def test_an_itinerary_booked_twice_schedules_once():
    first_visit = NOW + timedelta(days=4)
    scheduled, step = domain.booked(referral_in("accepted"), first_visit_at=first_visit,
                                    actor=SCHEDULING, now=NOW, reason="itinerary it-1 booked")
    assert scheduled.status == "scheduled" and scheduled.first_visit_at == first_visit
    assert step is not None and step.actor == SCHEDULING
    again, nothing = domain.booked(scheduled, first_visit_at=first_visit, actor=SCHEDULING,
                                   now=NOW, reason="itinerary it-2 booked")
    assert nothing is None and again == scheduled


def test_an_itinerary_booked_for_a_cancelled_referral_is_a_conflict():
    with pytest.raises(Conflict):
        domain.booked(referral_in("cancelled"), first_visit_at=None, actor=SCHEDULING,
                      now=NOW, reason="itinerary booked")


def test_only_the_first_completed_visit_takes_the_patient_into_care():
    in_care, step = domain.first_visit_done(referral_in("scheduled"), actor=SCHEDULING,
                                            now=NOW, reason="first visit")
    assert in_care.status == "in_care" and step is not None
    same, nothing = domain.first_visit_done(in_care, actor=SCHEDULING, now=NOW, reason="2nd")
    assert same.status == "in_care" and nothing is None


def test_triage_cannot_be_made_through_the_plain_move():
    with pytest.raises(ValueError):
        domain.move(referral_in("received"), "triage", actor=LEAD, now=NOW)
