"""Who may read a patient's notes: the care team (built from events); admins and others
are refused and the attempt is audited; break-glass is allowed, audited and reported."""

from tests.integration.notes.conftest import PATIENT, PROGRESS


def test_a_specialist_outside_the_care_team_is_refused_and_the_attempt_audited(clinic):
    clinic.care_team()
    note = clinic.signed_note("pain_doc", PROGRESS)
    h = clinic.headers("outsider")
    tries = {
        "timeline": clinic.client.get(f"/patients/{PATIENT}/timeline", headers=h),
        "note": clinic.client.get(f"/notes/{note['id']}", headers=h),
        "versions": clinic.client.get(f"/notes/{note['id']}/versions", headers=h),
        "care team": clinic.client.get(f"/patients/{PATIENT}/care-team", headers=h),
        "write": clinic.write("outsider", PROGRESS),
        "addendum": clinic.client.post(f"/notes/{note['id']}/addenda", json={"text": "x"},
                                       headers=h),
    }
    for name, resp in tries.items():
        assert resp.status_code == 403, name
        assert resp.headers["Content-Type"] == "application/problem+json"
        assert "sections" not in resp.get_json(), name
    denied = clinic.audit(actor="dr-out", outcome="denied")
    assert [(a["action"], a["patient_id"]) for a in denied] == [
        ("read_timeline", PATIENT), ("read", PATIENT), ("read_versions", PATIENT),
        ("read_care_team", PATIENT), ("create", PATIENT), ("create", PATIENT)]
    assert denied[1]["resource_id"] == note["id"]
    # and the admin can find them in the audit trail
    trail = clinic.client.get("/audit", query_string={"actor": "dr-out", "outcome": "denied"},
                              headers=clinic.headers("admin"))
    assert trail.status_code == 200 and len(trail.get_json()) == 6
    assert clinic.client.get("/audit", headers=clinic.headers("pain_doc")).status_code == 403


def test_schedulers_do_not_read_notes_nor_admins_but_through_break_glass(clinic):
    clinic.care_team()
    clinic.signed_note("pain_doc", PROGRESS)
    sched = clinic.client.get(f"/patients/{PATIENT}/timeline", headers=clinic.headers("scheduler"))
    assert sched.status_code == 403
    assert clinic.audit(actor="sched-1")[0]["outcome"] == "denied"
    admin = clinic.client.get(f"/patients/{PATIENT}/timeline", headers=clinic.headers("admin"))
    assert admin.status_code == 403 and "sections" not in admin.get_data(as_text=True)
    assert clinic.audit(actor="admin-1", outcome="denied")[0]["action"] == "read_timeline"
    opened = clinic.client.post(f"/patients/{PATIENT}/break-glass",
                                json={"reason": "subject access request, case 42"},
                                headers=clinic.headers("admin"))
    assert opened.status_code == 201
    admin = clinic.client.get(f"/patients/{PATIENT}/timeline", headers=clinic.headers("admin"))
    assert admin.status_code == 200 and admin.get_json()["access"] == "break_glass"
    assert clinic.client.get(f"/patients/{PATIENT}/timeline").status_code == 401


def test_every_read_and_write_is_in_the_audit_trail(clinic):
    clinic.care_team()
    made = clinic.write("pain_doc", PROGRESS).get_json()
    clinic.client.put(f"/notes/{made['id']}", json={"version": 1, "sections": {"plan": "rest"}},
                      headers=clinic.headers("pain_doc"))
    clinic.sign("pain_doc", made["id"])
    clinic.client.get(f"/notes/{made['id']}", headers=clinic.headers("psych"))
    clinic.client.get(f"/patients/{PATIENT}/timeline", headers=clinic.headers("acu"))
    trail = clinic.client.get("/audit", query_string={"patient_id": PATIENT},
                              headers=clinic.headers("admin")).get_json()
    assert [(a["actor"], a["action"], a["outcome"]) for a in reversed(trail)] == [
        ("dr-pain", "create", "allowed"), ("dr-pain", "edit", "allowed"),
        ("dr-pain", "sign", "allowed"), ("dr-psych", "read", "allowed"),
        ("acu-1", "read_timeline", "allowed")]
    assert all(a["at"] and a["correlation_id"] for a in trail)


