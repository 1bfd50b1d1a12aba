"""Least privilege on data, not only on routes: role x route x patient.

Two patients (Ann, Bob), two care teams (each built from the events that build it in
production: the triage lead's triage and acceptance, appointment.booked), a triage lead,
a scheduler, an admin, a privacy officer and two referring systems (one sends Carl's
referral). Every cell below is
allowed or refused as issue 17 says, and every refusal leaves its trace in the audit
trail of the service that refused.

`test_every_route_is_classified` keeps the matrix whole: each route of every service is
either asked here with data (DATA_ROUTES) or named in ROUTE_ONLY with why; a route or a
service added later fails until it is placed.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from services.notes.handlers import HANDLERS as NOTES_HANDLERS
from services.referrals.handlers import handlers as referral_handlers
from shared.config import Settings
from shared.events import new_event
from shared.launcher import available_services
from shared.runtime import Runtime
from shared.web import PUBLIC_PATHS
from tests.integration.notes.conftest import PROGRESS
from tests.integration.referrals.conftest import referral_body
from tests.integration.security.test_route_matrix import PASS_THROUGH, routes
from tests.proof.report import record
from tests.support.clinic import bearer

# --------------------------------------------------------------------------- people

PEOPLE: dict[str, dict[str, Any]] = {
    "scheduler": {"role": "scheduler", "subject": "sched-1"},
    "triage_lead": {"role": "specialist", "subject": "tl-1", "discipline": "pain_medicine",
                    "provider_id": "prov-tl", "also": ("triage_lead",)},
    "ann_pain": {"role": "specialist", "subject": "dr-a", "discipline": "pain_medicine",
                 "provider_id": "prov-a-pain"},
    "ann_physio": {"role": "specialist", "subject": "pt-a", "discipline": "physical_therapy",
                   "provider_id": "prov-a-pt"},
    "bob_pain": {"role": "specialist", "subject": "dr-b", "discipline": "pain_medicine",
                 "provider_id": "prov-b-pain"},
    "bob_psych": {"role": "specialist", "subject": "psy-b", "discipline": "psychology",
                  "provider_id": "prov-b-psych"},
    "admin": {"role": "admin", "subject": "admin-1"},
    "privacy_officer": {"role": "privacy_officer", "subject": "po-1"},
    "referrer_x": {"role": "referrer", "subject": "ref-sys-x"},
    "referrer_y": {"role": "referrer", "subject": "ref-sys-y"},
}
TEAMS = {"ann": [("prov-a-pain", "pain_medicine"), ("prov-a-pt", "physical_therapy")],
         "bob": [("prov-b-pain", "pain_medicine"), ("prov-b-psych", "psychology")]}
ANN_TEAM = {"triage_lead", "ann_pain", "ann_physio"}
BOB_TEAM = {"triage_lead", "bob_pain", "bob_psych"}
NOBODY_ELSE = {"admin", "privacy_officer", "referrer_x", "referrer_y"}


def headers(settings: Settings, who: str) -> dict[str, str]:
    p = dict(PEOPLE[who])
    role, subject, also = p.pop("role"), p.pop("subject"), p.pop("also", ())
    return bearer(settings, role, subject, also=also, **p)


def expect(allowed: set[str], hidden: set[str], ok: int = 200) -> dict[str, int]:
    """The expected status for everyone: allowed → ok; hidden (a clinician of another
    care team) → 404, existence not told; anyone else → 403."""
    return {who: ok if who in allowed else 404 if who in hidden else 403 for who in PEOPLE}


# ------------------------------------------------------------------------ the clinic

@dataclass
class Service:
    client: FlaskClient
    runtime: Runtime
    settings: Settings

    def refusals(self, subject: str) -> int:
        audit = self.runtime.tables.audit
        with self.runtime.db.transaction() as s:
            return s.execute(select(func.count()).select_from(audit).where(
                audit.c.actor == subject, audit.c.outcome != "allowed")).scalar_one()


def _service(name: str, settings: Settings) -> Service:
    wiring = importlib.import_module(f"services.{name}.wiring")
    app_module = importlib.import_module(f"services.{name}.app")
    runtime = wiring.build_runtime(settings)
    app = app_module.create_app(runtime=runtime)
    return Service(app.test_client(), runtime, settings)


@dataclass
class Clinic:
    referrals: Service
    notes: Service
    ids: dict[str, str]


def _deliver_notes(notes: Service, event_type: str, payload: dict[str, Any]) -> None:
    env = new_event(event_type, payload, producer="tests")
    with notes.runtime.db.transaction() as s:
        if notes.runtime.inbox.first_time(s, "notes.care_team", env):
            NOTES_HANDLERS[event_type](s, env)


def _deliver_referrals(referrals: Service, event_type: str, payload: dict[str, Any]) -> None:
    env = new_event(event_type, payload, producer="scheduling")
    with referrals.runtime.db.transaction() as s:
        referral_handlers(referrals.runtime)[event_type](s, env)


@pytest.fixture
def clinic(settings_for: Any, new_database_url: Any) -> Iterator[Clinic]:
    referrals = _service("referrals", settings_for("referrals"))
    notes = _service("notes", settings_for("notes",
                                           database_url=new_database_url("notes")))
    h = lambda who: headers(referrals.settings, who)  # noqa: E731
    ids: dict[str, str] = {}
    start = datetime(2026, 12, 1, 9, tzinfo=UTC)
    for patient, name in (("ann", "Ann Whitfield"), ("bob", "Bob Marsh")):
        body = referral_body(patient={"id": f"pat-{patient}", "name": name,
                                      "date_of_birth": "1960-01-01",
                                      "contact": {"email": f"{patient}@example.org"},
                                      "preferred_channel": "email"})
        made = referrals.client.post("/referrals", json=body, headers=h("scheduler"))
        assert made.status_code == 201, made.get_json()
        rid = ids[f"{patient}_referral"] = made.get_json()["id"]
        triaged = referrals.client.post(f"/referrals/{rid}/triage", headers=h("triage_lead"),
                                        json={"priority": "soon", "pathway": [
                                            {"discipline": "pain_medicine",
                                             "visit_minutes": 45, "sessions": 1,
                                             "interval_days": 0}]})
        assert triaged.status_code == 200, triaged.get_json()
        assert referrals.client.post(f"/referrals/{rid}/accept", json={},
                                     headers=h("triage_lead")).status_code == 200
        _deliver_notes(notes, "referral.accepted", {
            "referral_id": rid, "patient_id": f"pat-{patient}", "priority": "soon",
            "target_days": 28, "due_by": "2026-12-20", "accepted_by": "tl-1",
            "pathway": [{"discipline": "pain_medicine", "visit_minutes": 45, "sessions": 1,
                         "interval_days": 0}]})
        for provider, discipline in TEAMS[patient]:
            booked = {"appointment_id": f"apt-{provider}", "patient_id": f"pat-{patient}",
                      "provider_id": provider, "discipline": discipline,
                      "start": start.isoformat(),
                      "end": (start + timedelta(minutes=45)).isoformat(), "referral_id": rid}
            _deliver_notes(notes, "appointment.booked", booked)
            _deliver_referrals(referrals, "appointment.booked", booked)
        author = f"{patient}_pain"
        note = notes.client.post(f"/patients/pat-{patient}/notes", json=PROGRESS,
                                 headers=h(author))
        assert note.status_code == 201, note.get_json()
        nid = ids[f"{patient}_note"] = note.get_json()["id"]
        assert notes.client.post(f"/notes/{nid}/sign", headers=h(author)).status_code == 200
    # a referring system sends Carl's referral itself: it waits for triage
    sent = referrals.client.post("/referrals", headers=h("referrer_x"), json=referral_body(
        patient={"id": "pat-carl", "name": "Carl Dunn", "date_of_birth": "1955-05-05",
                 "contact": {"email": "carl@example.org"}, "preferred_channel": "email"}))
    assert sent.status_code == 201, sent.get_json()
    assert set(sent.get_json()) == {"id", "status", "received_at", "updated_at", "withheld"}
    ids["carl_referral"] = sent.get_json()["id"]
    yield Clinic(referrals, notes, ids)
    referrals.runtime.db.dispose()
    notes.runtime.db.dispose()


# ----------------------------------------------------------------------------- cells

def _cells(ids: dict[str, str]) -> list[tuple[str, str, str, dict | None, dict[str, int]]]:
    """(service, method, path, body, expected status per person)."""
    ra, rb, na, nb = (ids["ann_referral"], ids["bob_referral"], ids["ann_note"],
                      ids["bob_note"])
    rc = ids["carl_referral"]
    referrers = {"referrer_x", "referrer_y"}
    ann_clinicians = ANN_TEAM | {"bob_pain", "bob_psych"}
    bob_clinicians = BOB_TEAM | {"ann_pain", "ann_physio"}
    return [
        # a referral's existence is health data: another care team's clinician and a
        # referring system that did not send it get 404
        ("referrals", "GET", f"/referrals/{ra}", None,
         expect(ANN_TEAM | {"scheduler"}, ann_clinicians - ANN_TEAM | referrers)),
        ("referrals", "GET", f"/referrals/{rb}", None,
         expect(BOB_TEAM | {"scheduler"}, bob_clinicians - BOB_TEAM | referrers)),
        ("referrals", "GET", f"/referrals/{rc}", None,
         expect({"scheduler", "triage_lead", "referrer_x"},
                {"ann_pain", "ann_physio", "bob_pain", "bob_psych", "referrer_y"})),
        # decisions: the triage lead and the patient's pain-medicine lead; a team member
        # of another discipline is refused (403), another team's clinician told nothing
        ("referrals", "POST", f"/referrals/{ra}/hold", {"reason": "patient abroad"},
         expect({"triage_lead", "ann_pain"}, ann_clinicians - ANN_TEAM)),
        ("referrals", "POST", f"/referrals/{rb}/hold", {"reason": "patient abroad"},
         expect({"triage_lead", "bob_pain"}, bob_clinicians - BOB_TEAM)),
        ("notes", "GET", f"/notes/{na}", None, expect(ANN_TEAM, set())),
        ("notes", "GET", f"/notes/{nb}", None, expect(BOB_TEAM, set())),
        ("notes", "GET", "/patients/pat-ann/timeline", None, expect(ANN_TEAM, set())),
        ("notes", "GET", "/patients/pat-bob/timeline", None, expect(BOB_TEAM, set())),
        ("notes", "GET", "/patients/pat-ann/care-team", None, expect(ANN_TEAM, set())),
        ("notes", "GET", f"/notes/{na}/versions", None, expect(ANN_TEAM, set())),
    ]


DATA_ROUTES = {
    ("referrals", "GET", "/referrals/<referral_id>"),
    ("referrals", "POST", "/referrals/<referral_id>/hold"),
    ("referrals", "GET", "/referrals"),
    ("referrals", "GET", "/referrals/queue"),
    ("notes", "GET", "/notes/<note_id>"),
    ("notes", "GET", "/notes/<note_id>/versions"),
    ("notes", "GET", "/patients/<patient_id>/timeline"),
    ("notes", "GET", "/patients/<patient_id>/care-team"),
}
_DECISION = "same rule as hold (domain.require_decision), proven in the referrals tests"
_NOTE_WRITE = "care team writes (domain.require_writer); tests/integration/notes"
_ALERTS = "safety alerts: care team and duty clinician; tests/integration/notes/safety"
_CONFIG = "clinic configuration, no patient data: role matrix only"
_SCHEDULING = ("scheduling: schedulers and services; a specialist sees only their own "
               "diary (test_roles_and_docs); not yet in the data matrix")
_NOTIFIER = "notifier: schedulers/services (admin: delivery log); not yet in the data matrix"
_OPS = "operations (admin): no patient data"
ROUTE_ONLY: dict[tuple[str, str, str], str] = {
    ("referrals", "POST", "/referrals"):
        "schedulers and referring systems record referrals (the fixture: referrer_x)",
    **{("referrals", "POST", f"/referrals/<referral_id>/{a}"): _DECISION
       for a in ("triage", "accept", "reject", "cancel", "resume", "discharge")},
    **{("referrals", m, r): "the patient registry: schedulers only (demographics, no "
       "clinical text); tests/integration/referrals/test_patients.py"
       for m, r in (("GET", "/patients/<patient_id>"),
                    ("PATCH", "/patients/<patient_id>/contacts"),
                    ("POST", "/patients/<patient_id>/unlink"),
                    ("GET", "/patients/possible-same"),
                    ("POST", "/patients/possible-same/<task_id>/link"),
                    ("POST", "/patients/possible-same/<task_id>/keep-apart"))},
    ("referrals", "GET", "/priority-targets"): _CONFIG,
    ("referrals", "PUT", "/priority-targets"): _CONFIG,
    ("notes", "GET", "/measures"): _CONFIG,
    ("notes", "POST", "/patients/<patient_id>/notes"): _NOTE_WRITE,
    ("notes", "PUT", "/notes/<note_id>"): _NOTE_WRITE,
    ("notes", "POST", "/notes/<note_id>/sign"): _NOTE_WRITE,
    ("notes", "POST", "/notes/<note_id>/addenda"): _NOTE_WRITE,
    ("notes", "POST", "/notes/<note_id>/entered-in-error"): _NOTE_WRITE,
    ("notes", "POST", "/notes/<note_id>/share"):
        "sensitive notes: tests/integration/notes/test_sensitive_notes.py",
    ("notes", "POST", "/patients/<patient_id>/break-glass"):
        "break-glass: tests/integration/notes/test_access.py",
    ("notes", "POST", "/notes/<note_id>/safety-flag"): _ALERTS,
    ("notes", "GET", "/safety-alerts"): _ALERTS,
    ("notes", "GET", "/safety-alerts/mine"): _ALERTS,
    ("notes", "GET", "/safety-alerts/<alert_id>"): _ALERTS,
    ("notes", "POST", "/safety-alerts/<alert_id>/acknowledge"): _ALERTS,
    ("notes", "POST", "/safety-alerts/<alert_id>/close"): _ALERTS,
    ("notes", "GET", "/duty-rota"): _OPS,
    ("notes", "GET", "/duty-rota/today"): _OPS,
    ("notes", "PUT", "/duty-rota/<date>"): _OPS,
    ("notes", "DELETE", "/duty-rota/<date>"): _OPS,
    ("notes", "GET", "/audit"): "audit trail: admin and privacy officer; role matrix",
    ("notes", "GET", "/break-glass"): "break-glass report: admin, privacy officer",
    ("dashboard", "GET", "/api/platform"): _OPS,
    ("dashboard", "GET", "/api/clinic"): "counts, no patient: admin",
    ("dashboard", "GET", "/api/read-model"): _OPS,
    ("dashboard", "POST", "/api/read-model/rebuild"): _OPS,
    ("dashboard", "POST", "/api/dead-letters/<service>/replay"): _OPS,
}


_FHIR = ("the FHIR gateway: route x role in test_route_matrix; role x resource x patient "
         "(two referring systems, two patients, two care teams, refusals audited) in "
         "tests/integration/fhir/test_access.py, its own read model being built from events")


def _route_only(service: str, method: str, rule: str) -> str | None:
    if (service, method, rule) in ROUTE_ONLY:
        return ROUTE_ONLY[(service, method, rule)]
    if service == "scheduling":
        return _SCHEDULING
    if service == "notifier":
        return _NOTIFIER
    if service == "fhir":
        return _FHIR
    if (service, rule) in PASS_THROUGH:
        return PASS_THROUGH[(service, rule)]
    if rule.startswith("/ops/"):
        return _OPS
    return None


# ----------------------------------------------------------------------------- tests

def test_every_cell_of_role_route_and_patient(clinic: Clinic) -> None:
    services = {"referrals": clinic.referrals, "notes": clinic.notes}
    failures: list[str] = []
    tried = held = 0
    for service, method, path, body, expected in _cells(clinic.ids):
        svc = services[service]
        for who, status in expected.items():
            tried += 1
            subject = PEOPLE[who]["subject"]
            before = svc.refusals(subject)
            resp = svc.client.open(path, method=method, json=body,
                                   headers=headers(svc.settings, who))
            ok = resp.status_code == status
            if status >= 400:
                text = resp.get_data(as_text=True)
                ok = ok and resp.mimetype == "application/problem+json" \
                    and "Burning pain" not in text and "pregabalin" not in text
                ok = ok and svc.refusals(subject) > before  # every refusal audited
            if ok:
                held += 1
            else:
                failures.append(f"{who} {method} {path}: {resp.status_code}, expected "
                                f"{status}")
            if resp.status_code == 200 and path.endswith("/hold"):
                resumed = svc.client.post(path.replace("/hold", "/resume"), json={},
                                          headers=headers(svc.settings, "triage_lead"))
                assert resumed.status_code == 200, resumed.get_json()
    record("security", "role x route x patient: allowed or refused (and audited)",
           tried=tried, held=held, detail="2 patients, 2 care teams, 10 people")
    assert not failures, "\n".join(failures)


def test_a_referring_system_reads_only_the_status_of_its_own(clinic: Clinic) -> None:
    rc = clinic.ids["carl_referral"]
    own = clinic.referrals.client.get(
        f"/referrals/{rc}", headers=headers(clinic.referrals.settings, "referrer_x"))
    assert own.status_code == 200
    body = own.get_json()
    assert (body["id"], body["status"]) == (rc, "received")
    assert set(body) == {"id", "status", "received_at", "updated_at", "withheld"}
    assert "Carl Dunn" not in own.get_data(as_text=True)


def test_lists_show_each_reader_only_their_patients(clinic: Clinic) -> None:
    ra, rb = clinic.ids["ann_referral"], clinic.ids["bob_referral"]
    rc = clinic.ids["carl_referral"]
    expected = {"scheduler": {ra, rb, rc}, "triage_lead": {ra, rb, rc}, "ann_pain": {ra},
                "ann_physio": {ra}, "bob_pain": {rb}, "bob_psych": {rb}}
    for path in ("/referrals", "/referrals/queue"):
        for who, seen in expected.items():
            resp = clinic.referrals.client.get(
                path, headers=headers(clinic.referrals.settings, who))
            assert resp.status_code == 200, (who, path)
            items = resp.get_json()["items"]
            got = {(i.get("referral") or i)["id"] for i in items}
            if path.endswith("queue"):  # Ann's and Bob's accepted: Carl's waits
                waiting = {rc} if who in ("scheduler", "triage_lead") else set()
                assert got == waiting, (who, got)
            else:
                assert got == seen, (who, path, got)
        for who in NOBODY_ELSE:
            assert clinic.referrals.client.get(
                path, headers=headers(clinic.referrals.settings, who)).status_code == 403
    scheduler_view = clinic.referrals.client.get(
        "/referrals", headers=headers(clinic.referrals.settings, "scheduler")).get_data(
        as_text=True)
    assert "pregabalin" not in scheduler_view and "Ann Whitfield" in scheduler_view


@pytest.mark.parametrize("service", available_services())
def test_every_route_is_classified(service: str) -> None:
    """A route added later is asked with data here or named in ROUTE_ONLY with why."""
    module = importlib.import_module(f"services.{service}.app")
    app = module.create_app(Settings.for_service(service, database_url="sqlite://",
                                                 kafka_enabled=False))
    unplaced = [f"{r.method} {r.rule}" for r in routes(app)
                if not r.rule.startswith(PUBLIC_PATHS)
                and (service, r.method, r.rule) not in DATA_ROUTES
                and _route_only(service, r.method, r.rule) is None]
    assert not unplaced, f"{service}: routes neither in the data matrix nor in ROUTE_ONLY: " \
                         f"{unplaced}"
