"""The unit of work: one transaction, its clock, its events and its audit, in one place.

Why: a write and the events it causes must commit together (the outbox), a refusal must
be audited even though the request's own work rolls back, and PostgreSQL may pick a
transaction as a deadlock or serialization victim when many clients race for the same
slot. Each service did these its own way; a use case now takes a command and a
`UnitOfWork` and does all its work through it:

    units = UnitsOfWork(runtime)                       # once, at wiring
    booked = units.run(lambda uow: book(uow, who, cmd))  # a route or a handler
    units.refused(who, "read", "appointment", reason)  # a refusal, in its own transaction

Outcomes in the audit trail are one vocabulary: `ALLOWED`, `DENIED`, `BREAK_GLASS`.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal, Protocol, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from shared.auth import Principal
from shared.events import Envelope

log = logging.getLogger(__name__)
T = TypeVar("T")

Outcome = Literal["allowed", "denied", "break_glass"]
ALLOWED: Final[Outcome] = "allowed"
DENIED: Final[Outcome] = "denied"
BREAK_GLASS: Final[Outcome] = "break_glass"

# deadlock detected, serialization failure: the transaction did nothing that stays, so
# running it again from the start is safe
RETRYABLE_SQLSTATES: Final = ("40P01", "40001")
ATTEMPTS: Final = 8


class _Database(Protocol):
    def transaction(self) -> Any: ...


class _Audit(Protocol):
    def record(self, session: Session, principal: Principal, action: str, resource: str,
               *, resource_id: str | None = None, patient_id: str | None = None,
               outcome: str = "allowed", reason: str | None = None) -> None: ...


class _Runtime(Protocol):
    """What the unit of work needs of a service's `shared.runtime.Runtime`."""

    @property
    def db(self) -> _Database: ...

    @property
    def audit(self) -> _Audit: ...

    def emit(self, session: Session, event_type: str, payload: dict[str, Any], *, key: str,
             version: int = 1, topic: str | None = None) -> Envelope: ...


def sqlstate(exc: DBAPIError) -> str | None:
    """The SQLSTATE of the driver's error (psycopg's `sqlstate`), None where the driver
    has none (SQLite)."""
    code = getattr(getattr(exc, "orig", None), "sqlstate", None)
    return code if isinstance(code, str) else None


@dataclass
class UnitOfWork:
    """One transaction in progress: its session, the moment it runs at (fixed for the
    whole of it, so every row it writes agrees), and what it emits and audits."""

    session: Session
    now: datetime
    runtime: _Runtime

    def emit(self, event_type: str, payload: dict[str, Any], *, key: str,
             version: int = 1, topic: str | None = None) -> Envelope:
        """Stage an event in this transaction's outbox: it is sent only if this commits."""
        return self.runtime.emit(self.session, event_type, payload, key=key,
                                 version=version, topic=topic)

    def audit(self, who: Principal, action: str, resource: str, *,
              resource_id: str | None = None, patient_id: str | None = None) -> None:
        """An allowed read or write of patient data, committed with the work itself."""
        self.runtime.audit.record(self.session, who, action, resource,
                                  resource_id=resource_id, patient_id=patient_id,
                                  outcome=ALLOWED)

    def break_glass(self, who: Principal, action: str, resource: str, reason: str, *,
                    resource_id: str | None = None, patient_id: str | None = None) -> None:
        """Access outside the care team, allowed in an emergency and recorded with why."""
        self.runtime.audit.record(self.session, who, action, resource,
                                  resource_id=resource_id, patient_id=patient_id,
                                  outcome=BREAK_GLASS, reason=reason.strip())


class UnitsOfWork:
    """Runs use cases, each in a unit of work of its own, for one service's runtime."""

    def __init__(self, runtime: _Runtime, *, clock: Callable[[], datetime] | None = None,
                 attempts: int = ATTEMPTS,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.runtime = runtime
        self.clock = clock or (lambda: datetime.now(UTC))
        self.attempts = attempts
        self.sleep = sleep

    def run(self, work: Callable[[UnitOfWork], T]) -> T:
        """One transaction with a fixed `now`; retried from the start when PostgreSQL
        picks it as a deadlock or serialization victim (two bookings waiting on each
        other's constraint checks). Fifty clients racing for one slot can make the same
        transaction a victim several times, so the waits grow and are jittered (four
        quick fixed retries ran out in CI and answered 503)."""
        for attempt in range(self.attempts):
            try:
                with self.runtime.db.transaction() as session:
                    return work(UnitOfWork(session, self.clock(), self.runtime))
            except DBAPIError as exc:
                code = sqlstate(exc)
                if code not in RETRYABLE_SQLSTATES or attempt == self.attempts - 1:
                    raise
                log.info("transaction retried", extra={"sqlstate": code,
                                                       "attempt": attempt + 1})
                self.sleep(random.uniform(0.005, min(0.5, 0.01 * 2 ** attempt)))
        raise AssertionError("unreachable")

    @contextmanager
    def session(self) -> Iterator[UnitOfWork]:
        """A unit of work without the retry, for a caller that must hold it open (a
        streamed answer) or that runs inside a handler's transaction already."""
        with self.runtime.db.transaction() as session:
            yield UnitOfWork(session, self.clock(), self.runtime)

    def refused(self, who: Principal, action: str, resource: str, reason: str, *,
                resource_id: str | None = None, patient_id: str | None = None) -> None:
        """A refusal, audited in a transaction of its own: the request's work rolls
        back, its trace must not."""
        with self.runtime.db.transaction() as session:
            self.runtime.audit.record(session, who, action, resource,
                                      resource_id=resource_id, patient_id=patient_id,
                                      outcome=DENIED, reason=reason)
