"""One person registered twice, linked and unlinked across the clinic on the real broker
(referrals, scheduling, notes and the notifier as processes): while linked, the patient's
timeline, care team, appointments and contacts are read together in every service; after
the unlink each registration has exactly its own again. Nothing is lost either way."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from shared.config import Settings
from tests.integration.notes.conftest import PROGRESS
from tests.integration.notifier.local_servers import SmtpServer
from tests.integration.referrals.conftest import referral_body
from tests.support.clinic import bearer, wait_for
from tests.support.processes import running_services

pytestmark = pytest.mark.kafka


def _weekday_ahead(days: int) -> datetime:
    day = (datetime.now(UTC) + timedelta(days=days)).replace(hour=10, minute=0, second=0,
                                                             microsecond=0)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


@pytest.fixture
def smtp():
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.mark.journey(short="postgres")
def test_two_registrations_linked_then_unlinked_keep_every_record(
        new_database_url, topic_prefix, kafka_bootstrap, tmp_path, smtp):
    settings = Settings.for_service("tests", topic_prefix=topic_prefix,
                                    kafka_bootstrap=kafka_bootstrap)
    scheduler = bearer(settings, "scheduler", "sam-scheduler")
    admin = bearer(settings, "admin", "root")
    env = {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp.port),
           "TRIAGE_LEAD_EMAIL": "lead@clinic.test", "NOTIFIER_POLL_SECONDS": "0.1"}
    with running_services(["referrals", "scheduling", "notes", "notifier"],
                          database_url=new_database_url, topic_prefix=topic_prefix,
                          log_dir=tmp_path / "logs", extra_env=env, web_workers=1) as clinic:
        ref, sch = clinic["referrals"].url, clinic["scheduling"].url
        notes, notifier = clinic["notes"].url, clinic["notifier"].url

        # Ann, sent by two practices that both call her "123": two PainCare patients,
        # alike in name, birth date and phone, so a possible-same task is opened
        def refer(organisation: str, email: str, condition: str) -> str:
            body = referral_body(condition=condition, patient={
                "id": "123", "name": "Ann Whitfield", "date_of_birth": "1958-07-14",
                "contact": {"email": email, "phone": "+44 7700 900123"},
                "preferred_channel": "email"},
                referrer={"name": "Dr Patel", "organisation": organisation})
            made = requests.post(f"{ref}/referrals", json=body, headers=scheduler, timeout=10)
            assert made.status_code == 201, made.text
            return made.json()["patient"]["id"]

        a = refer("Elm Street Surgery", "ann@elm.example.org", "diabetic_neuropathy")
        b = refer("Oak Lane Practice", "ann@oak.example.org", "radiculopathy")
        assert a != b
        [task] = requests.get(f"{ref}/patients/possible-same?status=open", headers=scheduler,
                              timeout=10).json()

        # each registration has its own provider, appointment, care team and signed note
        start = _weekday_ahead(10)
        providers: dict[str, dict[str, str]] = {}
        for patient, discipline, at in ((a, "pain_medicine", start),
                                        (b, "physical_therapy", start + timedelta(hours=2))):
            made = requests.post(f"{sch}/providers", headers=admin, timeout=10, json={
                "name": f"Dr {discipline}", "discipline": discipline, "visit_types": [],
                "email": f"{discipline}@clinic.test"})
            assert made.status_code == 201, made.text
            pid = made.json()["id"]
            week = [{"weekday": d, "start": "08:00", "end": "18:00"} for d in range(5)]
            assert requests.put(f"{sch}/providers/{pid}/template", json={"blocks": week},
                                headers=admin, timeout=10).status_code == 200
            booked = requests.post(f"{sch}/appointments", headers=scheduler, timeout=10, json={
                "patient_id": patient, "provider_id": pid, "start": at.isoformat(),
                "minutes": 45})
            assert booked.status_code == 201, booked.text
            doctor = bearer(settings, "specialist", f"dr-{discipline}", discipline=discipline,
                            provider_id=pid)
            providers[patient] = {"id": pid, **doctor}
            wait_for(lambda p=patient, h=doctor: requests.post(
                f"{notes}/patients/{p}/notes", json=PROGRESS, headers=h,
                timeout=10).status_code == 201 or None,
                timeout=90, what="the booked provider on the care team, writing a note")
        for patient in (a, b):
            doctor = {k: v for k, v in providers[patient].items() if k != "id"}
            timeline = requests.get(f"{notes}/patients/{patient}/timeline", headers=doctor,
                                    timeout=10).json()
            [note] = timeline["notes"]
            assert requests.post(f"{notes}/notes/{note['id']}/sign", headers=doctor,
                                 timeout=10).status_code == 200

        def seen(patient: str) -> dict[str, Any]:
            doctor = {k: v for k, v in providers[a].items() if k != "id"}
            timeline = requests.get(f"{notes}/patients/{patient}/timeline", headers=doctor,
                                    timeout=10)
            team = requests.get(f"{notes}/patients/{patient}/care-team", headers=doctor,
                                timeout=10)
            appts = requests.get(f"{sch}/appointments", params={"patient_id": patient},
                                 headers=scheduler, timeout=10).json()
            contact = requests.get(f"{notifier}/recipients/{patient}", headers=scheduler,
                                   timeout=10)
            return {"notes": sorted(n["patient_id"] for n in timeline.json()["notes"])
                    if timeline.status_code == 200 else timeline.status_code,
                    "team": sorted(m["member_id"] for m in team.json() if m["active"])
                    if team.status_code == 200 else team.status_code,
                    "appointments": sorted(x["patient_id"] for x in appts),
                    "contacts_of": contact.json().get("contacts_of") if contact.ok else None}

        apart = {"notes": [a], "team": [providers[a]["id"]], "appointments": [a],
                 "contacts_of": a}
        wait_for(lambda: seen(a) == apart or None, timeout=60,
                 what=f"Ann's first registration on its own: {seen(a)}")

        # a scheduler links them: every service reads them together
        linked = requests.post(f"{ref}/patients/possible-same/{task['id']}/link",
                               headers=scheduler, timeout=10)
        assert linked.status_code == 200, linked.text
        together = {"notes": sorted([a, b]),
                    "team": sorted([providers[a]["id"], providers[b]["id"]]),
                    "appointments": sorted([a, b]),
                    "contacts_of": b}  # the newest change of the two (Oak's came later)
        wait_for(lambda: seen(a) == together or None, timeout=90,
                 what=f"the linked records read together: {seen(a)}")

        # and unlinks them: each has its own again, nothing lost
        undone = requests.post(f"{ref}/patients/{b}/unlink", headers=scheduler, timeout=10,
                               json={"reason": "two different people after all"})
        assert undone.status_code == 200, undone.text
        wait_for(lambda: seen(a) == apart or None, timeout=90,
                 what=f"the first registration on its own again: {seen(a)}")
        doctor_b = {k: v for k, v in providers[b].items() if k != "id"}
        own = requests.get(f"{notes}/patients/{b}/timeline", headers=doctor_b, timeout=10)
        assert [n["patient_id"] for n in own.json()["notes"]] == [b]
        assert [x["patient_id"] for x in requests.get(
            f"{sch}/appointments", params={"patient_id": b}, headers=scheduler,
            timeout=10).json()] == [b]
        assert requests.get(f"{notifier}/recipients/{b}", headers=scheduler,
                            timeout=10).json()["contacts_of"] == b
