"""Ids from hostile URLs reach the audit trail; on PostgreSQL an over-long one must not
turn a refused or empty read into a 500 (found by the bad-input proof on /feed/<id>)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import MetaData, select

from shared.auth import Principal
from shared.runtime import Runtime


def test_an_over_long_id_is_audited_cut_to_its_column(settings_for) -> None:
    runtime = Runtime(settings_for("tests"), MetaData(), topic="tests.events",
                      migrations=Path("/nonexistent"))
    runtime.create_schema()
    try:
        with runtime.db.transaction() as s:
            runtime.audit.record(s, Principal("admin-1", "admin"), "read", "feed",
                                 resource_id="9" * 400, patient_id="A" * 2000,
                                 reason="r" * 5000)
        with runtime.db.transaction() as s:
            row = s.execute(select(runtime.tables.audit)).one()
        assert (row.resource_id, row.patient_id) == ("9" * 64, "A" * 64)
        assert len(row.reason) == 1000
    finally:
        runtime.db.dispose()
