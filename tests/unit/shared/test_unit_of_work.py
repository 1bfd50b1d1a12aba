"""The unit of work's retry: a transaction PostgreSQL picks as a deadlock or serialization
victim runs again from the start, up to eight times with growing jittered waits, and any
other error is raised at once. A fake session raises psycopg's own errors, wrapped as
SQLAlchemy wraps them."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg.errors
import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from shared.auth import Principal
from shared.unit_of_work import ALLOWED, BREAK_GLASS, DENIED, UnitOfWork, UnitsOfWork

NOW = datetime(2026, 3, 20, 8, tzinfo=UTC)
WHO = Principal(subject="s-1", role="scheduler")


class FakeSession:
    """Fails its first `failures` statements with `error`, then answers."""

    def __init__(self, failures: list[int], error: Exception) -> None:
        self.failures, self.error = failures, error

    def execute(self, statement: str) -> str:
        if self.failures[0] > 0:
            self.failures[0] -= 1
            raise self.error
        return f"ran {statement}"


@dataclass
class FakeDb:
    failures: list[int]
    error: Exception
    opened: int = 0
    committed: int = 0
    rolled_back: int = 0

    @contextmanager
    def transaction(self) -> Any:
        self.opened += 1
        try:
            yield FakeSession(self.failures, self.error)
        except BaseException:
            self.rolled_back += 1
            raise
        self.committed += 1


@dataclass
class FakeAudit:
    rows: list[dict[str, Any]] = field(default_factory=list)

    def record(self, session: Any, principal: Principal, action: str, resource: str,
               **kw: Any) -> None:
        self.rows.append({"actor": principal.subject, "action": action,
                          "resource": resource, **kw})


@dataclass
class FakeRuntime:
    db: FakeDb
    audit: FakeAudit = field(default_factory=FakeAudit)
    emitted: list[tuple[str, str]] = field(default_factory=list)

    def emit(self, session: Any, event_type: str, payload: dict[str, Any], *, key: str,
             version: int = 1, topic: str | None = None) -> Any:
        self.emitted.append((event_type, key))


def wrapped(driver_error: Exception) -> OperationalError:
    return OperationalError("INSERT INTO appointments ...", {}, driver_error)


def units(failures: int, error: Exception) -> tuple[UnitsOfWork, FakeRuntime, list[float]]:
    runtime = FakeRuntime(FakeDb([failures], error))
    waits: list[float] = []
    return UnitsOfWork(runtime, clock=lambda: NOW, sleep=waits.append), runtime, waits


@pytest.mark.parametrize("driver_error", [
    psycopg.errors.SerializationFailure("could not serialize access"),
    psycopg.errors.DeadlockDetected("deadlock detected"),
])
def test_a_victim_is_run_again_until_it_commits(driver_error: Exception,
                                                caplog: pytest.LogCaptureFixture) -> None:
    uow, runtime, waits = units(7, wrapped(driver_error))
    with caplog.at_level(logging.INFO, logger="shared.unit_of_work"):
        answer = uow.run(lambda w: w.session.execute("book"))
    assert answer == "ran book"
    assert (runtime.db.opened, runtime.db.rolled_back, runtime.db.committed) == (8, 7, 1)
    assert len(waits) == 7
    # jittered, never under 5 ms, and the ceiling grows with each attempt up to half a second
    assert all(0.005 <= w <= min(0.5, 0.01 * 2 ** i) for i, w in enumerate(waits))
    retried = [r for r in caplog.records if r.getMessage() == "transaction retried"]
    assert [r.attempt for r in retried] == [1, 2, 3, 4, 5, 6, 7]  # type: ignore[attr-defined]
    assert {r.sqlstate for r in retried} == {driver_error.sqlstate}  # type: ignore[attr-defined]


def test_the_eighth_failure_is_raised() -> None:
    uow, runtime, waits = units(8, wrapped(psycopg.errors.SerializationFailure("again")))
    with pytest.raises(OperationalError):
        uow.run(lambda w: w.session.execute("book"))
    assert (runtime.db.opened, runtime.db.committed, len(waits)) == (8, 0, 7)


def test_any_other_database_error_is_raised_at_once() -> None:
    error = IntegrityError("INSERT", {}, psycopg.errors.UniqueViolation("duplicate"))
    uow, runtime, waits = units(1, error)
    with pytest.raises(IntegrityError):
        uow.run(lambda w: w.session.execute("book"))
    assert (runtime.db.opened, waits) == (1, [])


def test_sqlite_locked_has_no_sqlstate_and_is_not_retried() -> None:
    import sqlite3
    uow, runtime, _ = units(1, wrapped(sqlite3.OperationalError("database is locked")))
    with pytest.raises(OperationalError):
        uow.run(lambda w: w.session.execute("book"))
    assert runtime.db.opened == 1


def test_each_attempt_sees_one_fixed_now_and_emits_and_audits_in_its_transaction() -> None:
    uow, runtime, _ = units(0, RuntimeError())

    def work(w: UnitOfWork) -> datetime:
        w.emit("appointment.booked", {"appointment_id": "a-1"}, key="a-1")
        w.audit(WHO, "book", "appointment", resource_id="a-1", patient_id="p-1")
        w.break_glass(WHO, "read", "appointment", "  patient collapsed  ")
        return w.now

    assert uow.run(work) == NOW
    assert runtime.emitted == [("appointment.booked", "a-1")]
    assert [r["outcome"] for r in runtime.audit.rows] == [ALLOWED, BREAK_GLASS]
    assert runtime.audit.rows[1]["reason"] == "patient collapsed"


def test_a_refusal_is_audited_as_denied_in_a_transaction_of_its_own() -> None:
    uow, runtime, _ = units(0, RuntimeError())
    uow.refused(WHO, "read", "appointment", "not their diary", patient_id="p-1")
    assert runtime.db.committed == 1
    assert runtime.audit.rows == [{"actor": "s-1", "action": "read",
                                   "resource": "appointment", "resource_id": None,
                                   "patient_id": "p-1", "outcome": DENIED,
                                   "reason": "not their diary"}]
