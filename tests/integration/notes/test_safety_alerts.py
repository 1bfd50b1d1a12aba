"""A safety alert's life on a real database: a psychologist's PHQ-9 with item 9 scored
reaches named people and the day's duty clinician, is raised again when the score
rises, is acknowledged and closed by the care team or the duty clinician only, and
escalates on a clock the test controls until someone acknowledges it."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.notes import safety
from services.notes.safety_alerts import escalate_overdue, escalation_loop
from tests.integration.notes.conftest import PATIENT
from tests.support.clinic import wait_for

ITEM9 = {"kind": "intake_assessment",
         "sections": {"history": "Low mood since the shingles."}}
SECRET = "zq7x told me he keeps the tablets in the car"


def phq9(item9: int) -> dict:
    return {"phq9": {"items": [1, 1, 1, 1, 0, 0, 0, 0, item9]}}


def today(clinic) -> str:
    tz = ZoneInfo(clinic.settings.clinic_timezone)
    return safety.clinic_day(datetime.now(UTC), tz).isoformat()


def on_duty(clinic, provider_id: str = "prov-duty", day: str | None = None) -> None:
    resp = clinic.client.put(f"/duty-rota/{day or today(clinic)}",
                             json={"clinician_id": provider_id, "name": "Dr Duty"},
                             headers=clinic.headers("admin"))
    assert resp.status_code == 200, resp.get_json()


def raised(clinic) -> list[dict]:
    return [e for e in clinic.events() if e["type"] == "patient.safety_alert"]


def of_type(clinic, event_type: str) -> list[dict]:
    return [e["payload"] for e in clinic.events() if e["type"] == event_type]


def write_item9(clinic, score: int, who: str = "psych") -> dict:
    made = clinic.write(who, {**ITEM9, "measures": phq9(score)})
    assert made.status_code == 201, made.get_json()
    return made.get_json()


def post(clinic, path: str, who: str, body: dict | None = None):
    return clinic.client.post(path, json=body or {}, headers=clinic.headers(who))


def get(clinic, path: str, who: str, **query):
    return clinic.client.get(path, query_string=query, headers=clinic.headers(who))


def assert_problem(resp, status: int, field: str | None = None) -> None:
    assert resp.status_code == status, resp.get_json()
    assert resp.headers["Content-Type"] == "application/problem+json"
    if field:
        assert field in resp.get_json()["errors"], resp.get_json()


# ------------------------------------------------------------------------------ raising

def test_create_and_read_back_agree_and_the_alert_is_routed(clinic):
    clinic.care_team()
    on_duty(clinic)
    note = write_item9(clinic, 2)
    assert note["safety_alert"] is True and note["safety_alert_status"] == "open"
    assert note["safety_alert_severity"] == 2
    back = get(clinic, f"/notes/{note['id']}", "psych").get_json()
    assert {k: back[k] for k in ("safety_alert", "safety_alert_id", "safety_alert_status")} \
        == {k: note[k] for k in ("safety_alert", "safety_alert_id", "safety_alert_status")}
    draft = get(clinic, f"/patients/{PATIENT}/timeline", "psych").get_json()["notes"][0]
    assert draft["safety_alert"] is True and draft["safety_alert_id"] == note["safety_alert_id"]

    [event] = raised(clinic)
    assert event["version"] == 2
    p = event["payload"]
    assert (p["alert_id"], p["note_id"], p["source"], p["severity"], p["raised_by"]) == (
        note["safety_alert_id"], note["id"], "phq9_item9", 2, "prov-psych")
    assert p["recipients"] == [
        {"recipient_id": "prov-duty", "role": "duty_clinician"},
        {"recipient_id": "prov-psych", "role": "psychologist"},
        {"recipient_id": "dr-pain", "role": "pain_medicine_lead"},
        {"recipient_id": "role:triage_lead", "role": "triage_lead"}]
    alert = get(clinic, f"/safety-alerts/{p['alert_id']}", "psych").get_json()
    assert alert["recipients"] == p["recipients"] and alert["status"] == "open"
    assert alert["escalations"] == 0 and alert["next_escalation_at"]
    assert [(a["action"], a["resource_id"]) for a in clinic.audit(action="raise_safety_alert")
            ] == [("raise_safety_alert", p["alert_id"])]


def test_a_clinic_with_no_rota_today_reaches_the_triage_lead_once(clinic):
    clinic.care_team()
    clinic.book("prov-pain", "pain_medicine")
    write_item9(clinic, 1)
    [event] = raised(clinic)
    assert event["payload"]["recipients"] == [
        {"recipient_id": "role:triage_lead", "role": "triage_lead"},
        {"recipient_id": "prov-psych", "role": "psychologist"},
        {"recipient_id": "prov-pain", "role": "pain_medicine_lead"}]


def test_raising_item9_from_1_to_3_notifies_again_and_3_to_2_is_silent(clinic):
    clinic.care_team()
    note = write_item9(clinic, 1)
    h = clinic.headers("psych")
    up = clinic.client.put(f"/notes/{note['id']}", json={"version": 1, "measures": phq9(3)},
                           headers=h)
    assert up.status_code == 200 and up.get_json()["safety_alert_severity"] == 3
    down = clinic.client.put(f"/notes/{note['id']}", json={"version": 2, "measures": phq9(2)},
                             headers=h)
    assert down.status_code == 200 and down.get_json()["safety_alert_severity"] == 3
    same = clinic.client.put(f"/notes/{note['id']}", json={"version": 3, "measures": phq9(3)},
                             headers=h)
    assert same.status_code == 200
    events = raised(clinic)
    assert [(e["payload"]["alert_id"], e["payload"]["severity"]) for e in events] == [
        (note["safety_alert_id"], 1), (note["safety_alert_id"], 3)]
    alert = get(clinic, f"/safety-alerts/{note['safety_alert_id']}", "psych").get_json()
    assert alert["severity"] == 3 and alert["last_raised_at"]
    # once acknowledged, a still higher score is new information: a new alert
    lower = write_item9(clinic, 1)
    assert post(clinic, f"/safety-alerts/{lower['safety_alert_id']}/acknowledge", "psych",
                {"action": "risk_assessment"}).status_code == 200
    again = clinic.client.put(f"/notes/{lower['id']}", json={"version": 1, "measures": phq9(2)},
                              headers=h).get_json()
    assert again["safety_alert_id"] != lower["safety_alert_id"]
    assert again["safety_alert_status"] == "open" and len(raised(clinic)) == 4


def test_a_clinician_flags_a_risk_by_hand_on_any_note(clinic):
    clinic.care_team()
    signed = clinic.signed_note("acu", {"kind": "treatment_record",
                                        "sections": {"treatment": "LI4, ST36."}})
    path = f"/notes/{signed['id']}/safety-flag"
    made = post(clinic, path, "pain_doc", {"reason": SECRET})
    assert made.status_code == 201, made.get_json()
    alert = made.get_json()
    assert (alert["source"], alert["severity"], alert["raised_by"], alert["flag_reason"]) == (
        "clinician_flag", 2, "prov-pain", SECRET)
    [event] = raised(clinic)
    assert event["payload"]["source"] == "clinician_flag" and event["payload"]["note_id"] \
        == signed["id"]
    assert SECRET not in json.dumps(clinic.events())
    assert get(clinic, f"/notes/{signed['id']}", "psych").get_json()["safety_alert"] is True

    assert_problem(post(clinic, path, "pain_doc", {}), 422, "reason")
    assert_problem(post(clinic, path, "pain_doc", {"reason": "  "}), 422, "reason")
    assert_problem(post(clinic, path, "pain_doc", {"reason": "x", "severity": 4}), 422,
                   "severity")
    assert_problem(post(clinic, "/notes/no-such-note/safety-flag", "pain_doc",
                        {"reason": "worried"}), 404)
    assert_problem(post(clinic, path, "outsider", {"reason": "worried"}), 403)
    assert_problem(post(clinic, path, "admin", {"reason": "worried"}), 403)
    denied = clinic.audit(actor="dr-out", outcome="denied")
    assert [(a["action"], a["patient_id"]) for a in denied] == [("flag_safety_risk", PATIENT)]
    assert len(raised(clinic)) == 1


# -------------------------------------------------------------------- acknowledge, close

def test_who_may_acknowledge_and_close(clinic):
    clinic.care_team()
    alert_id = write_item9(clinic, 2)["safety_alert_id"]
    ack = f"/safety-alerts/{alert_id}/acknowledge"
    body = {"action": "crisis_plan"}
    for who in ("outsider", "admin", "scheduler", "duty"):   # duty: not on the rota today
        assert_problem(post(clinic, ack, who, body), 403)
    denied = clinic.audit(action="acknowledge_safety_alert", outcome="denied")
    assert [(a["actor"], a["resource_id"], a["patient_id"]) for a in denied] == [
        ("dr-out", alert_id, PATIENT), ("admin-1", alert_id, PATIENT),
        ("sched-1", alert_id, PATIENT), ("dr-duty", alert_id, PATIENT)]

    on_duty(clinic)
    done = post(clinic, ack, "duty", body)
    assert done.status_code == 200, done.get_json()
    assert (done.get_json()["status"], done.get_json()["acknowledged_by"],
            done.get_json()["acknowledged_action"]) == ("acknowledged", "prov-duty",
                                                        "crisis_plan")
    assert_problem(post(clinic, ack, "psych", body), 409)
    [acked] = of_type(clinic, "patient.safety_alert_acknowledged")
    assert acked["recipients"] == raised(clinic)[0]["payload"]["recipients"]
    assert (acked["acknowledged_by"], acked["action"]) == ("prov-duty", "crisis_plan")

    close = f"/safety-alerts/{alert_id}/close"
    assert_problem(post(clinic, close, "outsider", {"reason": "risk_managed"}), 403)
    closed = post(clinic, close, "psych", {"reason": "risk_managed"})
    assert closed.status_code == 200 and closed.get_json()["status"] == "closed"
    assert_problem(post(clinic, close, "psych", {"reason": "risk_managed"}), 409)
    assert_problem(post(clinic, ack, "psych", body), 409)
    [shut] = of_type(clinic, "patient.safety_alert_closed")
    assert (shut["alert_id"], shut["closed_by"], shut["reason"]) == (
        alert_id, "prov-psych", "risk_managed")
    assert [a["action"] for a in clinic.audit(resource_id=alert_id, outcome="allowed")
            if a["action"] != "read_safety_alert"] == [
        "raise_safety_alert", "acknowledge_safety_alert", "close_safety_alert"]
    note = get(clinic, f"/notes/{raised(clinic)[0]['payload']['note_id']}", "psych")
    assert note.get_json()["safety_alert"] is False
    assert note.get_json()["safety_alert_status"] == "closed"


def test_closing_needs_an_acknowledgement_unless_raised_in_error(clinic):
    clinic.care_team()
    alert_id = write_item9(clinic, 1)["safety_alert_id"]
    close = f"/safety-alerts/{alert_id}/close"
    assert_problem(post(clinic, close, "psych", {"reason": "risk_managed"}), 409)
    done = post(clinic, close, "psych", {"reason": "raised_in_error",
                                         "detail": "scored the wrong row"})
    assert done.status_code == 200 and done.get_json()["closed_detail"] == "scored the wrong row"
    assert not of_type(clinic, "patient.safety_alert_acknowledged")


def test_bad_input_is_422_naming_the_field_and_nothing_changes(clinic):
    clinic.care_team()
    alert_id = write_item9(clinic, 1)["safety_alert_id"]
    ack = f"/safety-alerts/{alert_id}/acknowledge"
    close = f"/safety-alerts/{alert_id}/close"
    assert_problem(post(clinic, ack, "psych", {}), 422, "action")
    assert_problem(post(clinic, ack, "psych", {"action": "shrugged"}), 422, "action")
    assert_problem(post(clinic, ack, "psych", {"action": "other"}), 422, "detail")
    assert_problem(post(clinic, ack, "psych", {"action": "other", "detail": "x" * 2001}), 422,
                   "detail")
    assert_problem(post(clinic, close, "psych", {"reason": "bored"}), 422, "reason")
    assert_problem(post(clinic, close, "psych", {"reason": "other"}), 422, "detail")
    assert_problem(post(clinic, "/safety-alerts/no-such-alert/acknowledge", "psych",
                        {"action": "crisis_plan"}), 404)
    assert get(clinic, f"/safety-alerts/{alert_id}", "psych").get_json()["status"] == "open"
    assert not of_type(clinic, "patient.safety_alert_acknowledged")


def test_free_text_stays_in_notes_and_never_reaches_an_event(clinic):
    clinic.care_team()
    on_duty(clinic)
    note = clinic.signed_note("psych", {**ITEM9, "measures": phq9(1)})
    flagged = post(clinic, f"/notes/{note['id']}/safety-flag", "psych",
                   {"reason": SECRET, "severity": 3}).get_json()
    post(clinic, f"/safety-alerts/{flagged['id']}/acknowledge", "duty",
         {"action": "other", "detail": "kv3m " + SECRET})
    post(clinic, f"/safety-alerts/{flagged['id']}/close", "psych",
         {"reason": "other", "detail": "zq9p crisis team took the tablets"})
    escalate_overdue(clinic.runtime, datetime.now(UTC) + timedelta(days=1))
    events = clinic.events()
    assert {e["type"] for e in events} >= {
        "patient.safety_alert", "patient.safety_alert_acknowledged",
        "patient.safety_alert_closed", "patient.safety_alert_escalated"}
    text = json.dumps(events)
    for secret in (SECRET, "kv3m", "zq9p", "Low mood"):
        assert secret not in text
    read = get(clinic, f"/safety-alerts/{flagged['id']}", "psych").get_json()
    assert read["flag_reason"] == SECRET and read["acknowledged_detail"].startswith("kv3m")
    assert read["closed_detail"].startswith("zq9p")


# ---------------------------------------------------------------------------- escalation

def test_escalation_on_a_controlled_clock_once_per_interval_until_acknowledged(clinic):
    clinic.care_team()
    on_duty(clinic)
    alert_id = write_item9(clinic, 2)["safety_alert_id"]
    raised_at = datetime.fromisoformat(raised(clinic)[0]["payload"]["raised_at"])
    minutes = lambda n: raised_at + timedelta(minutes=n)  # noqa: E731  (SAFETY_ACK_MINUTES 30)
    rt = clinic.runtime

    assert escalate_overdue(rt, minutes(29.99)) == 0
    assert escalate_overdue(rt, minutes(30)) == 1
    assert escalate_overdue(rt, minutes(30)) == 0, "the same interval escalates once"
    assert escalate_overdue(rt, minutes(59)) == 0
    assert escalate_overdue(rt, minutes(60)) == 1
    # two worker replicas at once: one escalation between them
    counts: list[int] = []
    racers = [threading.Thread(target=lambda: counts.append(escalate_overdue(rt, minutes(95))))
              for _ in range(2)]
    for t in racers:
        t.start()
    for t in racers:
        t.join()
    assert sorted(counts) == [0, 1]
    escalated = of_type(clinic, "patient.safety_alert_escalated")
    assert [(e["alert_id"], e["escalation"], e["severity"]) for e in escalated] == [
        (alert_id, 1, 2), (alert_id, 2, 2), (alert_id, 3, 2)]
    assert escalated[0]["recipients"] == [
        {"recipient_id": "role:clinical_lead", "role": "clinical_lead"},
        {"recipient_id": "prov-duty", "role": "duty_clinician"}]
    view = get(clinic, f"/safety-alerts/{alert_id}", "psych").get_json()
    assert view["escalations"] == 3
    assert datetime.fromisoformat(view["next_escalation_at"]) == minutes(120)

    assert post(clinic, f"/safety-alerts/{alert_id}/acknowledge", "psych",
                {"action": "gp_informed"}).status_code == 200
    assert escalate_overdue(rt, minutes(500)) == 0
    assert len(of_type(clinic, "patient.safety_alert_escalated")) == 3
    [acked] = of_type(clinic, "patient.safety_alert_acknowledged")
    told = {r["recipient_id"] for r in acked["recipients"]}
    assert {"role:clinical_lead", "prov-duty", "prov-psych", "role:triage_lead"} <= told
    assert [a["reason"] for a in clinic.audit(action="escalate_safety_alert")] == [
        "escalation 1", "escalation 2", "escalation 3"]


def test_the_worker_loop_escalates_what_is_overdue(clinic):
    clinic.care_team()
    write_item9(clinic, 1)
    later = datetime.now(UTC) + timedelta(hours=1)
    stop = threading.Event()
    loop = threading.Thread(target=escalation_loop(clinic.runtime, clock=lambda: later,
                                                   every=0.02), args=(stop,), daemon=True)
    loop.start()
    try:
        wait_for(lambda: of_type(clinic, "patient.safety_alert_escalated"), timeout=10,
                 what="the escalation loop's event")
    finally:
        stop.set()
        loop.join(5)
    assert len(of_type(clinic, "patient.safety_alert_escalated")) == 1


# ------------------------------------------------------------------------------- reading

def test_who_reads_which_alerts(clinic):
    clinic.care_team()
    mine = write_item9(clinic, 2)["safety_alert_id"]
    # another patient whose team psych is not on
    clinic.accept_referral(accepted_by="dr-pain", patient="pat-200", referral="ref-200")
    elsewhere = clinic.write("pain_doc", {**ITEM9, "kind": "progress",
                                          "sections": {"plan": "review"},
                                          "measures": phq9(1)}, patient="pat-200")
    assert elsewhere.status_code == 201, elsewhere.get_json()
    theirs = elsewhere.get_json()["safety_alert_id"]

    listed = get(clinic, "/safety-alerts", "psych").get_json()
    assert [a["id"] for a in listed] == [mine]
    assert [a["id"] for a in get(clinic, "/safety-alerts/mine", "psych").get_json()] == [mine]
    assert_problem(get(clinic, "/safety-alerts", "psych", patient_id="pat-200"), 403)
    assert_problem(get(clinic, f"/safety-alerts/{theirs}", "psych"), 403)
    assert get(clinic, "/safety-alerts/mine", "outsider").get_json() == []
    for who in ("admin", "scheduler"):
        for path in ("/safety-alerts", "/safety-alerts/mine", f"/safety-alerts/{mine}"):
            assert_problem(get(clinic, path, who), 403)
    assert clinic.audit(actor="admin-1", outcome="denied")

    # on duty: every open alert of the clinic, not the closed ones
    on_duty(clinic)
    assert {a["id"] for a in get(clinic, "/safety-alerts/mine", "duty").get_json()} == {
        mine, theirs}
    assert post(clinic, f"/safety-alerts/{theirs}/close", "pain_doc",
                {"reason": "raised_in_error"}).status_code == 200
    assert [a["id"] for a in get(clinic, "/safety-alerts", "duty").get_json()] == [mine]
    assert_problem(get(clinic, f"/safety-alerts/{theirs}", "duty"), 403)
    assert get(clinic, f"/safety-alerts/{theirs}", "pain_doc").status_code == 200

    # status filter, and /mine drops an acknowledged alert
    post(clinic, f"/safety-alerts/{mine}/acknowledge", "psych", {"action": "risk_assessment"})
    assert get(clinic, "/safety-alerts/mine", "psych").get_json() == []
    assert [a["id"] for a in get(clinic, "/safety-alerts", "psych",
                                 status="acknowledged").get_json()] == [mine]
    assert get(clinic, "/safety-alerts", "psych", status="open").get_json() == []
    assert_problem(get(clinic, "/safety-alerts", "psych", status="lost"), 422,
                   "query.status")
    reads = clinic.audit(actor="dr-psych", action="read_safety_alerts", outcome="allowed")
    assert reads and all(r["patient_id"] == PATIENT for r in reads)
    assert [r["patient_id"] for r in clinic.audit(actor="dr-psych", outcome="denied")] == [
        "pat-200", "pat-200"]


# ------------------------------------------------------------------------------ duty rota

def test_admins_set_the_duty_rota_and_everyone_reads_it(clinic):
    day = today(clinic)
    tomorrow = (datetime.fromisoformat(day) + timedelta(days=1)).date().isoformat()
    before = get(clinic, "/duty-rota/today", "scheduler").get_json()
    assert before == {"date": day, "on_rota": False, "clinician_id": None, "name": None,
                      "recipient": {"recipient_id": "role:triage_lead", "role": "triage_lead"}}
    on_duty(clinic)
    on_duty(clinic, "prov-other", day=tomorrow)
    now = get(clinic, "/duty-rota/today", "psych").get_json()
    assert (now["on_rota"], now["clinician_id"], now["name"]) == (True, "prov-duty", "Dr Duty")
    assert now["recipient"] == {"recipient_id": "prov-duty", "role": "duty_clinician"}
    rota = get(clinic, "/duty-rota", "scheduler", **{"from": day, "to": tomorrow}).get_json()
    assert [(r["date"], r["clinician_id"], r["set_by"]) for r in rota] == [
        (day, "prov-duty", "admin-1"), (tomorrow, "prov-other", "admin-1")]
    on_duty(clinic, "prov-third", day=tomorrow)                    # a change replaces
    assert get(clinic, "/duty-rota", "psych", **{"from": tomorrow, "to": tomorrow}
               ).get_json()[0]["clinician_id"] == "prov-third"

    deleted = clinic.client.delete(f"/duty-rota/{tomorrow}", headers=clinic.headers("admin"))
    assert deleted.status_code == 204
    assert_problem(clinic.client.delete(f"/duty-rota/{tomorrow}",
                                        headers=clinic.headers("admin")), 404)
    assert [(a["action"], a["resource_id"]) for a in clinic.audit(resource="duty_rota")] == [
        ("set_duty_rota", day), ("set_duty_rota", tomorrow), ("set_duty_rota", tomorrow),
        ("clear_duty_rota", tomorrow)]


@pytest.mark.parametrize("day, body, field", [
    ("2026-02-30", {"clinician_id": "prov-1", "name": "Dr A"}, "date"),
    ("tomorrow", {"clinician_id": "prov-1", "name": "Dr A"}, "date"),
    ("2001-01-01", {"clinician_id": "prov-1", "name": "Dr A"}, "date"),
    ("2099-01-01", {"clinician_id": "prov-1", "name": "Dr A"}, "date"),
    ("{today}", {"clinician_id": "role:triage_lead", "name": "Dr A"}, "clinician_id"),
    ("{today}", {"clinician_id": "prov 1", "name": "Dr A"}, "clinician_id"),
    ("{today}", {"name": "Dr A"}, "clinician_id"),
    ("{today}", {"clinician_id": "prov-1", "name": " "}, "name"),
    ("{today}", {"clinician_id": "prov-1"}, "name")])
def test_a_bad_rota_entry_is_422_naming_the_field(clinic, day, body, field):
    resp = clinic.client.put(f"/duty-rota/{day.format(today=today(clinic))}", json=body,
                             headers=clinic.headers("admin"))
    assert_problem(resp, 422, field)
    assert get(clinic, "/duty-rota/today", "admin").get_json()["on_rota"] is False


def test_only_admins_write_the_rota_and_bad_ranges_are_422(clinic):
    day = today(clinic)
    for who in ("psych", "scheduler", "duty"):
        resp = clinic.client.put(f"/duty-rota/{day}",
                                 json={"clinician_id": "prov-duty", "name": "Me"},
                                 headers=clinic.headers(who))
        assert_problem(resp, 403)
    assert clinic.audit(actor="dr-duty", outcome="denied")
    assert_problem(get(clinic, "/duty-rota", "psych", **{"from": "12/01/2026"}), 422,
                   "query.from")
    assert_problem(get(clinic, "/duty-rota", "psych", **{"from": "2026-12-10",
                                                         "to": "2026-12-01"}), 422,
                   "query.to")
    assert_problem(get(clinic, "/duty-rota", "psych", **{"from": "2026-01-01",
                                                         "to": "2028-01-01"}), 422,
                   "query.to")
