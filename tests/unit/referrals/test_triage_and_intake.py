"""The clinical rules around the workflow: screening ranges, care pathways and their
order, intake checks, duplicates, overdue referrals and the triage queue."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from services.referrals import domain
from services.referrals.domain import IntakeFacts, Referral, StepRequest
from shared.errors import InvalidInput
from shared.events.vocabulary import CONDITIONS

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
TODAY = NOW.date()


@pytest.mark.parametrize(("tool", "score"), [
    ("dn4", 0), ("dn4", 10), ("lanss", 0), ("lanss", 24), ("paindetect", -1),
    ("paindetect", 38)])
def test_screening_scores_at_the_edges_of_their_range_are_accepted(tool, score):
    assert domain.check_screening(tool, score) == domain.Screening(tool, score)


@pytest.mark.parametrize(("tool", "score"), [
    ("dn4", -1), ("dn4", 11), ("lanss", -1), ("lanss", 25), ("paindetect", -2),
    ("paindetect", 39)])
def test_screening_scores_outside_their_range_name_the_score(tool, score):
    with pytest.raises(InvalidInput) as refused:
        domain.check_screening(tool, score)
    assert list(refused.value.errors) == ["screening.score"]


def step(discipline: str, after: list[str] | None = None, sessions: int = 1,
         interval: int = 0) -> StepRequest:
    return StepRequest(discipline, 45, sessions, interval, after)


def test_pain_medicine_comes_first_unless_told_otherwise():
    pathway = domain.build_pathway([step("psychology", sessions=6, interval=14),
                                    step("acupuncture", after=[], sessions=4, interval=7),
                                    step("pain_medicine")])
    assert [s.discipline for s in pathway] == ["acupuncture", "pain_medicine", "psychology"]
    by_name = {s.discipline: s.after for s in pathway}
    assert by_name == {"pain_medicine": (), "psychology": ("pain_medicine",),
                       "acupuncture": ()}


def test_a_pathway_without_pain_medicine_has_no_default_order():
    pathway = domain.build_pathway([step("physical_therapy"), step("psychology")])
    assert all(s.after == () for s in pathway)


@pytest.mark.parametrize(("steps", "field"), [
    ([step("pain_medicine"), step("pain_medicine")], "pathway.1.discipline"),
    ([step("reiki")], "pathway.0.discipline"),
    ([step("psychology", after=["acupuncture"])], "pathway.0.after"),
    ([step("psychology", after=["psychology"])], "pathway.0.after"),
    ([step("pain_medicine", sessions=3, interval=0)], "pathway.0.interval_days"),
    ([step("psychology", after=["acupuncture"]), step("acupuncture", after=["psychology"])],
     "pathway"),
    ([], "pathway"),
])
def test_an_impossible_pathway_is_refused_naming_the_step(steps, field):
    with pytest.raises(InvalidInput) as refused:
        domain.build_pathway(steps)
    assert list(refused.value.errors) == [field]


def facts(**changes: object) -> IntakeFacts:
    base: dict[str, object] = dict(date_of_birth=date(1961, 5, 4), condition="crps",
                                   condition_detail=None, preferred_channel="email",
                                   email="ann@example.org", phone=None)
    base.update(changes)
    return IntakeFacts(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize("changes", [
    {},
    {"date_of_birth": TODAY},                              # born today: not in the future
    {"date_of_birth": date(TODAY.year - 125, 1, 1)},       # the oldest date accepted
    {"condition": "other", "condition_detail": "meralgia paraesthetica"},
    {"preferred_channel": "sms", "email": None, "phone": "+44 7700 900123"},
    *({"condition": c} for c in CONDITIONS if c != "other"),
], ids=repr)
def test_a_sound_intake_passes_even_at_the_edges_of_each_rule(changes):
    """Each case sits on the accepting side of a refusal tested below: a rule that
    tightens by one day or one field refuses it and fails here."""
    try:
        domain.check_intake(facts(**changes), today=TODAY)
    except InvalidInput as refused:
        pytest.fail(f"a sound intake was refused: {refused.errors}")


@pytest.mark.parametrize(("changes", "field"), [
    ({"date_of_birth": date(2026, 3, 3)}, "patient.date_of_birth"),
    ({"date_of_birth": date(1880, 1, 1)}, "patient.date_of_birth"),
    ({"condition": "other", "condition_detail": " "}, "condition_detail"),
    ({"preferred_channel": "email", "email": None}, "patient.contact.email"),
    ({"preferred_channel": "sms", "phone": None}, "patient.contact.phone"),
])
def test_an_intake_the_clinic_cannot_act_on_names_the_field(changes, field):
    with pytest.raises(InvalidInput) as refused:
        domain.check_intake(facts(**changes), today=TODAY)
    assert list(refused.value.errors) == [field]


def test_the_same_referrer_written_differently_is_the_same_referrer():
    assert domain.referrer_key("Dr A. Patel", "Elm Surgery") == \
        domain.referrer_key(" dr a.  patel", "ELM SURGERY")
    assert domain.referrer_key("Dr A. Patel", "Elm Surgery") != \
        domain.referrer_key("Dr A. Patel", "Oak Surgery")


def test_a_repeat_within_the_window_points_at_the_newest_matching_referral():
    key = domain.referrer_key("Dr Patel", "Elm")
    other = domain.referrer_key("Dr Jones", "Oak")
    candidates = [("old", key, NOW - timedelta(days=40)), ("recent", key, NOW - timedelta(days=2)),
                  ("newest", key, NOW - timedelta(hours=1)), ("else", other, NOW)]
    window = timedelta(days=30)
    assert domain.duplicate_of(candidates, referrer=key, now=NOW, window=window) == "newest"
    assert domain.duplicate_of(candidates[:1], referrer=key, now=NOW, window=window) is None
    assert domain.duplicate_of(candidates, referrer="x|y", now=NOW, window=window) is None


def waiting(status: str, due: date | None, *, priority: str | None = None,
            urgency: str | None = None, days_ago: int = 0) -> Referral:
    return Referral("r", "p", "crps", NOW - timedelta(days=days_ago), status=status,
                    due_by=due, priority=priority, urgency_requested=urgency)


@pytest.mark.parametrize(("status", "due", "overdue"), [
    ("triaged", TODAY - timedelta(days=1), True),
    ("accepted", TODAY - timedelta(days=1), True),
    ("scheduled", TODAY - timedelta(days=1), True),
    ("on_hold", TODAY - timedelta(days=1), True),
    ("received", TODAY - timedelta(days=1), True),
    ("triaged", TODAY, False),
    ("in_care", TODAY - timedelta(days=10), False),
    ("cancelled", TODAY - timedelta(days=10), False),
    ("received", None, False),
])
def test_overdue_means_still_waiting_for_a_first_visit_after_the_target(status, due, overdue):
    assert domain.is_overdue(waiting(status, due), today=TODAY) is overdue


def test_the_triage_queue_puts_urgent_first_then_the_longest_waiting():
    referrals = {
        "routine-old": waiting("received", None, days_ago=30),
        "urgent-new": waiting("triaged", None, priority="urgent", days_ago=0),
        "asked-urgent": waiting("received", None, urgency="urgent", days_ago=1),
        "soon": waiting("received", None, urgency="soon", days_ago=5),
        "unstated-new": waiting("received", None, days_ago=2),
    }
    order = sorted(referrals, key=lambda k: domain.queue_order(referrals[k]))
    assert order == ["asked-urgent", "urgent-new", "soon", "routine-old", "unstated-new"]
