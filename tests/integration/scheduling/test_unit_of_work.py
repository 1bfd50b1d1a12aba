"""The shared unit of work on a real database (SQLite and PostgreSQL): a write and the
event it emits commit together, or neither does; a refusal is audited as `denied` even
though the request's own work rolls back."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from services.scheduling.diary.db import providers
from services.scheduling.wiring import build_runtime
from shared.auth import Principal
from shared.unit_of_work import UnitOfWork, UnitsOfWork

NOW = datetime(2026, 3, 20, 8, tzinfo=UTC)
WHO = Principal(subject="s-1", role="scheduler")


@pytest.fixture
def units(settings_for):  # type: ignore[no-untyped-def]
    runtime = build_runtime(settings_for("scheduling"))
    runtime.create_schema()
    yield UnitsOfWork(runtime, clock=lambda: NOW)
    runtime.db.dispose()


def register(uow: UnitOfWork, provider_id: str) -> None:
    uow.session.execute(insert(providers).values(
        id=provider_id, name="Dr Ada Byrne", discipline="physical_therapy", visit_types=[],
        active=True, created_at=uow.now, updated_at=uow.now))
    uow.emit("provider.registered", {"provider_id": provider_id, "name": "Dr Ada Byrne",
                                     "discipline": "physical_therapy"}, key=provider_id)


def counts(units: UnitsOfWork) -> tuple[int, int]:
    outbox = units.runtime.tables.outbox  # type: ignore[attr-defined]
    with units.runtime.db.transaction() as s:
        return (s.execute(select(func.count()).select_from(providers)).scalar_one(),
                s.execute(select(func.count()).select_from(outbox)).scalar_one())


def test_the_write_and_its_event_commit_together(units: UnitsOfWork) -> None:
    units.run(lambda uow: register(uow, "prov-1"))
    assert counts(units) == (1, 1)


def test_a_failure_after_the_emit_takes_the_write_and_the_event_back(units) -> None:  # type: ignore[no-untyped-def]
    units.run(lambda uow: register(uow, "prov-1"))

    def twice(uow: UnitOfWork) -> None:
        register(uow, "prov-2")
        register(uow, "prov-1")  # the database refuses the duplicate id

    with pytest.raises(IntegrityError):
        units.run(twice)
    assert counts(units) == (1, 1)  # neither prov-2 nor either of its events stayed


def test_a_refusal_stays_in_the_audit_trail_though_the_work_rolls_back(units) -> None:  # type: ignore[no-untyped-def]
    audit = units.runtime.tables.audit

    def refused(uow: UnitOfWork) -> None:
        register(uow, "prov-3")
        raise PermissionError("not their diary")

    with pytest.raises(PermissionError) as exc:
        units.run(refused)
    # as a route does: the refusal's own transaction, once the request's has rolled back
    units.refused(WHO, "read", "appointment", str(exc.value), patient_id="p-1")
    with units.runtime.db.transaction() as s:
        rows = s.execute(select(audit.c.outcome, audit.c.reason, audit.c.patient_id)).all()
    assert [tuple(r) for r in rows] == [("denied", "not their diary", "p-1")]
    assert counts(units) == (0, 0)
