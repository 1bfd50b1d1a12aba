"""The delivery loop: claims due notifications, sends them, marks them.

Guarantees, and the one window left:
- A row is claimed in a short transaction (status `sending`, a lease with an expiry);
  PostgreSQL's FOR UPDATE SKIP LOCKED and SQLite's BEGIN IMMEDIATE mean two workers never
  claim the same row. A worker that dies mid-batch leaves `sending` rows whose lease runs
  out; the next claim takes them again, so nothing is lost.
- A batch never outlives its lease: rows not reached by half the lease are handed back,
  so no other worker takes a row this one may still send.
- Each row is marked sent in its own transaction right after its send (with its
  notification.sent event, through the outbox). The only duplicate window is a crash
  between a channel accepting a message and that commit (milliseconds); the message
  carries the notification id (Message-ID, Idempotency-Key) so a receiver can drop it.
- A failing send is retried with exponential backoff; after the last attempt the row is
  `failed`, notification.failed goes out through the outbox, and the original event goes
  to notifier.dlq with the reason in its headers. A failed row whose dead letter did not
  go out yet (broker away, crash) is dead-lettered on a later pass: nothing is lost.
  A failed notification can be retried over the API.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Mapping
from datetime import timedelta

from prometheus_client import Counter
from sqlalchemy import select, update

from services.notifier import db
from services.notifier.channels import Channel, Outgoing
from services.notifier.db import Notification
from services.notifier.domain import retry_delay
from services.notifier.wiring import Clock, NotifierConfig
from shared import metrics, topics
from shared.kafka import dead_letter_headers, make_producer
from shared.runtime import Runtime

log = logging.getLogger(__name__)

DELIVERIES = Counter("paincare_notifications_total",
                     "Notification send attempts by channel and outcome",
                     ["channel", "outcome"])  # outcome: sent, retrying, failed


class Deliverer:
    def __init__(self, runtime: Runtime, config: NotifierConfig,
                 channels: Mapping[str, Channel], now: Clock) -> None:
        self.runtime = runtime
        self.config = config
        self.channels = dict(channels)
        self.now = now
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{id(self)}"
        self._producer = None

    # ----------------------------------------------------------------- one pass

    def run_once(self) -> int:
        """Claim one batch and deliver it; returns how many rows were claimed."""
        now = self.now()
        with self.runtime.db.transaction() as s:
            rows = db.claim_due(s, now, self.holder,
                                now + timedelta(seconds=self.config.lease_seconds),
                                self.config.batch)
            claimed_count = len(rows)
            rows = db.drop_opted_out(s, rows)
            work = [Outgoing(r.id, r.channel, r.address, r.subject, r.body, r.calendar)
                    for r in rows]
            meta = {r.id: (r.event_id, r.event_type, r.recipient_id, r.attempts) for r in rows}
            alerts = {r.id: r.alert_id for r in rows
                      if r.alert_id and r.template in db.ALERT_TEMPLATES}
        claimed = time.monotonic()
        try:
            for i, message in enumerate(work):
                if time.monotonic() - claimed > self.config.lease_seconds / 2:
                    self._release(work[i:])  # a slow channel: never outlive our lease
                    break
                alert_id = alerts.get(message.notification_id)
                if alert_id and self._settled(message.notification_id, alert_id):
                    continue
                self._deliver(message, meta[message.notification_id])
        finally:
            for channel in self.channels.values():
                channel.close()
        if self.runtime.settings.kafka_enabled:
            self.dead_letter_pending()
        return claimed_count

    def _deliver(self, message: Outgoing, meta: tuple[str, str, str, int]) -> None:
        event_id, event_type, recipient_id, attempts = meta
        try:
            self.channels[message.channel].send(message)
        except Exception as exc:
            self._failed(message, meta, f"{type(exc).__name__}: {exc}"[:1000])
            return
        sent_at = self.now()
        n = Notification.__table__
        with self.runtime.db.transaction() as s:
            done = s.execute(update(n).where(n.c.id == message.notification_id,
                                             n.c.lease_holder == self.holder,
                                             n.c.status == "sending")
                             .values(status="sent", sent_at=sent_at, attempts=attempts + 1,
                                     lease_holder=None, lease_until=None, last_error=None))
            if done.rowcount:
                DELIVERIES.labels(message.channel, "sent").inc()
                self.runtime.emit(s, "notification.sent", {
                    "notification_id": message.notification_id, "event_id": event_id,
                    "event_type": event_type, "recipient_id": recipient_id,
                    "channel": message.channel, "sent_at": sent_at.isoformat()},
                    key=recipient_id)

    def _settled(self, notification_id: str, alert_id: str) -> bool:
        """An alert acknowledged or closed after its message was claimed wakes no one:
        the acknowledgement only cancels rows still pending, and a batch (or a dead
        worker's expired lease) can hold a raise or escalation for seconds after it."""
        with self.runtime.db.transaction() as s:
            return db.cancel_if_settled(s, notification_id, alert_id, self.holder)

    def _release(self, rest: list[Outgoing]) -> None:
        """Hand back rows we will not reach before our lease ends, rather than let
        another worker take them while we might still send them."""
        n = Notification.__table__
        with self.runtime.db.transaction() as s:
            s.execute(update(n).where(n.c.id.in_([m.notification_id for m in rest]),
                                      n.c.lease_holder == self.holder,
                                      n.c.status == "sending")
                      .values(status="pending", lease_holder=None, lease_until=None))

    def _failed(self, message: Outgoing, meta: tuple[str, str, str, int], reason: str) -> None:
        event_id, event_type, recipient_id, attempts = meta
        attempts += 1
        now = self.now()
        n = Notification.__table__
        mine = (n.c.id == message.notification_id, n.c.lease_holder == self.holder,
                n.c.status == "sending")
        with self.runtime.db.transaction() as s:
            if attempts < self.config.max_attempts:
                s.execute(update(n).where(*mine).values(
                    status="pending", attempts=attempts, last_error=reason,
                    next_attempt_at=now + retry_delay(attempts,
                                                      self.config.retry_backoff_seconds),
                    lease_holder=None, lease_until=None))
                DELIVERIES.labels(message.channel, "retrying").inc()
                log.warning("notification send failed, will retry", extra={
                    "notification_id": message.notification_id, "attempt": attempts,
                    "channel": message.channel, "error": reason[:300]})
                return
            done = s.execute(update(n).where(*mine).values(
                status="failed", attempts=attempts, last_error=reason, failed_at=now,
                dead_lettered_at=None, lease_holder=None, lease_until=None))
            if done.rowcount:
                DELIVERIES.labels(message.channel, "failed").inc()
                self.runtime.emit(s, "notification.failed", {
                    "notification_id": message.notification_id, "event_id": event_id,
                    "event_type": event_type, "recipient_id": recipient_id,
                    "channel": message.channel, "reason": reason, "attempts": attempts},
                    key=recipient_id)
        log.error("notification failed after its last attempt", extra={
            "notification_id": message.notification_id, "channel": message.channel,
            "attempts": attempts})

    # ------------------------------------------------------------- dead letters

    @property
    def producer(self):  # type: ignore[no-untyped-def]
        if self._producer is None:
            self._producer = make_producer(self.runtime.settings)
        return self._producer

    def dead_letter_pending(self, limit: int = 100) -> int:
        """Send the source event of each failed, not yet dead-lettered notification to
        notifier.dlq (reason, attempts and notification in the headers), then mark it."""
        n, e = Notification, db.SourceEvent
        settings = self.runtime.settings
        with self.runtime.db.transaction() as s:
            rows = s.execute(select(n.id, n.last_error, n.attempts, n.channel, n.recipient_id,
                                    e.topic, e.message_key, e.body)
                             .join(e, e.event_id == n.event_id)
                             .where(n.status == "failed", n.dead_lettered_at.is_(None))
                             .limit(limit)).all()
        if not rows:
            return 0
        dlq = settings.topic(topics.dead_letter(settings.service))
        futures = []
        for r in rows:
            headers = dead_letter_headers(
                r.last_error or "failed", consumer="notifier.delivery",
                source_topic=settings.topic(r.topic), attempts=r.attempts,
                failed_at=self.now(), notification_id=r.id, channel=r.channel,
                recipient_id=r.recipient_id)
            futures.append(self.producer.send(dlq, key=r.message_key.encode(), value=r.body,
                                              headers=headers))
        self.producer.flush(timeout=30)
        for f in futures:
            f.get(timeout=30)
        metrics.DEAD_LETTERS.labels(settings.service).inc(len(rows))
        with self.runtime.db.transaction() as s:
            s.execute(update(Notification.__table__)
                      .where(Notification.__table__.c.id.in_([r.id for r in rows]))
                      .values(dead_lettered_at=self.now()))
        return len(rows)

    # --------------------------------------------------------------------- loop

    def run(self, stop: threading.Event) -> None:
        """The worker's extra loop: deliver while there is work, poll when there is none."""
        while not stop.is_set():
            try:
                if self.run_once():
                    continue
            except Exception as exc:  # database or broker away: the rows wait, try again
                log.warning("delivery pass failed, will retry", extra={"error": repr(exc)[:500]})
                self.close()
                stop.wait(1.0)
            stop.wait(self.config.poll_seconds)
        self.close()

    def close(self) -> None:
        if self._producer is not None:
            try:
                self._producer.close(timeout=5)
            except Exception:
                pass
            self._producer = None


def default_channels(config: NotifierConfig) -> dict[str, Channel]:
    from services.notifier.channels import InAppFeed, RestHook, SmsGateway, SmtpMailer

    return {"email": SmtpMailer(config.smtp_host, config.smtp_port, config.email_from,
                                config.smtp_timeout, starttls=config.smtp_starttls,
                                username=config.smtp_username, password=config.smtp_password,
                                ca_file=config.smtp_ca_file),
            "sms": SmsGateway(config.sms_gateway_url, config.sms_timeout),
            "in_app": InAppFeed(), "rest_hook": RestHook(config.rest_hook_timeout)}


def wait_idle(deliverer: Deliverer, timeout: float = 30.0) -> None:
    """Run passes until a pass finds nothing to do (tests and the benchmark)."""
    deadline = time.monotonic() + timeout
    while deliverer.run_once() and time.monotonic() < deadline:
        pass
