"""The audit trail: who read or wrote which patient's data, when, and why.

A refused attempt is recorded in a transaction of its own, so the refusal (which rolls
the request's own work back) still leaves its trace.
"""

from __future__ import annotations

from sqlalchemy import insert
from sqlalchemy.orm import Session

from shared import correlation
from shared.auth import Principal
from shared.messaging import MessagingTables, utcnow


class AuditTrail:
    def __init__(self, tables: MessagingTables) -> None:
        self.table = tables.audit

    def record(self, session: Session, principal: Principal, action: str, resource: str,
               *, resource_id: str | None = None, patient_id: str | None = None,
               outcome: str = "allowed", reason: str | None = None) -> None:
        # cut to the columns' widths: an id from a hostile URL must not turn a refused or
        # empty read into a 500 on PostgreSQL (SQLite ignores the widths)
        session.execute(insert(self.table).values(
            at=utcnow(), actor=principal.subject[:120], actor_role=principal.role[:40],
            action=action[:60], resource=resource[:60],
            resource_id=None if resource_id is None else str(resource_id)[:64],
            patient_id=None if patient_id is None else str(patient_id)[:64],
            outcome=outcome[:20], reason=(reason or None) and reason[:1000],
            correlation_id=(correlation.correlation_id() or "")[:64] or None))
