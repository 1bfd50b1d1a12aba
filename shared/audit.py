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
        session.execute(insert(self.table).values(
            at=utcnow(), actor=principal.subject, actor_role=principal.role, action=action,
            resource=resource, resource_id=resource_id, patient_id=patient_id,
            outcome=outcome, reason=(reason or None) and reason[:1000],
            correlation_id=correlation.correlation_id()))