def test_the_care_team_is_built_from_events_and_closed_at_discharge(clinic):
    h = clinic.headers("psych")
    assert clinic.client.get(f"/patients/{PATIENT}/timeline", headers=h).status_code == 403
    clinic.accept_referral()
    clinic.book("prov-psych", "psychology")
    clinic.book("prov-psych", "psychology")          # a second visit: still one membership
    assert clinic.client.get(f"/patients/{PATIENT}/timeline", headers=h).status_code == 200
    team = clinic.client.get(f"/patients/{PATIENT}/care-team", headers=h).get_json()
    assert [(m["member_id"], m["source"], m["active"]) for m in team] == [
        ("dr-pain", "referral.accepted", True), ("prov-psych", "appointment.booked", True)]
    clinic.discharge()
    assert clinic.client.get(f"/patients/{PATIENT}/timeline", headers=h).status_code == 403
    # a booking of the discharged referral that arrives late adds no one
    clinic.book("prov-acu", "acupuncture")
    assert clinic.client.get(f"/patients/{PATIENT}/timeline",
                             headers=clinic.headers("acu")).status_code == 403
    assert clinic.client.get(f"/patients/{PATIENT}/care-team",
                             headers=clinic.headers("admin")).status_code == 403
    assert clinic.client.post(f"/patients/{PATIENT}/break-glass",
                              json={"reason": "checking a complaint about access"},
                              headers=clinic.headers("admin")).status_code == 201
    team = clinic.client.get(f"/patients/{PATIENT}/care-team",
                             headers=clinic.headers("admin")).get_json()
    assert all(not m["active"] for m in team) and len(team) == 2


def test_break_glass_lets_a_clinician_read_with_a_reason_audited_and_reported(clinic):
    clinic.care_team()
    note = clinic.signed_note("pain_doc", PROGRESS)
    h = clinic.headers("outsider")
    assert clinic.client.get(f"/notes/{note['id']}", headers=h).status_code == 403
    no_reason = clinic.client.post(f"/patients/{PATIENT}/break-glass", json={"reason": "x"},
                                   headers=h)
    assert no_reason.status_code == 422 and "reason" in no_reason.get_json()["errors"]
    reason = "Patient collapsed in the gym; need current medication list"
    opened = clinic.client.post(f"/patients/{PATIENT}/break-glass", json={"reason": reason},
                                headers=h)
    assert opened.status_code == 201, opened.get_json()
    grant = opened.get_json()["id"]
    read = clinic.client.get(f"/notes/{note['id']}", headers=h)
    assert read.status_code == 200 and read.get_json()["access"] == "break_glass"
    timeline = clinic.client.get(f"/patients/{PATIENT}/timeline", headers=h)
    assert timeline.status_code == 200 and timeline.get_json()["access"] == "break_glass"
    assert clinic.write("outsider", PROGRESS).status_code == 403, "break-glass is for reading"
    assert clinic.client.get("/patients/pat-other/timeline", headers=h).status_code == 403

    audit = clinic.audit(actor="dr-out", outcome="break_glass")
    assert audit[0]["reason"] == reason and audit[0]["resource_id"] == grant
    reads = [a for a in clinic.audit(actor="dr-out", outcome="allowed")]
    assert {a["action"] for a in reads} == {"read", "read_timeline"}
    assert all(a["reason"] == f"break-glass {grant}" for a in reads)
    report = clinic.client.get("/break-glass", headers=clinic.headers("admin")).get_json()
    assert [(r["id"], r["actor_subject"], r["reason"]) for r in report] == [
        (grant, "dr-out", reason)]
    assert clinic.client.get("/break-glass", headers=h).status_code == 403
    [event] = [e for e in clinic.events() if e["type"] == "patient.break_glass"]
    assert event["payload"]["access_id"] == grant and event["payload"]["actor_id"] == "prov-out"
    assert reason not in str(event), "the free-text reason stays in the service"
    sched = clinic.client.post(f"/patients/{PATIENT}/break-glass", json={"reason": reason},
                               headers=clinic.headers("scheduler"))
    assert sched.status_code == 403
