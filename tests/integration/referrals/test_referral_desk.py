"""The referral desk through HTTP on a real database (each test runs on SQLite and on
PostgreSQL): intake, duplicates, triage, decisions, history, queries, roles and audit."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from services.referrals import use_cases
from services.referrals.api import ReferralIn
from services.referrals.domain import Actor
from tests.integration.referrals.conftest import Desk, referral_body, triage_body


def test_a_referral_goes_from_received_to_accepted_and_keeps_its_history(desk: Desk):
    referral = desk.refer()
    assert referral["status"] == "received"
    assert referral["allowed_moves"] == ["cancel", "hold", "reject", "triage"]
    assert referral["patient"]["contact"]["phone"] == "+44 7700 900123"
    # the scheduler who keyed it in gets the administrative fields back, no clinical text
    assert "medications" not in referral and "medications" in referral["withheld"]
    clinical = desk.client.get(f"/referrals/{referral['id']}", headers=desk.lead).get_json()
    assert [m["name"] for m in clinical["medications"]] == ["pregabalin", "amitriptyline"]

    triaged = desk.triage(referral["id"], reason="DN4 6/10; sleep and mood affected")
    assert triaged.status_code == 200, triaged.get_json()
    body = triaged.get_json()
    assert (body["status"], body["priority"], body["target_days"]) == ("triaged", "soon", 28)
    assert body["screening"] == {"tool": "dn4", "score": 6}
    assert [(s["discipline"], s["after"]) for s in body["pathway"]] == [
        ("pain_medicine", []), ("physical_therapy", ["pain_medicine"]),
        ("psychology", ["pain_medicine"])]

    accepted = desk.client.post(f"/referrals/{referral['id']}/accept", json={},
                                headers=desk.lead)
    assert accepted.status_code == 200
    got = desk.client.get(f"/referrals/{referral['id']}", headers=desk.scheduler).get_json()
    assert got["status"] == "accepted" and got["decided_by"] == "dr-okafor"
    assert [(h["from_status"], h["to_status"], h["by"]) for h in got["history"]] == [
        (None, "received", "sam-scheduler"), ("received", "triaged", "dr-okafor"),
        ("triaged", "accepted", "dr-okafor")]
    assert all(h["at"] for h in got["history"])
    assert "reason" not in got["history"][1]  # a clinician's words: not for schedulers
    lead_view = desk.client.get(f"/referrals/{referral['id']}", headers=desk.lead).get_json()
    assert lead_view["history"][1]["reason"] == "DN4 6/10; sleep and mood affected"
    assert desk.outbox_types() == [
        "patient.contact_changed", "referral.received", "referral.status_changed",
        "referral.triaged",
        "referral.status_changed", "referral.accepted", "referral.status_changed"]


def test_rejecting_and_cancelling_record_why(desk: Desk):
    rejected = desk.refer()
    resp = desk.client.post(f"/referrals/{rejected['id']}/reject",
                            json={"reason": "Nociceptive knee pain; refer to orthopaedics"},
                            headers=desk.lead)
    assert resp.status_code == 200
    assert resp.get_json()["closed_reason"].startswith("Nociceptive")
    assert resp.get_json()["history"][-1]["reason"].startswith("Nociceptive")

    held = desk.refer(condition="crps")
    # decisions are the triage lead's or the patient's pain-medicine lead's; a
    # physiotherapist not on the patient's team does not even see the referral
    assert desk.client.post(f"/referrals/{held['id']}/hold", json={"reason": "abroad"},
                            headers=desk.physio).status_code == 404
    desk.client.post(f"/referrals/{held['id']}/hold", json={"reason": "patient abroad"},
                     headers=desk.lead)
    cancelled = desk.client.post(f"/referrals/{held['id']}/cancel",
                                 json={"reason": "patient moved away"}, headers=desk.lead)
    assert cancelled.get_json()["status"] == "cancelled"
    assert [h["to_status"] for h in cancelled.get_json()["history"]] == [
        "received", "on_hold", "cancelled"]
    assert desk.outbox_types().count("referral.rejected") == 1
    assert desk.outbox_types().count("referral.cancelled") == 1


def test_an_illegal_move_is_a_409_and_changes_nothing(desk: Desk):
    referral = desk.refer()
    before = desk.counts()
    resp = desk.client.post(f"/referrals/{referral['id']}/accept", json={}, headers=desk.lead)
    assert resp.status_code == 409
    assert resp.headers["Content-Type"] == "application/problem+json"
    assert "received" in resp.get_json()["detail"]
    resp = desk.client.post(f"/referrals/{referral['id']}/discharge", json={},
                            headers=desk.lead)
    assert resp.status_code == 409
    assert desk.counts() == before


def test_duplicate_submissions_return_the_existing_referral(desk: Desk):
    first = desk.refer()
    again = desk.client.post("/referrals", json=referral_body(), headers=desk.scheduler)
    assert again.status_code == 200 and again.get_json()["id"] == first["id"]
    spelled = referral_body(referrer={"name": "dr priya patel", "organisation": "ELM STREET "
                                      "SURGERY"})
    assert desk.client.post("/referrals", json=spelled,
                            headers=desk.scheduler).get_json()["id"] == first["id"]

    other_condition = desk.client.post("/referrals", json=referral_body(condition="crps"),
                                       headers=desk.scheduler)
    assert other_condition.status_code == 201

    keyed = {**desk.scheduler, "Idempotency-Key": "letter-2026-0042"}
    body = referral_body(patient={**referral_body()["patient"], "id": "pat-bob"})
    made = desk.client.post("/referrals", json=body, headers=keyed)
    replay = desk.client.post("/referrals", json=body, headers=keyed)
    assert (made.status_code, replay.status_code) == (201, 200)
    assert replay.get_json()["id"] == made.get_json()["id"]
    misuse = desk.client.post("/referrals", json=referral_body(condition="radiculopathy"),
                              headers=keyed)
    assert misuse.status_code == 409
    assert desk.counts()[0] == 3

    desk.client.post(f"/referrals/{first['id']}/cancel", json={"reason": "sent in error"},
                     headers=desk.lead)
    re_referral = desk.client.post("/referrals", json=referral_body(), headers=desk.scheduler)
    assert re_referral.status_code == 201 and re_referral.get_json()["id"] != first["id"]


def _missing_patient() -> dict[str, Any]:
    body = referral_body()
    del body["patient"]
    return body


BAD_INTAKES = [
    pytest.param(_missing_patient(), "patient", id="missing-patient"),
    pytest.param(referral_body(patient={**referral_body()["patient"],
                                        "date_of_birth": "14/07/1958"}),
                 "patient.date_of_birth", id="malformed-date"),
    pytest.param(referral_body(reason="x" * 4001), "reason", id="oversized-reason"),
    pytest.param(referral_body(condition="fibromyalgia"), "condition", id="unknown-condition"),
    pytest.param(referral_body(condition="other"), "condition_detail", id="other-without-text"),
    pytest.param(referral_body(medications=[{"name": "duloxetine"}]), "medications.0.dose",
                 id="medication-without-dose"),
    pytest.param(referral_body(patient={**referral_body()["patient"],
                                        "date_of_birth": "2999-01-01"}),
                 "patient.date_of_birth", id="born-in-the-future"),
    pytest.param(referral_body(patient={**referral_body()["patient"], "name": "Ann\x00"}),
                 "patient.name", id="nul-byte"),
    pytest.param(referral_body(reason="pain \ud800"), "reason", id="lone-surrogate"),
]


@pytest.mark.parametrize(("body", "field"), BAD_INTAKES)
def test_bad_intake_is_a_422_naming_the_field_and_stores_nothing(desk: Desk, body, field):
    resp = desk.client.post("/referrals", json=body, headers=desk.scheduler)
    assert resp.status_code == 422, resp.get_json()
    assert field in resp.get_json()["errors"]
    assert desk.counts() == (0, 0, 0)


def test_hostile_ids_and_queries_are_refused_not_crashed_on(desk: Desk):
    # a control character in the URL is refused at the door, before any lookup
    assert desk.client.get("/referrals/%00", headers=desk.scheduler).status_code == 400
    assert desk.client.get("/referrals/" + "9" * 400,
                           headers=desk.scheduler).status_code == 404
    resp = desk.client.get("/referrals?referrer=%00", headers=desk.scheduler)
    assert resp.status_code == 422 and "query.referrer" in resp.get_json()["errors"]
    resp = desk.client.post("/referrals", json=referral_body(),
                            headers={**desk.scheduler, "Idempotency-Key": "k" * 201})
    assert resp.status_code == 422 and "Idempotency-Key" in resp.get_json()["errors"]
    assert desk.counts() == (0, 0, 0)


def _pathway_step(**changes: Any) -> list[dict[str, Any]]:
    step = {"discipline": "pain_medicine", "visit_minutes": 45, "sessions": 1,
            "interval_days": 0}
    step.update(changes)
    return [step]


BAD_TRIAGES = [
    pytest.param({"screening": {"tool": "dn4", "score": 11}}, "screening.score",
                 id="dn4-out-of-range"),
    pytest.param({"screening": {"tool": "paindetect", "score": -2}}, "screening.score",
                 id="paindetect-out-of-range"),
    pytest.param({"pathway": _pathway_step(discipline="chiropractic")},
                 "pathway.0.discipline", id="unknown-discipline"),
    pytest.param({"pathway": _pathway_step(visit_minutes=5)}, "pathway.0.visit_minutes",
                 id="visit-too-short"),
    pytest.param({"priority": "whenever"}, "priority", id="unknown-priority"),
]


@pytest.mark.parametrize(("changes", "field"), BAD_TRIAGES)
def test_bad_triage_is_a_422_naming_the_field_and_stores_nothing(desk: Desk, changes, field):
    referral = desk.refer()
    before = desk.counts()
    resp = desk.triage(referral["id"], **changes)
    assert resp.status_code == 422, resp.get_json()
    assert field in resp.get_json()["errors"]
    assert desk.counts() == before
    got = desk.client.get(f"/referrals/{referral['id']}", headers=desk.lead).get_json()
    assert got["status"] == "received" and got["priority"] is None


def test_who_may_do_what(desk: Desk):
    referral = desk.refer()
    assert desk.client.post("/referrals", json=referral_body(),
                            headers=desk.lead).status_code == 403
    assert desk.client.get("/referrals", headers=desk.physio).status_code == 200
    assert desk.client.get("/referrals").status_code == 401
    assert desk.triage(referral["id"]).status_code == 200
    before = desk.counts()
    # a scheduler is refused for its role (403); a specialist outside the patient's care
    # team is told nothing of the referral (404): both audited as refused
    for who, code in ((desk.scheduler, 403), (desk.physio, 404)):
        refused = desk.client.post(f"/referrals/{referral['id']}/accept", json={},
                                   headers=who)
        assert refused.status_code == code
    assert desk.client.post(f"/referrals/{referral['id']}/triage", json=triage_body(),
                            headers=desk.physio).status_code == 404
    assert desk.counts() == before
    audit = desk.runtime.tables.audit
    with desk.runtime.db.transaction() as s:
        refusals = s.execute(select(audit.c.actor, audit.c.action)
                             .where(audit.c.outcome == "refused")).all()
        reads = s.execute(select(audit.c.actor).where(audit.c.action == "create")).all()
    assert ("pt-lee", "accept") in refusals and ("pt-lee", "triage") in refusals
    assert reads == [("sam-scheduler",)]
    # admin is operations: no clinical decision passes implicitly
    assert desk.client.post(f"/referrals/{referral['id']}/accept", json={},
                            headers=desk.admin).status_code == 403
    assert desk.client.post(f"/referrals/{referral['id']}/accept", json={},
                            headers=desk.lead).status_code == 200


def _received_days_ago(desk: Desk, days: int, **changes: Any) -> str:
    """A referral that arrived in the past: the use case takes the clock as a parameter."""
    loaded = ReferralIn().load(referral_body(**changes))
    with desk.runtime.db.transaction() as s:
        row, _ = use_cases.receive(desk.runtime, s, loaded, actor=Actor("sam", "scheduler"),
                                   now=datetime.now(UTC) - timedelta(days=days))
        return row.id


def test_lists_filter_page_and_find_the_overdue(desk: Desk):
    late = _received_days_ago(desk, 100, urgency_requested="urgent")
    desk.triage(late, priority="urgent")
    on_time = desk.refer(patient={**referral_body()["patient"], "id": "pat-cy"},
                         condition="trigeminal_neuralgia")
    desk.refer(patient={**referral_body()["patient"], "id": "pat-di"},
               referrer={"name": "Dr Mo Haddad", "organisation": "Royal Infirmary"},
               condition="post_herpetic_neuralgia")

    def ids(query: str) -> list[str]:
        resp = desk.client.get(f"/referrals?{query}", headers=desk.scheduler)
        assert resp.status_code == 200, resp.get_json()
        return [r["id"] for r in resp.get_json()["items"]]

    assert ids("overdue=true") == [late]
    assert late not in ids("overdue=false") and on_time["id"] in ids("overdue=false")
    assert ids("status=triaged") == [late]
    assert ids("priority=urgent") == [late]
    assert ids("condition=trigeminal_neuralgia") == [on_time["id"]]
    assert len(ids("referrer=royal")) == 1
    assert len(ids("referrer=patel")) == 2
    page = desk.client.get("/referrals?limit=2&offset=2", headers=desk.scheduler).get_json()
    assert (page["total"], len(page["items"]), page["offset"]) == (3, 1, 2)
    overdue = desk.client.get(f"/referrals/{late}", headers=desk.scheduler).get_json()
    assert overdue["overdue"] is True and overdue["waiting_days"] == 100
    assert desk.client.get("/referrals?status=lost", headers=desk.scheduler).status_code == 422


def test_the_triage_queue_is_most_urgent_then_longest_waiting(desk: Desk):
    old_routine = _received_days_ago(desk, 20, patient={**referral_body()["patient"],
                                                        "id": "p1"})
    asked_urgent = _received_days_ago(desk, 2, urgency_requested="urgent",
                                      patient={**referral_body()["patient"], "id": "p2"})
    newer_routine = _received_days_ago(desk, 5, patient={**referral_body()["patient"],
                                                         "id": "p3"})
    triaged_soon = _received_days_ago(desk, 1, patient={**referral_body()["patient"],
                                                        "id": "p4"})
    desk.triage(triaged_soon, priority="soon")
    accepted = _received_days_ago(desk, 30, patient={**referral_body()["patient"], "id": "p5"})
    desk.triage(accepted)
    desk.client.post(f"/referrals/{accepted}/accept", json={}, headers=desk.lead)

    queue = desk.client.get("/referrals/queue", headers=desk.lead).get_json()
    assert [i["referral"]["id"] for i in queue["items"]] == [
        asked_urgent, triaged_soon, old_routine, newer_routine]
    assert [i["next_action"] for i in queue["items"]] == ["triage", "decide", "triage",
                                                          "triage"]
    assert queue["total"] == 4
    second_page = desk.client.get("/referrals/queue?limit=2&offset=2",
                                  headers=desk.lead).get_json()
    assert [i["position"] for i in second_page["items"]] == [3, 4]


def test_the_clinic_sets_its_own_targets(desk: Desk):
    assert desk.client.get("/priority-targets", headers=desk.scheduler).get_json() == {
        "urgent": 7, "soon": 28, "routine": 90}
    assert desk.client.put("/priority-targets", json={"soon": 21},
                           headers=desk.lead).status_code == 403
    resp = desk.client.put("/priority-targets", json={"soon": 21, "urgent": 3},
                           headers=desk.admin)
    assert resp.get_json() == {"urgent": 3, "soon": 21, "routine": 90}
    referral = desk.refer()
    assert desk.triage(referral["id"], priority="soon").get_json()["target_days"] == 21


def test_the_api_is_documented(desk: Desk):
    spec = desk.client.get("/openapi.json").get_json()
    assert {"/referrals", "/referrals/queue", "/referrals/{referral_id}",
            "/referrals/{referral_id}/triage", "/referrals/{referral_id}/accept",
            "/priority-targets"} <= set(spec["paths"])
    assert desk.client.get("/docs").status_code == 200


def test_the_same_referral_sent_at_once_from_four_desks_is_stored_once(desk: Desk):
    barrier = threading.Barrier(4)

    def send(key: str | None) -> tuple[int, str]:
        client = desk.client.application.test_client()
        headers = {**desk.scheduler, **({"Idempotency-Key": key} if key else {})}
        barrier.wait()
        resp = client.post("/referrals", json=referral_body(), headers=headers)
        return resp.status_code, resp.get_json()["id"]

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(send, [None, None, "fax-1", "fax-1"]))
    assert sorted(code for code, _id in answers) == [200, 200, 200, 201]
    assert len({rid for _code, rid in answers}) == 1
    assert desk.counts()[0] == 1
    assert desk.outbox_types() == ["patient.contact_changed", "referral.received",
                                   "referral.status_changed"]
