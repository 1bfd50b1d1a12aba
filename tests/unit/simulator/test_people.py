"""The simulator's patients and choices: valid for the services' own schemas (or every
simulated request would be a 422), repeatable from a seed, and in the intended mix."""

from __future__ import annotations

import random
from collections import Counter
from datetime import date

import pytest

from services.notes.api import NoteIn
from services.referrals.api import ReferralIn, TriageIn
from services.referrals.domain import IntakeFacts, check_intake
from simulator.journeys import NOTE_BODIES
from simulator.people import CONDITIONS, decide, make_patient


def patients(n: int, seed: int = 7) -> list:
    rng = random.Random(seed)
    return [make_patient(rng, "t", i) for i in range(n)]


def test_a_seed_gives_the_same_clinic_twice() -> None:
    assert patients(50) == patients(50)
    assert patients(50) != patients(50, seed=8)


def test_patient_ids_are_unique_within_a_run() -> None:
    ids = [p.patient_id for p in patients(500)]
    assert len(set(ids)) == 500


@pytest.mark.parametrize("short", [True, False])
def test_every_referral_and_triage_passes_the_referrals_schemas(short: bool) -> None:
    rng = random.Random(3)
    for patient in patients(200):
        referral = ReferralIn().load(patient.referral(rng))
        contact = referral["patient"]["contact"]
        check_intake(IntakeFacts(  # the clinic's own rules, past the schema's shapes
            referral["patient"]["date_of_birth"], referral["condition"],
            referral.get("condition_detail"), referral["patient"]["preferred_channel"],
            contact.get("email"), contact.get("phone")), today=date(2026, 11, 25))
        triage = patient.triage(short=short)
        assert TriageIn().validate(triage) == {}
        sessions = {s["sessions"] for s in triage["pathway"]}
        assert sessions == {1} if short else max(sessions) > 1
        assert triage["pathway"][0]["discipline"] == "pain_medicine"


def test_every_reachable_patient_has_a_way_to_be_told() -> None:
    for patient in patients(300):
        if patient.channel == "email":
            assert patient.email
        if patient.channel == "sms":
            assert patient.phone


@pytest.mark.parametrize("discipline", sorted(NOTE_BODIES))
def test_note_bodies_pass_the_notes_schema(discipline: str) -> None:
    body = {**NOTE_BODIES[discipline], "encounter_at": "2026-11-25T10:00:00+00:00"}
    assert NoteIn().validate(body) == {}


def test_the_mix_is_roughly_what_a_clinic_sees() -> None:
    conditions = Counter(p.condition for p in patients(4000))
    for condition, (share, *_rest) in CONDITIONS.items():
        assert abs(conditions[condition] / 4000 - share) < 0.03, condition
    rng = random.Random(1)
    decisions = [decide(rng) for _ in range(4000)]
    assert 0.05 < sum(d.rejected for d in decisions) / 4000 < 0.11
    plans = Counter(p for d in decisions for p in d.visit_plans)
    assert plans.most_common(1)[0][0] == "attend"
    assert plans["no_show"] > 0 and plans["cancel"] > 0


def test_a_patient_who_misses_the_first_visit_goes_straight_to_it() -> None:
    """Nothing on the way may stop the patient reaching the visit they then miss."""
    rng = random.Random(3)
    for _ in range(200):
        d = decide(rng, misses_first_visit=True)
        assert d.visit_plans[0] == "no_show" and len(d.visit_plans) == 5
        assert not (d.duplicate_post or d.referrer_cancels or d.rejected or d.held
                    or d.patient_declines)
    # the later visits keep the ordinary mix
    later = Counter(p for _ in range(500) for p in decide(rng, misses_first_visit=True)
                    .visit_plans[1:])
    assert later["attend"] > later["cancel"] > 0
