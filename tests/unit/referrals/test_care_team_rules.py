"""The referral desk's data rules, pure: who reads a referral and who decides on it."""

from __future__ import annotations

import pytest

from services.referrals import domain as d
from shared.errors import Forbidden

PAIN = d.Actor("dr-pain", "specialist", "pain_medicine", provider_id="prov-pain")
PHYSIO = d.Actor("pt-1", "specialist", "physical_therapy", provider_id="prov-pt")
LEAD = d.Actor("tl-1", "specialist", "pain_medicine", roles=("specialist", "triage_lead"))
SCHEDULER = d.Actor("sched-1", "scheduler")
ADMIN = d.Actor("root", "admin")
TEAM = [d.Member("prov-pain", "pain_medicine"), d.Member("prov-pt", "physical_therapy")]


def test_a_specialist_reads_only_their_patients_and_the_lead_the_waiting_ones():
    assert d.may_read(PHYSIO, "scheduled", TEAM) and d.may_read(PAIN, "scheduled", TEAM)
    assert not d.may_read(PHYSIO, "scheduled", []) and not d.may_read(PHYSIO, "received", [])
    assert d.may_read(LEAD, "received", []) and d.may_read(LEAD, "triaged", [])
    assert d.may_read(LEAD, "on_hold", [], held_from="received")
    assert not d.may_read(LEAD, "on_hold", [], held_from="scheduled")
    assert not d.may_read(LEAD, "scheduled", [])
    assert d.may_read(SCHEDULER, "scheduled", [])
    assert not d.may_read(ADMIN, "received", TEAM)


def test_only_clinicians_see_clinical_fields():
    assert d.sees_clinical_fields(PHYSIO) and d.sees_clinical_fields(LEAD)
    assert not d.sees_clinical_fields(SCHEDULER) and not d.sees_clinical_fields(ADMIN)


@pytest.mark.parametrize("action", d.TEAM_DECISIONS)
def test_decisions_are_the_triage_leads_and_the_pain_medicine_leads(action: str):
    d.require_decision(LEAD, action, [])
    d.require_decision(PAIN, action, TEAM)
    for who, team in ((PHYSIO, TEAM), (PAIN, []), (ADMIN, TEAM), (SCHEDULER, TEAM)):
        with pytest.raises(Forbidden):
            d.require_decision(who, action, team)


def test_triage_is_the_triage_leads():
    d.require_decision(LEAD, "triage", [])
    with pytest.raises(Forbidden):
        d.require_decision(PAIN, "triage", TEAM)
