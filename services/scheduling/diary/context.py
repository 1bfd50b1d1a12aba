"""The diary's context: one service's runtime, the clinic's time zone and clock, and the
settings the use cases read (how long a waitlist offer stands, when check-in opens).

Every diary use case is a function taking this context first; it runs inside the
caller's transaction, which the shared unit of work owns (`Diary.run`, or
`Diary.units.run` for a use case that takes a `UnitOfWork`)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from services.scheduling.diary import domain
from shared.auth import Principal
from shared.runtime import Runtime
from shared.unit_of_work import UnitsOfWork

T = TypeVar("T")
SYSTEM = Principal(subject="scheduling", role="service", name="scheduling service")
Row = dict[str, Any]
# Exceptions ended longer ago than this leave provider.capacity_changed: a consumer's
# window (the dashboard's week) starts at most a week before the event is read.
CAPACITY_HISTORY = timedelta(days=14)
CAPACITY_MAX_EXCEPTIONS = 1000


def new_id() -> str:
    return str(uuid.uuid4())


class Diary:
    """The scheduling service's runtime, clinic time zone and clock, as the use cases
    need them."""

    def __init__(self, runtime: Runtime, *, clock: Callable[[], datetime] | None = None) -> None:
        self.runtime = runtime
        self.tz = ZoneInfo(runtime.settings.clinic_timezone)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.units = UnitsOfWork(runtime, clock=self.clock)
        self.offer_hours = float(runtime.settings.setting("SCHEDULING_OFFER_HOURS", "24"))
        self.check_in_opens = domain.check_in_window(float(runtime.settings.setting(
            "SCHEDULING_CHECK_IN_HOURS", str(domain.DEFAULT_CHECK_IN_HOURS))))

    def run(self, work: Callable[[Session, datetime], T]) -> T:
        """One transaction with a fixed `now`, retried on a deadlock or serialization
        failure: the shared unit of work (`shared.unit_of_work`) owns both."""
        return self.units.run(lambda uow: work(uow.session, uow.now))

    def emit(self, s: Session, event_type: str, payload: Row, key: str) -> None:
        self.runtime.emit(s, event_type, payload, key=key)

    def audit(self, s: Session, who: Principal, action: str, appt: Row | None = None, *,
              patient_id: str | None = None, resource: str = "appointment") -> None:
        """An allowed look at or change of an appointment (or another resource)."""
        self.runtime.audit.record(s, who, action, resource,
                                  resource_id=appt["id"] if appt else None,
                                  patient_id=patient_id or (appt or {}).get("patient_id"))

    def local(self, moment: datetime) -> str:
        return moment.astimezone(self.tz).strftime("%a %d %b %Y %H:%M")
