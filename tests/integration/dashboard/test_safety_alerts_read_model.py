"""Safety alerts in the dashboard's read model on each database backend: the migration on
a read model that already holds the clinic, notes' events applied through the inbox's
transaction, the figures on /api/clinic (counts and times, no clinical detail), and a
rebuild that empties them too."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from alembic import command
from sqlalchemy import inspect

from services.dashboard import api, domain
from services.dashboard import db as dash_db
from services.dashboard.app import create_app
from services.dashboard.db import ReadModelStore
from services.dashboard.handlers import apply_event, read_model_handler, read_model_subscription
from services.dashboard.wiring import build_runtime
from shared import migrations, topics
from shared.migrations import _config
from tests.support.clinic import bearer
from tests.unit.dashboard.stories import (
    NOW,
    a_clinic_week,
    alert_acknowledged,
    alert_escalated,
    alert_raised,
)

BEFORE = "f61148ecf8ed"  # breach risks, the revision before safety alerts
MIN = timedelta(minutes=1)


def test_the_upgrade_keeps_the_read_model_and_alerts_then_count(settings_for) -> None:  # type: ignore[no-untyped-def]
    settings = settings_for("dashboard", migrate_on_start=False)
    runtime = build_runtime(settings)
    with runtime.db.engine.begin() as conn:
        cfg = _config(runtime)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, BEFORE)
    store = ReadModelStore()
    clinic = [env for env in a_clinic_week() if env.type.startswith("referral.")]
    with runtime.db.engine.connect() as conn:
        assert "dash_safety_alerts" not in inspect(conn).get_table_names()
    # the clinic as the old read model held it (only the tables that revision knew)
    with runtime.db.transaction() as s:
        for env in clinic:
            for record in domain.changes(env.type, env.payload, env.occurred_at,
                                         lambda kind, key: store.lookup(s, kind, key)):
                assert not isinstance(record, domain.SafetyAlert)
                store.save(s, record)
    with runtime.db.engine.connect() as conn:  # what the old read model holds
        kept = conn.execute(dash_db.referrals.select()).all()
    assert kept
    pure = domain.Snapshot()
    for env in clinic:
        pure.apply(env.type, env.payload, env.occurred_at)

    migrations.upgrade(runtime)

    assert migrations.schema_problem(runtime) is None
    assert dash_db.safety_alerts.name in inspect(runtime.db.engine).get_table_names()
    after = api.clinic_figures(runtime, now=NOW)
    with runtime.db.engine.connect() as conn:
        assert conn.execute(dash_db.referrals.select()).all() == kept
    assert after["referrals"] == domain.clinic_figures(
        pure, now=NOW, tz=ZoneInfo(settings.clinic_timezone), weekly_hours=37.5)["referrals"]
    assert after["safety_alerts"]["open"] == 0

    events = [alert_raised("a1", at=NOW - 50 * MIN),
              alert_escalated("a1", 1, raised_at=NOW - 50 * MIN, at=NOW - 20 * MIN),
              alert_raised("a2", at=NOW - 10 * MIN, version=1),
              alert_raised("a3", at=NOW - 90 * MIN),
              alert_acknowledged("a3", at=NOW - 80 * MIN)]
    with runtime.db.transaction() as s:
        handler = read_model_handler(store, store.generation(s))
    for env in [*events, events[0]]:  # the last one a redelivery: the inbox drops it
        with runtime.db.transaction() as s:
            if runtime.inbox.first_time(s, "dashboard.readmodel-g1", env):
                handler(s, env)
    figures = api.clinic_figures(runtime, now=NOW)["safety_alerts"]
    assert figures == {"open": 2, "open_escalated": 1,
                       "oldest_open_raised_at": (NOW - 50 * MIN).isoformat(),
                       "oldest_open_minutes": 50, "acknowledged_not_closed": 1, "closed": 0}

    # the admin's page reads the same, and nothing clinical is in the answer
    client = create_app(runtime=runtime).test_client()
    answer = client.get("/api/clinic", headers=bearer(settings, "admin"))
    assert answer.status_code == 200
    assert answer.json["safety_alerts"]["open"] == 2
    assert answer.json["safety_alerts"]["oldest_open_raised_at"] == figures["oldest_open_raised_at"]
    text = answer.get_data(as_text=True)
    assert "p-a1" not in text and "n-a1" not in text and "psy1" not in text
    assert client.get("/api/clinic", headers=bearer(settings, "scheduler")).status_code == 403

    # a rebuild empties the alerts with the rest; the topics fill them again
    with runtime.db.transaction() as s:
        store.reset(s, runtime.tables.inbox)
    assert api.clinic_figures(runtime, now=NOW)["safety_alerts"]["open"] == 0
    with runtime.db.transaction() as s:
        for env in events:
            apply_event(store, s, env)
    assert api.clinic_figures(runtime, now=NOW)["safety_alerts"]["open"] == 2


def test_the_read_model_reads_the_notes_topic_for_the_alert_events() -> None:
    sub = read_model_subscription(ReadModelStore(), 1)
    assert topics.NOTES in sub.topics
    for event_type in ("patient.safety_alert", "patient.safety_alert_escalated",
                       "patient.safety_alert_acknowledged", "patient.safety_alert_closed"):
        assert event_type in sub.handlers
    assert "note.signed" not in sub.handlers  # passed by: no note content is read
