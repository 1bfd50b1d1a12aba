"""A notifier on the backend under test: its runtime, its consumer fed record by record
(the real consumer code, without a broker unless the test asks for one), its delivery
loop on a test clock, a real SMTP server and a real SMS gateway."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from services.notifier import worker
from services.notifier.db import Notification
from services.notifier.delivery import Deliverer
from services.notifier.wiring import build_runtime
from shared import topics
from shared.events import Envelope
from shared.kafka import EventConsumer
from shared.runtime import Runtime
from tests.integration.notifier.local_servers import SmsGateway, SmtpServer, TestClock


@dataclass
class Notifier:
    runtime: Runtime
    consumer: EventConsumer
    clock: TestClock
    smtp: SmtpServer
    sms: SmsGateway

    def receive(self, *events: Envelope, topic: str = topics.SCHEDULING) -> None:
        """Hand events to the consumer as the broker would (offset bookkeeping aside)."""
        for i, event in enumerate(events):
            self.consumer.handle_record(SimpleNamespace(
                topic=self.runtime.settings.topic(topic), partition=0, offset=i, key=b"k",
                value=event.to_bytes(), headers=[]))

    def deliverer(self) -> Deliverer:
        return worker.deliverer(self.runtime, self.clock)

    def rows(self, **where: object) -> list[Notification]:
        with self.runtime.db.transaction() as s:
            q = select(Notification).where(*[getattr(Notification, k) == v
                                             for k, v in where.items()])
            return list(s.scalars(q.order_by(Notification.due_at)))

    def outbox_types(self) -> list[str]:
        with self.runtime.db.transaction() as s:
            t = self.runtime.tables.outbox
            return [r[0] for r in s.execute(select(t.c.event_type).order_by(t.c.seq))]


def make_notifier(settings_for, smtp: SmtpServer, sms: SmsGateway, **overrides: object
                  ) -> Notifier:
    extra = {"SMTP_PORT": str(smtp.port), "SMS_GATEWAY_URL": sms.url,
             "NOTIFIER_RETRY_BACKOFF_SECONDS": "60", "NOTIFIER_MAX_ATTEMPTS": "3",
             "TRIAGE_LEAD_EMAIL": "lead@clinic.test", "SCHEDULERS_EMAIL": "sched@clinic.test"}
    extra.update(overrides.pop("extra", {}))  # type: ignore[arg-type]
    settings = settings_for("notifier", extra=extra, **overrides)
    runtime = build_runtime(settings)
    runtime.create_schema()
    clock = TestClock()
    subscription = worker.subscriptions(runtime, clock)[1]
    consumer = EventConsumer(settings, runtime.db, runtime.tables, subscription,
                             sleep=lambda _s: None)
    return Notifier(runtime, consumer, clock, smtp, sms)


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def sms() -> Iterator[SmsGateway]:
    gateway = SmsGateway().start()
    yield gateway
    gateway.stop()


@pytest.fixture
def notifier(settings_for, smtp, sms) -> Iterator[Notifier]:
    n = make_notifier(settings_for, smtp, sms)
    yield n
    n.consumer.close()
    n.runtime.db.dispose()
