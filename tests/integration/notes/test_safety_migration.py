"""The safety-alert migration on a database that already holds alerts (both backends):
the stored PHQ-9 alerts, which nobody was ever told of, come through as open alerts of
their item-9 severity, due for escalation at once; a note may then hold more alerts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import command

from services.notes import safety
from services.notes.app import create_app
from services.notes.db import CareTeamRepository, SafetyAlertRepository, notes
from services.notes.safety_alerts import escalate_overdue
from services.notes.wiring import build_runtime
from shared.migrations import _config, upgrade
from tests.support.clinic import bearer

BEFORE = "60475916ef56"   # the initial schema: one alert per note and measure
RAISED = datetime(2026, 11, 20, 10, tzinfo=UTC)

OLD_ALERTS = sa.table("safety_alerts", sa.column("id"), sa.column("note_id"),
                      sa.column("patient_id"), sa.column("measure"), sa.column("value"),
                      sa.column("raised_by"), sa.column("raised_at"))


def _to(runtime, revision: str, *, down: bool = False) -> None:
    with runtime.db.engine.begin() as conn:
        cfg = _config(runtime)
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, revision)


def _note(note_id: str, patient_id: str) -> dict:
    return dict(id=note_id, patient_id=patient_id, author_id="prov-psych",
                author_subject="dr-psych", discipline="psychology", kind="intake_assessment",
                status="signed", version=1, encounter_at=RAISED, created_at=RAISED,
                updated_at=RAISED, signed_at=RAISED, sections={"history": "x"},
                measures={"phq9": {"items": [0] * 8 + [2]}}, scores={"phq9_item9": 2},
                treatment={})


def test_stored_alerts_come_through_open_and_due(settings_for):
    settings = settings_for("notes", migrate_on_start=False)
    runtime = build_runtime(settings)
    _to(runtime, BEFORE)
    with runtime.db.transaction() as s:
        s.execute(sa.insert(notes).values(**_note("n-1", "pat-1")))
        s.execute(sa.insert(notes).values(**_note("n-2", "pat-2")))
        s.execute(sa.insert(OLD_ALERTS).values(
            id="a-1", note_id="n-1", patient_id="pat-1", measure="phq9_item9", value=2.0,
            raised_by="prov-psych", raised_at=RAISED))
        s.execute(sa.insert(OLD_ALERTS).values(
            id="a-2", note_id="n-2", patient_id="pat-2", measure="phq9_item9", value=3.0,
            raised_by="prov-psych", raised_at=RAISED + timedelta(minutes=5)))

    upgrade(runtime)

    with runtime.db.transaction() as s:
        repo = SafetyAlertRepository(s)
        first, second = repo.get("a-1"), repo.get("a-2")
    assert first is not None and second is not None
    assert (first.source, first.severity, first.status, first.escalations) == (
        "phq9_item9", 2, "open", 0)
    assert second.severity == 3 and first.recipients == () and first.escalated_to == ()
    assert first.next_escalation_at == RAISED, "never routed: due for escalation at once"

    now = datetime.now(UTC)
    assert escalate_overdue(runtime, now) == 2
    assert escalate_overdue(runtime, now) == 0

    # the note reads back with its alert, and may now take a second one (a flag)
    app = create_app(runtime=runtime)
    client = app.test_client()
    with runtime.db.transaction() as s:   # the care team, as the events would build it
        CareTeamRepository(s).join(patient_id="pat-1", member_id="prov-psych",
                                   discipline="psychology", source="appointment.booked",
                                   referral_id="ref-1", at=RAISED)
    h = bearer(settings, "specialist", "dr-psych", discipline="psychology",
               provider_id="prov-psych")
    read = client.get("/notes/n-1", headers=h).get_json()
    assert (read["safety_alert"], read["safety_alert_id"], read["safety_alert_status"]) == (
        True, "a-1", "open")
    flagged = client.post("/notes/n-1/safety-flag", json={"reason": "said he has a plan"},
                          headers=h)
    assert flagged.status_code == 201, flagged.get_json()
    acked = client.post("/safety-alerts/a-1/acknowledge", json={"action": "risk_assessment"},
                        headers=h)
    assert acked.status_code == 200 and acked.get_json()["escalations"] == 1

    # and back down (a release rolled back): the alerts keep their rows
    runtime.db.dispose()
    _to(runtime, BEFORE, down=True)
    with runtime.db.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, measure, value FROM safety_alerts ORDER BY id")
                            ).all()
    assert {(r[1], r[2]) for r in rows if r[0] in ("a-1", "a-2")} == {
        ("phq9_item9", 2), ("phq9_item9", 3)}
    assert [r[1] for r in rows if r[0] not in ("a-1", "a-2")] == [safety.CLINICIAN_FLAG]
    runtime.db.dispose()
