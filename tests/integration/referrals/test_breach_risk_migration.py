"""The breach-risk migration on a database with referrals in it (SQLite and PostgreSQL):
the referrals and their history survive, carry no risk, and can be warned about after."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from alembic import command
from sqlalchemy import insert

from services.referrals import use_cases
from services.referrals.app import create_app
from services.referrals.db import HistoryRow, ReferralRow
from services.referrals.wiring import build_runtime
from shared import migrations
from shared.migrations import _config
from tests.support.clinic import bearer

BEFORE = "898ac3fb92be"  # the initial schema


def _old_referral(now: datetime) -> dict[str, Any]:
    return dict(
        id="ref-old-1", status="accepted", received_at=now - timedelta(days=26),
        updated_at=now, created_by="sam", idempotency_key=None, request_fingerprint=None,
        patient_id="pat-old", patient_name="Olive Old", patient_date_of_birth=date(1950, 1, 1),
        patient_email="olive@example.org", patient_phone=None, preferred_channel="email",
        language="en", referrer_name="Dr Patel", referrer_organisation="Elm",
        referrer_email=None, referrer_phone=None, referrer_key="dr patel|elm",
        condition="crps", condition_detail=None, pain_duration_value=3,
        pain_duration_unit="months", reason="Pain.", medications=[], attachments=[],
        urgency_requested="soon", held_from=None, priority="soon", target_days=28,
        due_by=(now - timedelta(days=26)).date() + timedelta(days=28), screening_tool=None,
        screening_score=None, pathway=[], triaged_by="dr-o", triaged_at=now,
        decided_by="dr-o", decided_at=now, closed_reason=None, first_visit_at=None)


def test_upgrade_keeps_the_referrals_and_lets_the_sweep_warn_about_them(settings_for) -> None:  # type: ignore[no-untyped-def]
    settings = settings_for("referrals", migrate_on_start=False)
    runtime = build_runtime(settings)
    now = datetime.now(UTC)
    with runtime.db.engine.begin() as conn:
        cfg = _config(runtime)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, BEFORE)
    old_columns = {c.name for c in ReferralRow.__table__.columns
                   if not c.name.startswith(("breach_", "near_due_"))
                   and c.name != "patient_identifiers"}
    row = _old_referral(now)
    assert set(row) == old_columns
    with runtime.db.engine.begin() as conn:
        conn.execute(insert(ReferralRow.__table__).values(row))
        conn.execute(insert(HistoryRow.__table__).values(
            referral_id="ref-old-1", action="accept", from_status="triaged",
            to_status="accepted", at=now, actor="dr-o", actor_role="specialist"))

    migrations.upgrade(runtime)

    client = create_app(runtime=runtime).test_client()
    reader = bearer(settings, "scheduler")
    shown = client.get("/referrals/ref-old-1", headers=reader).get_json()
    assert shown["status"] == "accepted" and shown["patient"]["name"] == "Olive Old"
    assert shown["at_breach_risk"] is False and shown["breach_risk"] is None
    assert [h["action"] for h in shown["history"]] == ["accept"]
    with runtime.db.transaction() as s:
        assert use_cases.sweep_near_due(runtime, s, now=now, warning_days=2) == ["ref-old-1"]
    listed = client.get("/referrals", query_string={"breach_risk": "true"},
                        headers=reader).get_json()
    assert [r["id"] for r in listed["items"]] == ["ref-old-1"]
    runtime.db.dispose()
