"""The patient registry behind the referral desk, on a real database (SQLite and
PostgreSQL): one PainCare id per person, matched on identifiers with their system, a
demographic likeness as a possible-same task for a scheduler, links and unlinks as
events, contacts whose newest change stands."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from tests.integration.referrals.conftest import Desk, referral_body
from tests.support.clinic import bearer

VALID_NHS = "943 476 5919"  # the NHS's own example number (check digit 9)


def patient(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"id": "123", "name": "Ann Whitfield", "date_of_birth": "1958-07-14",
                            "contact": {"email": "ann@example.org", "phone": "+44 7700 900123"},
                            "preferred_channel": "email"}
    body.update(changes)
    return body


def refer(desk: Desk, organisation: str, condition: str = "diabetic_neuropathy",
          **changes: Any) -> dict[str, Any]:
    body = referral_body(patient=patient(**changes), condition=condition,
                         referrer={"name": "Dr Priya Patel", "organisation": organisation})
    resp = desk.client.post("/referrals", json=body, headers=desk.scheduler)
    assert resp.status_code in (200, 201), resp.get_json()
    return resp.get_json()


def outbox(desk: Desk, event_type: str) -> list[tuple[str, dict[str, Any]]]:
    t = desk.runtime.tables.outbox
    with desk.runtime.db.transaction() as s:
        rows = s.execute(select(t.c.topic, t.c.body).where(t.c.event_type == event_type)
                         .order_by(t.c.seq)).all()
    return [(topic, json.loads(bytes(body))["payload"]) for topic, body in rows]


def test_two_practices_patient_123_are_two_patients_and_the_referrer_id_is_an_identifier(
        desk: Desk) -> None:
    elm = refer(desk, "Elm Street Surgery", contact={"email": "ann@example.org"})
    oak = refer(desk, "Oak Lane Practice", name="Bob Marsh", date_of_birth="1970-02-02",
                contact={"email": "bob@example.org"})
    assert elm["patient"]["id"] != oak["patient"]["id"]
    assert elm["patient"]["id"] != "123"  # PainCare's own id
    assert elm["patient"]["identifiers"] == [{"system": "local:elm street surgery",
                                              "value": "123"}]
    again = refer(desk, "elm street  surgery", condition="radiculopathy")
    assert again["patient"]["id"] == elm["patient"]["id"]  # same system and value


def test_the_same_nhs_number_from_another_referrer_is_the_same_patient(desk: Desk) -> None:
    nhs = [{"system": "nhs_number", "value": VALID_NHS}]
    first = refer(desk, "Elm Street Surgery", identifiers=nhs)
    second = refer(desk, "St Mary's Hospital", id="H-77", condition="radiculopathy",
                   identifiers=[{"system": "nhs_number", "value": "9434765919"},
                                {"system": "mrn", "value": "M-1", "assigner": "St Mary's"}])
    assert second["patient"]["id"] == first["patient"]["id"]
    got = desk.client.get(f"/patients/{first['patient']['id']}", headers=desk.scheduler)
    assert got.status_code == 200
    assert {(i["system"], i["value"]) for i in got.get_json()["identifiers"]} == {
        ("local:elm street surgery", "123"), ("nhs_number", "9434765919"),
        ("local:st mary's hospital", "H-77"), ("mrn:st mary's", "M-1")}


def test_an_nhs_number_failing_its_check_digit_is_422_naming_the_field_and_nothing_is_written(
        desk: Desk) -> None:
    before = desk.counts()
    resp = desk.client.post("/referrals", headers=desk.scheduler, json=referral_body(
        patient=patient(identifiers=[{"system": "nhs_number", "value": "943 476 5918"}])))
    assert resp.status_code == 422
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    assert "patient.identifiers.0.value" in resp.get_json()["errors"]
    mrn = desk.client.post("/referrals", headers=desk.scheduler, json=referral_body(
        patient=patient(identifiers=[{"system": "mrn", "value": "M-1"}])))
    assert mrn.status_code == 422 and "patient.identifiers.0.assigner" in mrn.get_json()["errors"]
    assert desk.counts() == before


def test_a_demographic_likeness_opens_a_task_and_link_and_unlink_are_events(
        desk: Desk) -> None:
    a = refer(desk, "Elm Street Surgery")["patient"]["id"]
    b = refer(desk, "Oak Lane Practice", id="X9",
              contact={"email": "a.w@example.org", "phone": "07700 900123"},
              condition="radiculopathy")["patient"]["id"]
    assert a != b  # never merged on likeness alone
    tasks = desk.client.get("/patients/possible-same?status=open", headers=desk.scheduler)
    [task] = tasks.get_json()
    assert {task["patient_id"], task["other_patient_id"]} == {a, b}
    refused = desk.client.post(f"/patients/possible-same/{task['id']}/link", headers=desk.physio)
    assert refused.status_code == 403
    linked = desk.client.post(f"/patients/possible-same/{task['id']}/link",
                              headers=desk.scheduler)
    assert linked.status_code == 200 and linked.get_json()["status"] == "linked"
    again = desk.client.post(f"/patients/possible-same/{task['id']}/keep-apart",
                             headers=desk.scheduler)
    assert again.status_code == 409
    [(topic, event)] = outbox(desk, "patient.linked")
    assert topic == "patients.events"
    assert (event["patient_id"], event["linked_patient_id"]) == (a, b)
    assert desk.client.get(f"/patients/{a}", headers=desk.scheduler).get_json()["linked"] == [b]
    undone = desk.client.post(f"/patients/{b}/unlink", json={"reason": "different people"},
                              headers=desk.scheduler)
    assert undone.status_code == 200 and undone.get_json()["linked_to"] is None
    [(_, event)] = outbox(desk, "patient.unlinked")
    assert (event["patient_id"], event["linked_patient_id"]) == (a, b)
    twice = desk.client.post(f"/patients/{b}/unlink", json={"reason": "again"},
                             headers=desk.scheduler)
    assert twice.status_code == 409


def test_contacts_are_an_event_on_the_protected_topic_and_an_older_referral_changes_nothing(
        desk: Desk) -> None:
    pid = refer(desk, "Elm Street Surgery")["patient"]["id"]
    changed = desk.client.patch(f"/patients/{pid}/contacts", headers=desk.scheduler,
                                json={"email": "ann.new@example.org"})
    assert changed.status_code == 200 and changed.get_json()["source"] == "user:sam-scheduler"
    yesterday = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    refer(desk, "Elm Street Surgery", condition="radiculopathy", details_as_of=yesterday,
          contact={"email": "ann.old@example.org"})
    got = desk.client.get(f"/patients/{pid}", headers=desk.scheduler).get_json()
    assert got["email"] == "ann.new@example.org"
    events = outbox(desk, "patient.contact_changed")
    assert [e["email"] for _t, e in events] == ["ann@example.org", "ann.new@example.org"]
    assert {t for t, _e in events} == {"patients.contacts"}
    [(_t, received), *_] = outbox(desk, "referral.received")
    assert received["patient_id"] == pid and "patient" not in received  # v2: ids only


def test_the_registry_is_for_schedulers(desk: Desk, settings_for: Any) -> None:
    pid = refer(desk, "Elm Street Surgery")["patient"]["id"]
    for headers in (desk.physio, desk.admin, desk.lead):
        assert desk.client.get(f"/patients/{pid}", headers=headers).status_code == 403
    referrer = bearer(desk.runtime.settings, "referrer", "emis-elm")
    assert desk.client.get("/patients/possible-same", headers=referrer).status_code == 403


def test_referrals_are_found_by_paincare_id_or_by_an_identifier(desk: Desk) -> None:
    made = refer(desk, "Elm Street Surgery")
    for key in (made["patient"]["id"], "123"):
        found = desk.client.get(f"/referrals?patient_id={key}", headers=desk.scheduler)
        assert [r["id"] for r in found.get_json()["items"]] == [made["id"]]
    none = desk.client.get("/referrals?patient_id=124", headers=desk.scheduler)
    assert none.get_json()["items"] == []


def test_a_contact_change_is_checked_and_nothing_is_half_written(desk: Desk) -> None:
    pid = refer(desk, "Elm Street Surgery")["patient"]["id"]
    for body, field in (({"email": None}, "email"), ({"phone": "nope"}, "phone"),
                        ({"name": "Ann\x00"}, "name"),
                        ({"date_of_birth": "2999-01-01"}, "date_of_birth")):
        resp = desk.client.patch(f"/patients/{pid}/contacts", json=body, headers=desk.scheduler)
        assert resp.status_code == 422, (body, resp.get_json())
        assert field in resp.get_json()["errors"]
    assert [e["email"] for _t, e in outbox(desk, "patient.contact_changed")] == [
        "ann@example.org"]
    missing = desk.client.patch("/patients/nobody/contacts", json={"language": "fr"},
                                headers=desk.scheduler)
    assert missing.status_code == 404
