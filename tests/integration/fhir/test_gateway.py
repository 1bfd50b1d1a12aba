"""The FHIR gateway end to end in one process, on SQLite and PostgreSQL: a referral Bundle
goes in through referrals' own API; what the clinic's events say comes back out as FHIR
resources; every resource it answers with validates with zero errors in the HAPI FHIR
reference validator and parses with the fhir.resources R4 models."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.events import new_event
from tests.integration.fhir.conftest import Gateway
from tests.support.fhir import EMIS_REFERRALS, NHS, bare_service_request, referral_bundle
from tests.support.fhir_validator import assert_valid

# the first test also waits for the validator's JVM to start (a minute or more on a busy
# machine): the session's one start is not this test's slowness
pytestmark = pytest.mark.timeout(900)
LOINC = "http://loinc.org"
START = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def _post(gw: Gateway, bundle: dict[str, Any], who: dict[str, str] | None = None) -> Any:
    return gw.fhir.post("/fhir", json=bundle, headers={
        **(who or gw.scheduler), "Content-Type": "application/fhir+json"})


def _referral_count(gw: Gateway) -> int:
    return gw.referrals.get("/referrals", headers=gw.scheduler).get_json()["total"]


def test_a_referral_bundle_becomes_a_task_and_the_record_validates(gateway, fhir_validator):
    gw = gateway
    resp = _post(gw, referral_bundle())
    assert resp.status_code == 201, resp.get_json()
    assert resp.mimetype == "application/fhir+json"
    task = resp.get_json()
    assert task["resourceType"] == "Task" and task["status"] == "requested"
    assert task["businessStatus"]["coding"][0]["code"] == "received"
    assert resp.headers["Location"].endswith(f"/fhir/Task/{task['id']}")
    assert task["identifier"] == [{"system": EMIS_REFERRALS, "value": "sr-1001"}]
    assert_valid(fhir_validator, task)

    # the triage lead reads the clinical part (a scheduler's view withholds attachments)
    referral = gw.referrals.get(f"/referrals/{task['id']}", headers=gw.lead).get_json()
    assert referral["condition"] == "diabetic_neuropathy"  # SNOMED CT 230572002
    assert referral["urgency_requested"] == "soon"  # FHIR 'urgent'
    assert referral["referrer"] == {"name": "Dr Priya Patel",
                                    "organisation": "Elm Street Surgery",
                                    "contact": {"email": None, "phone": None}}
    assert referral["attachments"][0]["filename"] == "gp-letter.pdf"
    assert referral["attachments"][0]["size_bytes"] == len(b"%PDF-1.4 referral letter")

    assert gw.sync() >= 2
    patient_id = task["for"]["reference"].split("/")[1]
    patient = gw.get(f"/fhir/Patient/{patient_id}")
    assert patient["identifier"] == [{"system": NHS, "value": "9434765919"}]
    assert patient["name"] == [{"text": "Ann Whitfield"}] and patient["birthDate"] == "1958-07-14"
    sr = gw.get(f"/fhir/ServiceRequest/{task['id']}")
    assert sr["status"] == "active" and sr["subject"]["reference"] == f"Patient/{patient_id}"
    assert {"system": "http://snomed.info/sct", "code": "230572002"} in \
        sr["reasonCode"][0]["coding"]
    stored = gw.get(f"/fhir/Task/{task['id']}")
    assert stored["status"] == "requested"
    for resource in (patient, sr, stored):
        assert_valid(fhir_validator, resource)


def test_intake_is_idempotent_on_bundle_and_service_request_identifiers(gateway):
    gw = gateway
    first = _post(gw, referral_bundle())
    assert first.status_code == 201
    task_id = first.get_json()["id"]
    again = _post(gw, referral_bundle())
    assert again.status_code == 200 and again.get_json()["id"] == task_id
    # another Bundle carrying the same ServiceRequest: the same referral
    resent = _post(gw, referral_bundle(bundle_value="b-other"))
    assert resent.status_code == 200 and resent.get_json()["id"] == task_id
    # the same Bundle identifier, the ServiceRequest's own identifier left out
    same_bundle = _post(gw, referral_bundle(request_value=None))
    assert same_bundle.status_code == 200 and same_bundle.get_json()["id"] == task_id
    assert _referral_count(gw) == 1
    other = _post(gw, referral_bundle(bundle_value="b-2", request_value="sr-2",
                                      nhs_number="9876543210"))
    assert other.status_code == 201 and other.get_json()["id"] != task_id
    assert _referral_count(gw) == 2


def _broken(change) -> dict[str, Any]:
    bundle = copy.deepcopy(referral_bundle())
    change(bundle)
    return bundle


def _entry(bundle: dict[str, Any], rtype: str) -> dict[str, Any]:
    return next(e["resource"] for e in bundle["entry"]
                if e["resource"]["resourceType"] == rtype)


BAD_INPUT = [
    ("wrong resourceType", lambda b: b.update(resourceType="Patient"), 422,
     "Bundle.resourceType"),
    ("not a transaction", lambda b: b.update(type="batch"), 422, "Bundle.type"),
    ("missing birthDate", lambda b: _entry(b, "Patient").pop("birthDate"), 422,
     "Bundle.entry[0].resource.birthDate"),
    ("invalid ICD-10 code", lambda b: _entry(b, "Condition").update(code={"coding": [
        {"system": "http://hl7.org/fhir/sid/icd-10", "code": "not-a-code"}]}), 422,
     "Bundle.entry[2].resource.code.coding[0].code"),
    ("reference that does not resolve", lambda b: _entry(b, "ServiceRequest").update(
        subject={"reference": "urn:uuid:00000000-0000-4000-8000-000000000000"}), 422,
     "Bundle.entry[1].resource.subject"),
    ("oversized bundle", lambda b: b["entry"].extend(
        [copy.deepcopy(b["entry"][5])] * 50), 413, "Bundle.entry"),
    ("unknown priority", lambda b: _entry(b, "ServiceRequest").update(priority="soonish"),
     422, "Bundle.entry[1].resource.priority"),
    ("a resource type a referral does not take", lambda b: b["entry"].append(
        {"resource": {"resourceType": "Observation"}, "request": {"method": "POST",
                                                                   "url": "Observation"}}),
     422, "Bundle.entry[8].resource.resourceType"),
    ("the referrals service's own rule: a birth date in the future",
     lambda b: _entry(b, "Patient").update(birthDate="2999-01-01"), 422,
     "Patient.birthDate"),
]


def test_bad_fhir_input_gets_an_operation_outcome_naming_the_element_and_creates_nothing(
        gateway, fhir_validator):
    gw = gateway
    for what, change, status, element in BAD_INPUT:
        resp = _post(gw, _broken(change))
        assert resp.status_code == status, (what, resp.get_json())
        assert resp.mimetype == "application/fhir+json", what
        outcome = resp.get_json()
        assert outcome["resourceType"] == "OperationOutcome", what
        expressions = [x for i in outcome["issue"] for x in i.get("expression", [])]
        assert element in expressions, (what, outcome)
        assert_valid(fhir_validator, outcome)
    not_json = gw.fhir.post("/fhir", data=b"{not json", headers={
        **gw.scheduler, "Content-Type": "application/fhir+json"})
    assert not_json.status_code == 422
    assert not_json.get_json()["resourceType"] == "OperationOutcome"
    assert _referral_count(gw) == 0
    assert gw.sync() == 0


def test_the_task_follows_the_referral_through_triage_and_acceptance(gateway, fhir_validator):
    gw = gateway
    task_id = _post(gw, referral_bundle()).get_json()["id"]
    gw.sync()
    triage = {"priority": "urgent", "pathway": [
        {"discipline": "pain_medicine", "visit_minutes": 45, "sessions": 1,
         "interval_days": 0}]}
    assert gw.referrals.post(f"/referrals/{task_id}/triage", json=triage,
                             headers=gw.lead).status_code == 200
    gw.sync()
    triaged = gw.get(f"/fhir/Task/{task_id}")
    assert (triaged["status"], triaged["businessStatus"]["coding"][0]["code"]) == (
        "received", "triaged")
    assert triaged["priority"] == "asap"
    assert gw.referrals.post(f"/referrals/{task_id}/accept", json={},
                             headers=gw.lead).status_code == 200
    gw.sync()
    accepted = gw.get(f"/fhir/Task/{task_id}")
    assert (accepted["status"], accepted["businessStatus"]["coding"][0]["code"]) == (
        "accepted", "accepted")
    assert int(accepted["meta"]["versionId"]) > int(triaged["meta"]["versionId"])
    found = gw.get("/fhir/Task?status=accepted")
    assert [e["resource"]["id"] for e in found["entry"]] == [task_id]
    assert gw.get("/fhir/Task?status=requested")["total"] == 0
    for resource in (triaged, accepted, found):
        assert_valid(fhir_validator, resource)
    # the same event again changes nothing
    gw._fed = 0
    gw.sync()
    assert gw.get(f"/fhir/Task/{task_id}")["meta"] == accepted["meta"]


def _visit(n: int, patient_id: str, referral_id: str, discipline: str = "pain_medicine"
           ) -> dict[str, Any]:
    start = START + timedelta(days=7 * n)
    return {"appointment_id": f"appt-{n}", "patient_id": patient_id,
            "provider_id": "prov-okafor", "provider_name": "Dr Okafor",
            "discipline": discipline, "room_id": "room-1", "room_name": "Room 1",
            "start": start.isoformat(), "end": (start + timedelta(minutes=45)).isoformat(),
            "referral_id": referral_id}


def test_visits_measures_and_the_diary_are_served_searched_and_paged(gateway, fhir_validator):
    gw = gateway
    task = _post(gw, referral_bundle()).get_json()
    gw.sync()
    patient_id = task["for"]["reference"].split("/")[1]
    gw.feed(new_event("provider.registered", {
        "provider_id": "prov-okafor", "name": "Dr Okafor", "discipline": "pain_medicine",
        "email": "okafor@clinic.example.org"}, producer="scheduling"))
    for n in range(3):
        gw.feed(new_event("appointment.booked", _visit(n, patient_id, task["id"]),
                          producer="scheduling"))
    gw.feed(new_event("appointment.completed", _visit(0, patient_id, task["id"]),
                      producer="scheduling"))
    gw.feed(new_event("appointment.cancelled", {**_visit(2, patient_id, task["id"]),
                                                "reason": "patient asked", "by": "desk"},
                      producer="scheduling"))
    gw.feed(new_event("note.signed", {
        "note_id": "note-1", "patient_id": patient_id, "author_id": "dr-okafor",
        "discipline": "psychology", "kind": "intake_assessment",
        "signed_at": START.isoformat(),
        "measures": {"phq9": 14, "phq9_item9": 1, "gad7": 9, "nrs_current": 7,
                     "dn4": 6, "bpi_severity": 5.5},
        "items": {"phq9": [2, 2, 2, 2, 2, 1, 1, 1, 1]}}, producer="notes"))

    visits = gw.get(f"/fhir/Appointment?patient=Patient/{patient_id}")
    assert visits["total"] == 3
    assert [e["resource"]["status"] for e in visits["entry"]] == [
        "fulfilled", "booked", "cancelled"]
    assert visits["entry"][0]["resource"]["serviceType"][0]["coding"][0]["code"] == \
        "pain_medicine"
    page = gw.get(f"/fhir/Appointment?patient={patient_id}&_count=2")
    assert len(page["entry"]) == 2 and page["total"] == 3
    next_url = next(link["url"] for link in page["link"] if link["relation"] == "next")
    rest = gw.get(next_url.split("://", 1)[1].split("/", 1)[1].join(["/", ""]))
    assert [e["resource"]["id"] for e in rest["entry"]] == ["appt-2"]
    assert not [link for link in rest["link"] if link["relation"] == "next"]
    week2 = gw.get("/fhir/Appointment?date=ge2026-12-14&date=lt2026-12-15")
    assert [e["resource"]["id"] for e in week2["entry"]] == ["appt-1"]
    assert gw.get("/fhir/Appointment?status=booked")["total"] == 1

    encounters = gw.get(f"/fhir/Encounter?patient={patient_id}", gw.lead)
    assert [e["resource"]["id"] for e in encounters["entry"]] == ["appt-0"]
    phq9 = gw.get(f"/fhir/Observation?patient={patient_id}&code={LOINC}|44261-6", gw.lead)
    assert phq9["total"] == 1
    obs = phq9["entry"][0]["resource"]
    assert obs["code"]["coding"][0] == {"system": LOINC, "code": "44261-6",
                                        "display": obs["code"]["coding"][0]["display"]}
    assert obs["valueInteger"] == 14
    everything = gw.get(f"/fhir/Observation?patient={patient_id}&_count=100", gw.lead)
    codes = {e["resource"]["code"]["coding"][0]["code"]: e["resource"]
             for e in everything["entry"]}
    assert {"44261-6", "44260-8", "70274-6", "72514-3", "dn4", "bpi_severity"} == set(codes)
    assert codes["bpi_severity"]["valueQuantity"]["value"] == 5.5
    answers = gw.get(f"/fhir/QuestionnaireResponse?patient={patient_id}", gw.lead)
    assert answers["total"] == 1
    qr = answers["entry"][0]["resource"]
    assert qr["questionnaire"] == "http://loinc.org/q/44249-1"
    assert [i["linkId"] for i in qr["item"]][::8] == ["44250-9", "44260-8"]
    assert [i["answer"][0]["valueCoding"]["code"] for i in qr["item"]] == [
        "LA6570-1"] * 5 + ["LA6569-3"] * 4

    # a sensitive note's item answers wait for its author to share it
    gw.feed(new_event("note.signed", {
        "note_id": "note-2", "patient_id": patient_id, "author_id": "psy-ng",
        "discipline": "psychology", "kind": "progress", "sensitive": True,
        "signed_at": (START + timedelta(days=1)).isoformat(),
        "measures": {"phq9": 9, "phq9_item9": 1},
        "items": {"phq9": [1, 1, 1, 1, 1, 1, 1, 1, 1]}}, producer="notes"))
    held = gw.get(f"/fhir/Observation?patient={patient_id}&_count=100", gw.lead)
    assert sorted(e["resource"]["id"] for e in held["entry"]
                  if e["resource"]["id"].startswith("note-2")) == ["note-2.phq9"]
    assert gw.get(f"/fhir/QuestionnaireResponse?patient={patient_id}",
                  gw.lead)["total"] == 1
    gw.feed(new_event("note.shared", {"note_id": "note-2", "patient_id": patient_id,
                                      "by": "psy-ng", "at": START.isoformat()},
                      producer="notes"))
    shared = gw.get(f"/fhir/QuestionnaireResponse?patient={patient_id}", gw.lead)
    assert shared["total"] == 2
    assert gw.get("/fhir/Observation/note-2.phq9-item9", gw.lead)["valueInteger"] == 1

    schedule = gw.get("/fhir/Schedule/prov-okafor")
    slots = gw.get("/fhir/Slot?schedule=Schedule/prov-okafor")
    assert [e["resource"]["id"] for e in slots["entry"]] == ["appt-0", "appt-1"]
    team = gw.get(f"/fhir/CareTeam/{task['id']}")
    assert team["participant"][0]["member"]["reference"] == "Practitioner/prov-okafor"
    practitioner = gw.get("/fhir/Practitioner/prov-okafor")
    assert gw.get("/fhir/Practitioner?active=true")["total"] == 1
    assert gw.get("/fhir/Practitioner?active=false")["total"] == 0
    assert gw.get("/fhir/Schedule?service-type=pain_medicine")["total"] == 1
    assert gw.get("/fhir/Schedule?service-type=psychology")["total"] == 0
    later = gw.get("/fhir/Appointment?_lastUpdated=ge2000-01-01&_count=1")
    assert later["total"] == 3

    gw.feed(new_event("note.entered_in_error", {
        "note_id": "note-1", "patient_id": patient_id, "by": "dr-okafor",
        "at": START.isoformat()}, producer="notes"))
    assert gw.get(f"/fhir/Observation/{obs['id']}", gw.lead)["status"] == "entered-in-error"

    for resource in (visits, page, rest, week2, encounters, phq9, everything, schedule,
                     slots, team, practitioner, later, answers, shared):
        assert_valid(fhir_validator, resource)
    _read_with_fhirclient(gw, patient_id)


def _read_with_fhirclient(gw: Gateway, patient_id: str) -> None:
    """A real FHIR client (SMART on FHIR's fhirclient) reads Patient, Appointment and
    Observation from the gateway over HTTP."""
    import threading

    from fhirclient import client
    from fhirclient.models.appointment import Appointment
    from fhirclient.models.observation import Observation
    from fhirclient.models.patient import Patient
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, gw.fhir.application, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        smart = client.FHIRClient(settings={
            "app_id": "paincare-tests",
            "api_base": f"http://127.0.0.1:{server.server_port}/fhir/"})
        smart.server.session.headers.update(gw.lead)
        patient = Patient.read(patient_id, smart.server)
        assert patient.birthDate.isostring == "1958-07-14"
        assert patient.identifier[0].system == NHS
        visits = list(Appointment.where(struct={"patient": patient_id})
                      .perform_resources_iter(smart.server))
        assert sorted(v.id for v in visits) == ["appt-0", "appt-1", "appt-2"]
        assert {v.serviceType[0].coding[0].code for v in visits} == {"pain_medicine"}
        measures = list(Observation.where(struct={"patient": patient_id, "code": "44261-6"})
                        .perform_resources_iter(smart.server))
        assert [(o.code.coding[0].system, o.valueInteger) for o in measures] == [
            (LOINC, 14), (LOINC, 9)]
    finally:
        server.shutdown()
        thread.join(timeout=5)


def test_a_bare_service_request_with_contained_resources_is_a_referral(gateway,
                                                                        fhir_validator):
    gw = gateway
    resp = gw.fhir.post("/fhir/ServiceRequest", json=bare_service_request(),
                        headers=gw.scheduler)
    assert resp.status_code == 201, resp.get_json()
    assert_valid(fhir_validator, resp.get_json())
    again = gw.fhir.post("/fhir/ServiceRequest", json=bare_service_request(),
                         headers=gw.scheduler)
    assert again.status_code == 200 and again.get_json()["id"] == resp.get_json()["id"]
    referral = gw.referrals.get(f"/referrals/{resp.get_json()['id']}",
                                headers=gw.lead).get_json()
    assert referral["attachments"][0]["reference"] == "https://gp.example.org/letters/42"


def test_metadata_code_systems_search_errors_and_roles(gateway, fhir_validator):
    gw = gateway
    capability = gw.get("/fhir/metadata")
    assert capability["fhirVersion"] == "4.0.1"
    types = {r["type"] for r in capability["rest"][0]["resource"]}
    assert {"Patient", "ServiceRequest", "Task", "Appointment", "Observation", "Encounter",
            "Schedule", "Slot", "CareTeam"} <= types
    measures = gw.get("/fhir/CodeSystem/measure")
    statuses = gw.get("/fhir/CodeSystem/referral-status")
    for resource in (capability, measures, statuses):
        assert_valid(fhir_validator, resource)

    bad = gw.fhir.get("/fhir/Appointment?colour=blue", headers=gw.scheduler)
    assert bad.status_code == 400
    assert bad.get_json()["issue"][0]["expression"] == ["colour"]
    assert gw.fhir.get("/fhir/Appointment?date=yesterday",
                       headers=gw.scheduler).status_code == 400
    assert gw.fhir.get("/fhir/Appointment?_count=1000",
                       headers=gw.scheduler).status_code == 400
    missing = gw.fhir.get("/fhir/Patient/nobody", headers=gw.scheduler)
    assert missing.status_code == 404 and missing.get_json()["issue"][0]["code"] == "not-found"
    assert gw.fhir.get("/fhir/Questionnaire/1", headers=gw.scheduler).status_code == 404
    assert_valid(fhir_validator, missing.get_json())

    anonymous = gw.fhir.get("/fhir/Patient")
    assert anonymous.status_code == 401
    assert anonymous.get_json()["issue"][0]["code"] == "login"
    # specialists triage, they do not send referrals in
    assert _post(gw, referral_bundle(), gw.lead).status_code == 403
    # measures and visits are clinical: specialists read them, schedulers do not
    assert gw.fhir.get("/fhir/Observation", headers=gw.scheduler).status_code == 403
    assert gw.fhir.get("/fhir/Observation", headers=gw.lead).status_code == 200
