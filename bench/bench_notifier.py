"""Notifier throughput: a burst of 10,000 events through the real broker, planned by the
notifier's consumer and delivered by its delivery loop as email to a real local SMTP
server, inside the production Worker (consumer, delivery loop and outbox relay threads).

Baseline, same run, same burst: the raw consume rate (poll and parse every event, no
notifier work). Prints both rates and their ratio.

    .venv/bin/python bench/bench_notifier.py            # SQLite in a temp dir
    DATABASE_URL=postgresql+psycopg://... .venv/bin/python bench/bench_notifier.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiosmtpd.controller import Controller
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from sqlalchemy import func, select

from services.notifier import db, worker
from services.notifier.domain import Contact
from services.notifier.wiring import build_runtime
from shared import topics
from shared.config import Settings
from shared.events import new_event, parse_event
from shared.kafka import ensure_topics
from shared.worker import Worker

EVENTS = int(os.environ.get("BENCH_EVENTS", "10000"))
PATIENTS = 1000


class CountingMailbox:
    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.count += 1
        return "250 OK"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def burst(settings: Settings) -> None:
    start = datetime.now(UTC) + timedelta(days=10)
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all",
                             linger_ms=20, batch_size=256 * 1024)
    topic = settings.topic(topics.SCHEDULING)
    for i in range(EVENTS):
        patient = f"p{i % PATIENTS}"
        event = new_event("waitlist.offered", {
            "waitlist_id": f"wl-{i}", "patient_id": patient, "discipline": "psychology",
            "provider_id": "prov-1", "start": start.isoformat(),
            "end": (start + timedelta(minutes=50)).isoformat(),
            "offer_expires_at": (start - timedelta(days=1)).isoformat()}, producer="bench")
        producer.send(topic, key=patient.encode(), value=event.to_bytes())
    producer.flush(60)
    producer.close()


def baseline_consume(settings: Settings) -> float:
    """Seconds to poll and parse the whole burst, doing nothing with it."""
    name = settings.topic(topics.SCHEDULING)
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None,
                             enable_auto_commit=False, max_poll_records=500)
    parts = [TopicPartition(name, p) for p in consumer.partitions_for_topic(name)]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    seen, started = 0, time.perf_counter()
    while seen < EVENTS:
        for records in consumer.poll(timeout_ms=500).values():
            for record in records:
                parse_event(record.value)
                seen += 1
    elapsed = time.perf_counter() - started
    consumer.close()
    return elapsed


def main() -> None:
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    tmp = tempfile.mkdtemp(prefix="bench-notifier-")
    mailbox = CountingMailbox()
    smtp_port = free_port()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    url = os.environ.get("DATABASE_URL", f"sqlite:///{tmp}/notifier.db")
    settings = Settings.for_service("notifier", database_url=url, topic_prefix=prefix,
                                    extra={"SMTP_PORT": str(smtp_port),
                                           "TRIAGE_LEAD_EMAIL": "", "NOTIFIER_BATCH": "200"})
    ensure_topics(settings, topics.ALL_TOPICS)
    runtime = build_runtime(settings)
    runtime.create_schema()
    now = datetime.now(UTC)
    with runtime.db.transaction() as s:
        for i in range(PATIENTS):
            db.upsert_recipient(s, Contact(f"p{i}", "patient", f"Patient {i}",
                                           email=f"p{i}@example.org"), now)
    burst(settings)
    base = baseline_consume(settings)

    notifications = db.Notification
    sent_count = select(func.count()).select_from(notifications).where(
        notifications.status == "sent")
    planned_count = select(func.count()).select_from(notifications)
    w = Worker(runtime, [worker.subscriptions(runtime)[1]],
               extra_loops=[worker.deliverer(runtime).run])
    started = time.perf_counter()
    planned_at = None
    w.start()
    try:
        while True:
            with runtime.db.transaction() as s:
                planned = s.execute(planned_count).scalar_one()
                sent = s.execute(sent_count).scalar_one()
            if planned_at is None and planned >= EVENTS:
                planned_at = time.perf_counter() - started
            if sent >= EVENTS:
                break
            if time.perf_counter() - started > 600:
                raise SystemExit(f"timed out: {planned} planned, {sent} sent")
            time.sleep(0.1)
        elapsed = time.perf_counter() - started
    finally:
        w.stop()
        smtp.stop()
        runtime.db.dispose()
        from tests.support.infra import delete_topics

        delete_topics(settings.kafka_bootstrap, prefix)
    backend = runtime.db.engine.dialect.name
    print(f"notifier bench ({backend}, {EVENTS} waitlist.offered events, email to local SMTP)")
    print(f"  baseline raw consume (poll + parse):   {EVENTS / base:10.0f} events/s "
          f"({base:.2f} s)")
    print(f"  planned (consume + inbox + plan rows): {EVENTS / planned_at:10.0f} events/s "
          f"({planned_at:.2f} s)")
    print(f"  delivered end to end (SMTP + mark):    {EVENTS / elapsed:10.0f} notifications/s "
          f"({elapsed:.2f} s)")
    print(f"  SMTP server received: {mailbox.count} messages (expected {EVENTS})")
    print(f"  ratio delivered / baseline consume:    {base / elapsed:10.3f}")
    print(f"  ratio planned / baseline consume:      {base / planned_at:10.3f}")


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main()
