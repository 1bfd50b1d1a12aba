"""Who reads what through the FHIR gateway (services/fhir/access.py), on SQLite and
PostgreSQL: two referring systems, two patients, two care teams. A referring system sees
its own referrals only; a clinician the patients whose care team they are on; a
scheduler no clinical resource; admin nothing. Every refusal is audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from shared.events import new_event
from tests.integration.fhir.conftest import Gateway
from tests.support.clinic import bearer
from tests.support.fhir import referral_bundle

pytestmark = pytest.mark.timeout(600)
START = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def _refusals(gw: Gateway, subject: str) -> int:
    audit = gw.fhir_rt.tables.audit
    with gw.fhir_rt.db.transaction() as s:
        return s.execute(select(func.count()).select_from(audit).where(
            audit.c.actor == subject, audit.c.outcome != "allowed")).scalar_one()


def _status(gw: Gateway, path: str, who: dict[str, str]) -> int:
    return gw.fhir.get(path, headers=who).status_code


def _ids(gw: Gateway, path: str, who: dict[str, str]) -> list[str]:
    resp = gw.fhir.get(path, headers=who)
    assert resp.status_code == 200, (path, resp.get_json())
    return sorted(e["resource"]["id"] for e in resp.get_json().get("entry", []))


def _visit(patient_id: str, referral_id: str, provider_id: str) -> dict[str, Any]:
    return {"appointment_id": f"appt-{provider_id}", "patient_id": patient_id,
            "provider_id": provider_id, "provider_name": provider_id,
            "discipline": "physical_therapy", "room_id": "room-1", "room_name": "Room 1",
            "start": START.isoformat(), "end": (START + timedelta(minutes=45)).isoformat(),
            "referral_id": referral_id}


def test_each_reader_sees_only_their_own_referrals_and_patients(gateway):
    gw = gateway
    settings = gw.fhir_rt.settings
    north = bearer(settings, "referrer", "gp-north")
    south = bearer(settings, "referrer", "gp-south")
    physio = bearer(settings, "specialist", "pt-lee", discipline="physical_therapy",
                    provider_id="prov-lee")
    other = bearer(settings, "specialist", "pt-shah", discipline="physical_therapy",
                   provider_id="prov-shah")
    admin = bearer(settings, "admin", "ops-1")

    def post(bundle: dict[str, Any], who: dict[str, str]) -> dict[str, Any]:
        resp = gw.fhir.post("/fhir", json=bundle, headers={
            **who, "Content-Type": "application/fhir+json"})
        assert resp.status_code == 201, resp.get_json()
        return resp.get_json()

    ann = post(referral_bundle(), north)
    bob = post(referral_bundle(bundle_value="b-2002", request_value="sr-2002",
                               nhs_number="9000000009"), south)
    # a referring system is answered before the patient is known to it (referrals
    # answers it with the status only); the Task names the patient once the events came
    assert "for" not in ann
    gw.sync()
    ann = gw.get(f"/fhir/Task/{ann['id']}", north)
    bob = gw.get(f"/fhir/Task/{bob['id']}", south)
    ann_patient = ann["for"]["reference"].split("/")[1]
    bob_patient = bob["for"]["reference"].split("/")[1]
    assert ann_patient != bob_patient
    gw.feed(new_event("appointment.booked", _visit(ann_patient, ann["id"], "prov-lee"),
                      producer="scheduling"))
    gw.feed(new_event("note.signed", {
        "note_id": "note-ann", "patient_id": ann_patient, "author_id": "pt-lee",
        "discipline": "physical_therapy", "kind": "intake_assessment",
        "signed_at": START.isoformat(), "measures": {"nrs_current": 6}}, producer="notes"))

    # a referring system: its own Task, ServiceRequest and Patient; another's is 404
    assert _ids(gw, "/fhir/Task", north) == [ann["id"]]
    assert _ids(gw, "/fhir/Task", south) == [bob["id"]]
    assert _ids(gw, "/fhir/ServiceRequest", north) == [ann["id"]]
    assert _ids(gw, "/fhir/Patient", north) == [ann_patient]
    assert _status(gw, f"/fhir/Task/{ann['id']}", north) == 200
    before = _refusals(gw, "gp-south")
    assert _status(gw, f"/fhir/Task/{ann['id']}", south) == 404
    assert _status(gw, f"/fhir/Patient/{ann_patient}", south) == 404
    assert _ids(gw, f"/fhir/Task?patient={ann_patient}", south) == []
    # ... and no other resource type at all (403)
    assert _status(gw, "/fhir/Appointment", north) == 403
    assert _status(gw, "/fhir/Observation", north) == 403
    assert _status(gw, "/fhir/CareTeam", north) == 403
    assert _refusals(gw, "gp-south") == before + 3
    # repeating another system's identifier does not answer with its Task
    before = _refusals(gw, "gp-south")
    repeat = gw.fhir.post("/fhir", json=referral_bundle(), headers={
        **south, "Content-Type": "application/fhir+json"})
    assert repeat.status_code == 409, repeat.get_json()
    assert ann["id"] not in repeat.get_data(as_text=True)
    assert _refusals(gw, "gp-south") == before + 1

    # a clinician: the patients whose care team they are on, clinical resources included
    assert _ids(gw, "/fhir/Patient", physio) == [ann_patient]
    assert _ids(gw, "/fhir/Appointment", physio) == ["appt-prov-lee"]
    assert len(_ids(gw, "/fhir/Observation", physio)) == 1
    assert _status(gw, f"/fhir/Task/{bob['id']}", physio) == 404
    # a clinician on no care team reads no patient
    before = _refusals(gw, "pt-shah")
    assert _ids(gw, "/fhir/Patient", other) == []
    assert _ids(gw, "/fhir/Observation", other) == []
    assert _status(gw, f"/fhir/Patient/{ann_patient}", other) == 404
    assert _ids(gw, f"/fhir/Observation?patient={ann_patient}", other) == []
    assert _refusals(gw, "pt-shah") == before + 2
    # the diary's shape has no patient in it
    assert _status(gw, "/fhir/Slot", other) == 200

    # a scheduler: every patient's administrative resources, no clinical one
    assert _ids(gw, "/fhir/Task", gw.scheduler) == sorted([ann["id"], bob["id"]])
    assert _status(gw, "/fhir/Observation", gw.scheduler) == 403
    assert _status(gw, "/fhir/Encounter", gw.scheduler) == 403
    assert _status(gw, "/fhir/QuestionnaireResponse", gw.scheduler) == 403

    # admin is operations: no FHIR resource
    before = _refusals(gw, "ops-1")
    for path in ("/fhir/Patient", f"/fhir/Task/{ann['id']}", "/fhir/Observation"):
        assert _status(gw, path, admin) == 403
    assert _refusals(gw, "ops-1") == before + 3

    # the triage lead reads referrals waiting for triage; clinical ones via the care team
    assert bob["id"] in _ids(gw, "/fhir/Task", gw.lead)
    assert _ids(gw, f"/fhir/Observation?patient={ann_patient}", gw.lead) == []
