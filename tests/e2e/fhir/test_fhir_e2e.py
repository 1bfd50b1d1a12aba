"""The FHIR gateway across processes on the real broker: a referring system subscribes
and sends a referral Bundle in; triage and acceptance through referrals' API; the
itinerary scheduling proposes is booked; the referring system's endpoint hears each
change of its Task in order (the notifier's rest-hook); the patient's visits are FHIR
Appointments; a signed PHQ-9 is a LOINC Observation. Each FHIR answer is checked by the
HAPI reference validator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests

from services.scheduling import demo as scheduling_demo
from shared.config import Settings
from tests.support.clinic import bearer, wait_for
from tests.support.fhir import RestHookEndpoint, referral_bundle, subscription
from tests.support.fhir_validator import assert_valid
from tests.support.processes import running_services

# the validator's JVM starts in this test's setup when it runs alone (a minute or more on
# a busy machine)
pytestmark = [pytest.mark.kafka, pytest.mark.timeout(900)]
PHQ9 = "http://loinc.org|44261-6"


@pytest.mark.journey(short="sqlite")
def test_a_fhir_referral_is_triaged_booked_and_read_back_as_fhir(
        new_database_url, topic_prefix, kafka_bootstrap, tmp_path, fhir_validator):
    settings = Settings.for_service("tests", topic_prefix=topic_prefix,
                                    kafka_bootstrap=kafka_bootstrap)
    scheduler = bearer(settings, "scheduler", "sam-scheduler")
    lead = bearer(settings, "specialist", "dr-lead", discipline="pain_medicine",
                  also=("triage_lead",))
    gp = bearer(settings, "referrer", "gp-north")
    endpoint = RestHookEndpoint()
    with running_services(["referrals", "scheduling", "notes", "notifier"],
                          database_url=new_database_url,
                          topic_prefix=topic_prefix, log_dir=tmp_path / "logs",
                          web_workers=1) as clinic, \
            running_services(["fhir"], database_url=new_database_url,
                             topic_prefix=topic_prefix, log_dir=tmp_path / "logs",
                             extra_env={"REFERRALS_URL": clinic["referrals"].url},
                             web_workers=1) as gateway:
        fhir = gateway["fhir"].url + "/fhir"
        referrals, scheduling = clinic["referrals"].url, clinic["scheduling"].url
        scheduling_demo.seed(scheduling, bearer(settings, "admin"))

        # 1. the referring system subscribes to its Tasks, then sends a FHIR Bundle in:
        # the answer is the Task tracking the referral
        subscribed = requests.post(f"{fhir}/Subscription", timeout=30, headers={
            **gp, "Content-Type": "application/fhir+json"}, json=subscription(
                endpoint.url("/paincare-hooks"), "Task?requester=gp-north"))
        assert subscribed.status_code == 201, subscribed.text
        assert_valid(fhir_validator, subscribed.json())
        sent = requests.post(fhir, json=referral_bundle(), timeout=30, headers={
            **gp, "Content-Type": "application/fhir+json"})
        assert sent.status_code == 201, sent.text
        task = sent.json()
        assert_valid(fhir_validator, task)
        referral_id = task["id"]
        # the referring system reads its Task back; it names the patient once the
        # referral's events reached the gateway
        patient = wait_for(lambda: requests.get(
            f"{fhir}/Task/{referral_id}", headers=gp, timeout=10).json().get(
            "for", {}).get("reference"), timeout=60, what="the Task to name the patient")

        # 2. triage and accept through the referrals API
        triaged = requests.post(f"{referrals}/referrals/{referral_id}/triage", timeout=30,
                                headers=lead, json={"priority": "urgent", "pathway": [
                                    {"discipline": "pain_medicine", "visit_minutes": 45,
                                     "sessions": 1, "interval_days": 0},
                                    {"discipline": "psychology", "visit_minutes": 50,
                                     "sessions": 1, "interval_days": 0}]})
        assert triaged.status_code == 200, triaged.text
        accepted = requests.post(f"{referrals}/referrals/{referral_id}/accept", json={},
                                 headers=lead, timeout=30)
        assert accepted.status_code == 200, accepted.text

        # 3. scheduling proposes an itinerary on referral.accepted; the scheduler books it
        proposed = wait_for(lambda: requests.get(
            f"{scheduling}/itineraries", params={"referral_id": referral_id},
            headers=scheduler, timeout=10).json(), timeout=90, what="the itinerary")
        itinerary = proposed[0]
        booked = requests.post(f"{scheduling}/itineraries/{itinerary['id']}/confirm",
                               headers=scheduler, timeout=30)
        assert booked.status_code == 200, booked.text
        visits = {v["appointment_id"] for v in booked.json()["visits"]}

        # 4. the referring system's endpoint hears each change of its Task, in order
        def heard() -> list[str] | None:
            codes = [t["businessStatus"]["coding"][0]["code"] for t in endpoint.tasks()]
            return codes if "scheduled" in codes else None

        codes = wait_for(heard, timeout=120, what="the Task updates at the referrer")
        assert codes[:4] == ["received", "triaged", "accepted", "scheduled"], codes
        versions = [int(t["meta"]["versionId"]) for t in endpoint.tasks()]
        assert versions == sorted(versions) and len(set(versions)) == len(versions)
        assert {t["id"] for t in endpoint.tasks()} == {referral_id}
        assert all(path == "/paincare-hooks" for path, _h, _b in endpoint.received)
        assert_valid(fhir_validator, endpoint.tasks()[-1])

        # 5. the visits, as FHIR Appointments of the patient
        def appointments() -> dict | None:
            found = requests.get(f"{fhir}/Appointment", params={"patient": patient},
                                 headers=scheduler, timeout=10).json()
            ids = {e["resource"]["id"] for e in found.get("entry", [])}
            return found if ids == visits else None

        listed = wait_for(appointments, timeout=90, what="the Appointments")
        assert {e["resource"]["status"] for e in listed["entry"]} == {"booked"}
        assert_valid(fhir_validator, listed)
        tracked = wait_for(lambda: (t := requests.get(
            f"{fhir}/Task/{referral_id}", headers=scheduler, timeout=10).json()).get(
            "businessStatus", {}).get("coding", [{}])[0].get("code") == "scheduled" and t,
            timeout=60, what="the Task to say scheduled")
        assert tracked["status"] == "accepted"
        assert_valid(fhir_validator, tracked)

        # 6. a signed PHQ-9 is an Observation with LOINC 44261-6
        psych = next(v for v in booked.json()["visits"] if v["discipline"] == "psychology")
        psychologist = bearer(settings, "specialist", psych["provider_id"],
                              discipline="psychology", provider_id=psych["provider_id"])
        patient_id = patient.split("/")[1]
        notes = clinic["notes"].url

        def write_note() -> str | None:
            made = requests.post(f"{notes}/patients/{patient_id}/notes", headers=psychologist,
                                 timeout=10, json={
                                     "kind": "intake_assessment",
                                     "encounter_at": (datetime.now(UTC) - timedelta(hours=1)
                                                      ).isoformat(),
                                     "sections": {"impression": "Moderate low mood."},
                                     "measures": {"phq9": {"items": [2, 2, 2, 1, 1, 1, 1, 1,
                                                                     0]}}})
            return made.json()["id"] if made.status_code == 201 else None

        # the care team hears of the booking through the broker before notes accepts them
        note_id = wait_for(write_note, timeout=60, what="notes to take the psychologist's note")
        signed = requests.post(f"{notes}/notes/{note_id}/sign", headers=psychologist,
                               timeout=10)
        assert signed.status_code == 200, signed.text
        found = wait_for(lambda: (o := requests.get(
            f"{fhir}/Observation", params={"patient": patient, "code": PHQ9},
            headers=lead, timeout=10).json()).get("total") and o, timeout=60,
            what="the PHQ-9 Observation")
        phq9 = found["entry"][0]["resource"]
        assert phq9["valueInteger"] == 11 and phq9["status"] == "final"
        assert phq9["code"]["coding"][0]["code"] == "44261-6"
        assert_valid(fhir_validator, found)
    endpoint.close()
