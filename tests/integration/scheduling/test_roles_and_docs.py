"""Who may do what: schedulers book and change, specialists read only their own diary,
admins (operations) register providers and rooms but read no patient's appointments;
every touch of a patient's appointments is audited. Providers are announced to the
notifier, and the API documents itself."""

from sqlalchemy import select

from tests.support.clinic import bearer

MON_10 = "2026-03-23T10:00:00+00:00"


def _settings(clinic):  # type: ignore[no-untyped-def]
    return clinic.app.extensions["paincare.settings"]


def test_a_specialist_reads_only_their_own_diary(clinic):
    mine = clinic.book("pain", MON_10, patient="p-1").json
    theirs = clinic.book("pt", MON_10, patient="p-2").json
    okafor = bearer(_settings(clinic), "specialist", "okafor", discipline="pain_medicine",
                    provider_id=clinic.ids["pain"])
    diary = clinic.get("/appointments", headers=okafor)
    assert [a["id"] for a in diary.json] == [mine["id"]]
    assert clinic.get(f"/appointments/{mine['id']}", headers=okafor).status_code == 200
    assert clinic.get(f"/appointments/{theirs['id']}", headers=okafor).status_code == 403
    runtime = clinic.app.extensions["paincare.runtime"]
    audit = runtime.tables.audit
    with runtime.db.transaction() as s:
        refused = s.execute(select(audit.c.actor, audit.c.patient_id, audit.c.outcome)
                            .where(audit.c.outcome == "denied")).all()
    assert [tuple(r) for r in refused] == [("okafor", "p-2", "denied")]
    assert clinic.get("/appointments", headers=okafor,
                      provider_id=clinic.ids["pt"]).status_code == 403
    no_claim = bearer(_settings(clinic), "specialist", discipline="pain_medicine")
    assert clinic.get("/appointments", headers=no_claim).status_code == 403
    assert clinic.book("pain", "2026-03-23T11:00:00+00:00").status_code == 201
    refused = clinic.post("/appointments", {"patient_id": "p-3", "provider_id":
                                            clinic.ids["pain"], "start": MON_10,
                                            "minutes": 30}, okafor)
    assert refused.status_code == 403
    assert clinic.get("/availability", headers=okafor,
                      **{"from": "2026-03-23", "to": "2026-03-23"}).status_code == 200


def test_only_admins_register_providers_and_rooms_and_tokens_are_required(clinic):
    body = {"name": "Dr New", "discipline": "acupuncture"}
    assert clinic.post("/providers", body, clinic.scheduler).status_code == 403
    assert clinic.post("/rooms", {"name": "R", "kind": "other"}, clinic.scheduler
                       ).status_code == 403
    assert clinic.client.get("/providers").status_code == 401
    bad = clinic.post("/providers", {"name": "", "discipline": "surgery"}, clinic.admin)
    assert bad.status_code == 422
    assert set(bad.json["errors"]) == {"name", "discipline"}
    dup = clinic.post("/rooms", {"name": "PT gym", "kind": "pt_gym"}, clinic.admin)
    assert dup.status_code == 409


def test_providers_are_announced_when_registered_and_changed(clinic):
    made = clinic.post("/providers", {"name": "Mei Chen", "discipline": "acupuncture",
                                      "email": "mei@clinic.test", "phone": "+44 20 1234"},
                       clinic.admin).json
    changed = clinic.client.patch(f"/providers/{made['id']}",
                                  json={"email": "mei.chen@clinic.test", "active": False},
                                  headers=clinic.admin)
    assert changed.status_code == 200, changed.json
    mei = [e["payload"] for e in clinic.events("provider.registered")
           if e["payload"]["provider_id"] == made["id"]]
    assert mei == [
        {"provider_id": made["id"], "name": "Mei Chen", "discipline": "acupuncture",
         "email": "mei@clinic.test", "phone": "+44 20 1234", "active": True},
        {"provider_id": made["id"], "name": "Mei Chen", "discipline": "acupuncture",
         "email": "mei.chen@clinic.test", "phone": "+44 20 1234", "active": False}]
    names = [p["name"] for p in clinic.get("/providers").json]
    assert "Mei Chen" not in names
    assert "Mei Chen" in [p["name"] for p in clinic.get("/providers", include_inactive=True).json]
    inactive = clinic.post("/appointments", {"patient_id": "p-1", "provider_id": made["id"],
                                             "start": MON_10, "minutes": 30})
    assert inactive.status_code == 409


def test_reading_and_writing_a_patients_appointments_leaves_an_audit_trail(clinic):
    appt = clinic.book("pain", MON_10, patient="p-42").json
    # admin is operations: it does not read a patient's appointments
    assert clinic.get(f"/appointments/{appt['id']}", headers=clinic.admin).status_code == 403
    clinic.get(f"/appointments/{appt['id']}")
    clinic.post(f"/appointments/{appt['id']}/cancel", {"reason": "unwell"})
    runtime = clinic.app.extensions["paincare.runtime"]
    audit = runtime.tables.audit
    with runtime.db.transaction() as s:
        rows = s.execute(select(audit.c.actor, audit.c.action, audit.c.patient_id)
                         .where(audit.c.patient_id == "p-42").order_by(audit.c.id)).all()
    assert [tuple(r) for r in rows] == [("scheduler-1", "book", "p-42"),
                                        ("scheduler-1", "read", "p-42"),
                                        ("scheduler-1", "cancel", "p-42")]


def test_the_api_documents_itself(clinic):
    spec = clinic.client.get("/openapi.json").json
    for path in ("/providers", "/providers/{provider_id}/template", "/rooms", "/exceptions",
                 "/availability", "/appointments", "/appointments/{appointment_id}/cancel",
                 "/appointments/{appointment_id}/reschedule",
                 "/appointments/{appointment_id}/check-in", "/series", "/waitlist",
                 "/waitlist/{wish_id}/answer"):
        assert path in spec["paths"], path
    assert "409" in spec["paths"]["/appointments"]["post"]["responses"]
    assert clinic.client.get("/docs").status_code == 200
