"""Least privilege on data: who reads and decides on which referral. The care team comes
from the moves made here (triage, accept) and from scheduling's appointment.booked; a
referral of another care team answers 404 (its existence is health data), audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from services.referrals.handlers import handlers
from shared.events import new_event
from tests.integration.referrals.conftest import Desk
from tests.integration.referrals.test_events import itinerary_booked
from tests.support.clinic import bearer


def booked(referral_id: str, provider_id: str, discipline: str,
           patient_id: str = "pat-ann") -> Any:
    start = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    return new_event("appointment.booked", {
        "appointment_id": f"apt-{provider_id}", "patient_id": patient_id,
        "provider_id": provider_id, "discipline": discipline, "start": start.isoformat(),
        "end": (start + timedelta(minutes=45)).isoformat(), "referral_id": referral_id},
        producer="scheduling")


def deliver(desk: Desk, envelope: Any) -> None:
    with desk.runtime.db.transaction() as s:
        handlers(desk.runtime)[envelope.type](s, envelope)


def specialist(desk: Desk, subject: str, discipline: str, provider_id: str) -> dict:
    settings = desk.runtime.settings
    return bearer(settings, "specialist", subject, discipline=discipline,
                  provider_id=provider_id)


def ids(resp: Any) -> set[str]:
    assert resp.status_code == 200, resp.get_json()
    return {r["id"] for r in resp.get_json()["items"]}


def test_a_specialist_sees_the_referrals_of_their_own_patients_only(desk: Desk) -> None:
    ann = desk.refer()
    bob = desk.refer(patient={"id": "pat-bob", "name": "Bob Marsh",
                              "date_of_birth": "1970-03-02",
                              "contact": {"email": "bob@example.org"},
                              "preferred_channel": "email"})
    physio = specialist(desk, "pt-ng", "physical_therapy", "prov-pt-ng")
    pain = specialist(desk, "dr-vale", "pain_medicine", "prov-vale")
    # before anyone is booked: the triage lead sees both waiting, the others nothing
    assert ids(desk.client.get("/referrals", headers=desk.lead)) == {ann["id"], bob["id"]}
    assert ids(desk.client.get("/referrals", headers=physio)) == set()
    assert desk.client.get("/referrals/queue", headers=physio).get_json()["total"] == 0
    assert desk.client.get("/referrals/queue", headers=desk.lead).get_json()["total"] == 2
    assert desk.client.get(f"/referrals/{ann['id']}", headers=physio).status_code == 404
    for referral in (ann, bob):
        assert desk.triage(referral["id"]).status_code == 200
        assert desk.client.post(f"/referrals/{referral['id']}/accept", json={},
                                headers=desk.lead).status_code == 200
    deliver(desk, booked(ann["id"], "prov-pt-ng", "physical_therapy"))
    deliver(desk, booked(ann["id"], "prov-pt-ng", "physical_therapy"))  # redelivered
    deliver(desk, booked(bob["id"], "prov-vale", "pain_medicine", patient_id="pat-bob"))

    assert ids(desk.client.get("/referrals", headers=physio)) == {ann["id"]}
    got = desk.client.get(f"/referrals/{ann['id']}", headers=physio)
    assert got.status_code == 200 and got.get_json()["medications"]  # a clinician
    assert desk.client.get(f"/referrals/{bob['id']}", headers=physio).status_code == 404
    assert ids(desk.client.get("/referrals", headers=pain)) == {bob["id"]}
    assert desk.client.get(f"/referrals/{ann['id']}", headers=pain).status_code == 404
    # the triage lead triaged and accepted both: on both teams
    assert ids(desk.client.get("/referrals", headers=desk.lead)) == {ann["id"], bob["id"]}

    audit = desk.runtime.tables.audit
    with desk.runtime.db.transaction() as s:
        refused = s.execute(select(audit.c.actor, audit.c.action, audit.c.resource_id)
                            .where(audit.c.outcome == "refused")).all()
    assert ("pt-ng", "read", ann["id"]) in refused and ("pt-ng", "read", bob["id"]) in refused
    assert ("dr-vale", "read", ann["id"]) in refused


def test_decisions_belong_to_the_triage_lead_and_the_patients_pain_medicine_lead(
        desk: Desk) -> None:
    ann = desk.refer()
    assert desk.triage(ann["id"]).status_code == 200
    assert desk.client.post(f"/referrals/{ann['id']}/accept", json={},
                            headers=desk.lead).status_code == 200
    physio = specialist(desk, "pt-ng", "physical_therapy", "prov-pt-ng")
    pain = specialist(desk, "dr-vale", "pain_medicine", "prov-vale")
    deliver(desk, booked(ann["id"], "prov-pt-ng", "physical_therapy"))
    # on the team, but not its pain-medicine lead: reads, may not hold (403, audited)
    refused = desk.client.post(f"/referrals/{ann['id']}/hold", json={"reason": "abroad"},
                               headers=physio)
    assert refused.status_code == 403 and "pain-medicine lead" in refused.get_json()["detail"]
    # a pain-medicine specialist not (yet) on the team: nothing to see
    assert desk.client.post(f"/referrals/{ann['id']}/hold", json={"reason": "abroad"},
                            headers=pain).status_code == 404
    deliver(desk, booked(ann["id"], "prov-vale", "pain_medicine"))
    held = desk.client.post(f"/referrals/{ann['id']}/hold", json={"reason": "abroad"},
                            headers=pain)
    assert held.status_code == 200 and held.get_json()["status"] == "on_hold"
    resumed = desk.client.post(f"/referrals/{ann['id']}/resume", json={}, headers=desk.lead)
    assert resumed.status_code == 200
    # a triage lead without a clinical discipline triages and decides too
    lead_only = bearer(desk.runtime.settings, "triage_lead", "tl-ray")
    other = desk.refer(condition="crps")
    assert desk.client.get(f"/referrals/{other['id']}", headers=lead_only).status_code == 200
    assert desk.client.post(f"/referrals/{other['id']}/triage",
                            json={"priority": "routine", "pathway": [
                                {"discipline": "pain_medicine", "visit_minutes": 45,
                                 "sessions": 1, "interval_days": 0}]},
                            headers=lead_only).status_code == 200
    # a plain pain-medicine specialist (on Ann's team, so the referral is seen) does
    # not triage: that is the triage lead's
    third = desk.refer(condition="post_herpetic_neuralgia")
    assert desk.client.post(f"/referrals/{third['id']}/triage", json={
        "priority": "soon", "pathway": [{"discipline": "pain_medicine", "visit_minutes": 45,
                                         "sessions": 1, "interval_days": 0}]},
        headers=pain).status_code == 403


def test_discharge_closes_the_referrals_care_team(desk: Desk) -> None:
    ann = desk.refer()
    desk.triage(ann["id"])
    desk.client.post(f"/referrals/{ann['id']}/accept", json={}, headers=desk.lead)
    physio = specialist(desk, "pt-ng", "physical_therapy", "prov-pt-ng")
    deliver(desk, booked(ann["id"], "prov-pt-ng", "physical_therapy"))
    assert desk.client.get(f"/referrals/{ann['id']}", headers=physio).status_code == 200
    deliver(desk, itinerary_booked(ann["id"]))
    done = booked(ann["id"], "prov-pt-ng", "physical_therapy")
    deliver(desk, new_event("appointment.completed", {
        k: v for k, v in done.payload.items() if k != "visit_type"}, producer="scheduling"))
    discharged = desk.client.post(f"/referrals/{ann['id']}/discharge", json={},
                                  headers=desk.lead)
    assert discharged.status_code == 200, discharged.get_json()
    assert desk.client.get(f"/referrals/{ann['id']}", headers=physio).status_code == 404
    # a booking that arrives late adds no one to a discharged referral's team
    deliver(desk, booked(ann["id"], "prov-late", "psychology"))
    late = specialist(desk, "psy-late", "psychology", "prov-late")
    assert desk.client.get(f"/referrals/{ann['id']}", headers=late).status_code == 404


def test_schedulers_get_administrative_fields_and_no_clinical_text(desk: Desk) -> None:
    ann = desk.refer()
    desk.triage(ann["id"], reason="DN4 6/10; mood low")
    for resp in (desk.client.get(f"/referrals/{ann['id']}", headers=desk.scheduler),
                 desk.client.get("/referrals", headers=desk.scheduler)):
        assert resp.status_code == 200
        text = resp.get_data(as_text=True)
        for clinical in ("pregabalin", "Burning pain", "gp-letter.pdf", "mood low", "dn4"):
            assert clinical not in text, clinical
        assert "Ann Whitfield" in text and "+44 7700 900123" in text
    one = desk.client.get(f"/referrals/{ann['id']}", headers=desk.scheduler).get_json()
    assert one["priority"] == "soon" and one["due_by"] and one["pathway"]
    assert {"medications", "reason", "screening"} <= set(one["withheld"])
