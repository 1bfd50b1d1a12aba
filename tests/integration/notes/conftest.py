"""A notes service on a real database (SQLite and PostgreSQL), with a clinic's cast:
two care-team specialists, one specialist outside the team, a duty clinician (on the
rota only when a test puts them there), a scheduler and an admin."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest
from flask.testing import FlaskClient

from services.notes.app import create_app
from services.notes.handlers import HANDLERS
from services.notes.wiring import build_runtime
from shared.config import Settings
from shared.events import new_event
from shared.runtime import Runtime
from tests.support.clinic import bearer

PATIENT = "pat-100"
REFERRAL = "ref-100"


@dataclass
class NotesClinic:
    settings: Settings
    runtime: Runtime
    client: FlaskClient

    def headers(self, who: str) -> dict:
        s = self.settings
        return {
            "pain_doc": bearer(s, "specialist", "dr-pain", discipline="pain_medicine",
                               provider_id="prov-pain"),
            "psych": bearer(s, "specialist", "dr-psych", discipline="psychology",
                            provider_id="prov-psych"),
            "acu": bearer(s, "specialist", "acu-1", discipline="acupuncture",
                          provider_id="prov-acu"),
            "outsider": bearer(s, "specialist", "dr-out", discipline="physical_therapy",
                               provider_id="prov-out"),
            # on no one's care team; on the duty rota when a test puts them there
            "duty": bearer(s, "specialist", "dr-duty", discipline="pain_medicine",
                           provider_id="prov-duty"),
            "scheduler": bearer(s, "scheduler", "sched-1"),
            "admin": bearer(s, "admin", "admin-1"),
        }[who]

    def deliver(self, event_type: str, payload: dict) -> None:
        """An event arriving as the worker applies it: effect and inbox in one transaction."""
        env = new_event(event_type, payload, producer="tests")
        with self.runtime.db.transaction() as s:
            if self.runtime.inbox.first_time(s, "notes.care_team", env):
                HANDLERS[event_type](s, env)

    def accept_referral(self, accepted_by: str = "dr-pain", patient: str = PATIENT,
                        referral: str = REFERRAL) -> None:
        self.deliver("referral.accepted", {
            "referral_id": referral, "patient_id": patient, "priority": "soon",
            "target_days": 28, "due_by": date(2026, 12, 20).isoformat(),
            "pathway": [{"discipline": "pain_medicine", "visit_minutes": 45, "sessions": 1,
                         "interval_days": 0}], "accepted_by": accepted_by})

    def book(self, provider_id: str, discipline: str, patient: str = PATIENT,
             referral: str | None = REFERRAL) -> None:
        start = datetime(2026, 12, 1, 9, tzinfo=UTC)
        self.deliver("appointment.booked", {
            "appointment_id": f"apt-{provider_id}-{patient}", "patient_id": patient,
            "provider_id": provider_id, "discipline": discipline, "start": start.isoformat(),
            "end": (start + timedelta(minutes=45)).isoformat(), "referral_id": referral})

    def discharge(self, patient: str = PATIENT, referral: str = REFERRAL) -> None:
        self.deliver("referral.discharged", {"referral_id": referral, "patient_id": patient,
                                             "by": "dr-pain", "reason": "goals met"})

    def care_team(self) -> None:
        """The usual team: pain medicine accepted the referral; psychology and acupuncture
        were booked."""
        self.accept_referral()
        self.book("prov-psych", "psychology")
        self.book("prov-acu", "acupuncture")

    def write(self, who: str, body: dict, patient: str = PATIENT):
        return self.client.post(f"/patients/{patient}/notes", json=body,
                                headers=self.headers(who))

    def sign(self, who: str, note_id: str):
        return self.client.post(f"/notes/{note_id}/sign", headers=self.headers(who))

    def signed_note(self, who: str, body: dict, patient: str = PATIENT) -> dict:
        made = self.write(who, body, patient)
        assert made.status_code == 201, made.get_json()
        signed = self.sign(who, made.get_json()["id"])
        assert signed.status_code == 200, signed.get_json()
        return signed.get_json()

    def events(self) -> list[dict]:
        import json

        outbox = self.runtime.tables.outbox
        with self.runtime.db.transaction() as s:
            rows = s.execute(outbox.select().order_by(outbox.c.seq)).mappings().all()
        return [json.loads(r["body"]) for r in rows]

    def audit(self, **where: str) -> list[dict]:
        t = self.runtime.tables.audit
        stmt = t.select().order_by(t.c.id)
        for k, v in where.items():
            stmt = stmt.where(t.c[k] == v)
        with self.runtime.db.transaction() as s:
            return [dict(r) for r in s.execute(stmt).mappings()]


PROGRESS = {
    "kind": "progress",
    "encounter_at": "2026-06-01T09:00:00+00:00",
    "sections": {"subjective": "Burning pain in both feet, worse at night.",
                 "objective": "Reduced pinprick sensation to mid-shin bilaterally.",
                 "assessment": "Painful diabetic neuropathy, partial response.",
                 "plan": "Titrate duloxetine; review in four weeks."},
    "measures": {"nrs": {"current": 6, "average": 7, "worst": 9}, "dn4": 6,
                 "phq9": {"items": [1, 1, 2, 1, 0, 1, 1, 0, 0]}, "gad7": 7,
                 "bpi": {"severity": 6.5, "interference": 5.25}, "pseq": 28},
}


@pytest.fixture
def clinic(settings_for) -> Iterator[NotesClinic]:
    settings = settings_for("notes")
    runtime = build_runtime(settings)
    app = create_app(runtime=runtime)
    app.testing = True
    yield NotesClinic(settings, runtime, app.test_client())
    runtime.db.dispose()
