"""Kafka, one way for every service: topics, the outbox relay, the consumer loop with
retries and a dead-letter topic, and dead-letter replay.

kafka-python's producer is made lazily, after gunicorn forks; its consumer is not
thread-safe and lives only in the worker process, one per thread.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata
from sqlalchemy import Column, DateTime, MetaData, Row, String, Table, select, update
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from shared import correlation, metrics, topics
from shared.config import Settings
from shared.db import Database
from shared.errors import ClinicError
from shared.events import Envelope, InvalidEvent, parse_event
from shared.events.envelope import MAX_EVENT_BYTES
from shared.messaging import Inbox, MessagingTables, utcnow

log = logging.getLogger(__name__)

PARTITIONS = int(os.environ.get("KAFKA_PARTITIONS", "3"))


# Where an operator makes the topics (Strimzi's KafkaTopics on a cluster) services must
# not: a worker winning the race would make them with its own settings. There it is
# "false" and a worker waits for them; on one machine and in compose it is "true".
CREATE_TOPICS = os.environ.get("KAFKA_CREATE_TOPICS", "true").lower() in ("1", "true", "yes")
# the broker's default.replication.factor (and so its min.insync.replicas fits): KIP-464
BROKER_DEFAULT_REPLICATION = -1


def ensure_topics(settings: Settings, names: Iterable[str] = topics.ALL_TOPICS,
                  *, partitions: int = PARTITIONS, timeout: float | None = 30.0,
                  create: bool | None = None, stop: threading.Event | None = None,
                  log_every_seconds: float = 30.0) -> bool:
    """Make the missing topics (auto-creation is off) unless `create` is false, then wait
    until the broker serves them all: for `timeout` seconds (None: until `stop` is set).
    Made topics take the cluster's replication factor, never a number of ours. Returns
    False when `stop` was set first."""
    create = CREATE_TOPICS if create is None else create
    wanted = {settings.topic(n) for n in names}
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap,
                             **security_options(),
                             client_id=f"{settings.service}-admin", request_timeout_ms=15000)
    try:
        missing = wanted - set(admin.list_topics())
        if missing and create:
            try:
                admin.create_topics([NewTopic(n, partitions, BROKER_DEFAULT_REPLICATION)
                                     for n in sorted(missing)])
            except TopicAlreadyExistsError:
                pass
        deadline = None if timeout is None else time.monotonic() + timeout
        logged: float | None = None
        while missing := wanted - set(admin.list_topics()):
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"topics not ready: {sorted(missing)}")
            if logged is None or time.monotonic() - logged >= log_every_seconds:
                log.warning("waiting for topics", extra={"missing": sorted(missing)})
                logged = time.monotonic()
            if stop is None:
                time.sleep(0.1)
            elif stop.wait(0.2):
                return False
        return True
    finally:
        admin.close()


def security_options() -> dict[str, Any]:
    """How every client authenticates: PLAINTEXT on one machine and in compose; on a
    cluster TLS (the cluster CA's certificate at KAFKA_SSL_CAFILE) with SCRAM, as the
    service's own KafkaUser, whose ACLs let it write only its topics (deploy/k8s)."""
    protocol = os.environ.get("KAFKA_SECURITY_PROTOCOL", "") or "PLAINTEXT"
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL") and os.environ.get("KAFKA_SSL_CAFILE"):
        options["ssl_cafile"] = os.environ["KAFKA_SSL_CAFILE"]
    if protocol.startswith("SASL_"):
        options["sasl_mechanism"] = os.environ.get("KAFKA_SASL_MECHANISM", "") or "SCRAM-SHA-512"
        options["sasl_plain_username"] = os.environ.get("KAFKA_SASL_USERNAME", "")
        options["sasl_plain_password"] = os.environ.get("KAFKA_SASL_PASSWORD", "")
    return options


def kafka_reachable(settings: Settings, timeout: float = 1.0) -> bool:
    """A cheap readiness probe: can we open a TCP connection to a bootstrap server?"""
    for server in settings.kafka_bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
                return True
        except OSError:
            continue
    return False


def make_producer(settings: Settings) -> KafkaProducer:
    return KafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        **security_options(),
        client_id=f"{settings.service}-producer-{os.getpid()}",
        acks="all",
        enable_idempotence=True,
        retries=10,
        retry_backoff_ms=200,
        request_timeout_ms=10000,
        max_block_ms=10000,
        linger_ms=5,
        max_request_size=2 * MAX_EVENT_BYTES,
    )


# ---------------------------------------------------------------------------- relay

def add_relay_lease_table(metadata: MetaData) -> Table:
    return Table(
        "outbox_relay_lease", metadata,
        Column("name", String(40), primary_key=True),
        Column("holder", String(120), nullable=False),
        Column("expires_at", DateTime(timezone=True), nullable=False),
    )


class OutboxRelay:
    """Publishes committed outbox rows in order, then marks them published.

    At most one relay per service publishes at a time (a lease row in the database, so it
    holds across processes and hosts). A crash between send and mark publishes the row
    again on restart: consumers' inboxes make that harmless, so every event is applied
    exactly once.
    """

    LEASE_SECONDS = 15

    def __init__(self, settings: Settings, db: Database, tables: MessagingTables,
                 lease: Table) -> None:
        self.settings = settings
        self.db = db
        self.outbox = tables.outbox
        self.lease = lease
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{id(self)}"
        self._producer: KafkaProducer | None = None

    @property
    def producer(self) -> KafkaProducer:
        if self._producer is None:
            self._producer = make_producer(self.settings)
        return self._producer

    def _take_lease(self) -> bool:
        now = utcnow()
        until = now + timedelta(seconds=self.LEASE_SECONDS)
        with self.db.transaction() as s:
            row = s.execute(select(self.lease).where(self.lease.c.name == "relay")).first()
            if row is None:
                try:
                    with s.begin_nested():
                        s.execute(self.lease.insert().values(
                            name="relay", holder=self.holder, expires_at=until))
                    return True
                except IntegrityError:
                    return False
            expires = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(
                tzinfo=UTC)
            if row.holder != self.holder and expires > now:
                return False
            s.execute(update(self.lease).where(self.lease.c.name == "relay")
                      .values(holder=self.holder, expires_at=until))
            return True

    def pending(self) -> list[Row[Any]]:
        with self.db.transaction() as s:
            return list(s.execute(
                select(self.outbox.c.seq, self.outbox.c.event_id, self.outbox.c.event_type,
                       self.outbox.c.topic, self.outbox.c.message_key, self.outbox.c.body)
                .where(self.outbox.c.published_at.is_(None))
                .order_by(self.outbox.c.seq).limit(self.settings.outbox_batch)))

    def send(self, rows: list[Row[Any]]) -> None:
        """Send and wait for every acknowledgement (acks=all); raise if any failed."""
        futures = [
            self.producer.send(
                self.settings.topic(row.topic), key=row.message_key.encode(), value=row.body,
                headers=[("event_type", row.event_type.encode()),
                         ("event_id", row.event_id.encode())])
            for row in rows
        ]
        self.producer.flush(timeout=30)
        for fut in futures:
            fut.get(timeout=30)
        for row in rows:
            metrics.EVENTS_PRODUCED.labels(self.settings.service, row.event_type).inc()

    def mark(self, rows: list[Row[Any]]) -> None:
        with self.db.transaction() as s:
            s.execute(update(self.outbox)
                      .where(self.outbox.c.seq.in_([r.seq for r in rows]))
                      .values(published_at=utcnow()))

    def run_once(self) -> int:
        if not self._take_lease():
            return 0
        rows = self.pending()
        if rows:
            self.send(rows)
            self.mark(rows)
        return len(rows)

    def run(self, stop: threading.Event) -> None:
        backoff = self.settings.outbox_poll_seconds
        while not stop.is_set():
            try:
                sent = self.run_once()
                backoff = self.settings.outbox_poll_seconds
                if sent:
                    continue
            except Exception as exc:  # broker or database away: keep the rows, try again
                log.warning("outbox relay failed, will retry", extra={"error": repr(exc)})
                self.close_producer()
                backoff = min(backoff * 2 or 0.5, 5.0)
            stop.wait(backoff)
        self.close_producer()

    def close_producer(self) -> None:
        if self._producer is not None:
            try:
                self._producer.close(timeout=5)
            except Exception:  # closing a producer whose broker is gone
                pass
            self._producer = None


# ------------------------------------------------------------------------- consumer

Handler = Callable[[Session, Envelope], None]


@dataclass(frozen=True)
class Subscription:
    """What one consumer group of a service listens to and how it applies each event."""

    name: str
    topics: tuple[str, ...]
    handlers: dict[str, Handler]


class PermanentFailure(Exception):
    """A handler's way to say: retrying will not help, dead-letter this event now."""


# The database itself is away (connections refused or cut, locked past the busy timeout,
# pool exhausted): not the event's fault, so it is retried until the database is back and
# never dead-lettered (that would lose it from this service's inbox).
DATABASE_AWAY = (OperationalError, InterfaceError, PoolTimeout)


def _header_bytes(value: object) -> bytes:
    return str(value).encode()[:1000]


def dead_letter_headers(reason: str, *, consumer: str, source_topic: str, attempts: int,
                        failed_at: datetime, **more: object) -> list[tuple[str, bytes]]:
    """The headers every dead letter carries (the dashboard and replay read them), plus
    whatever the parking party knows besides (`source_partition=3` -> dlq.source.partition)."""
    fields = {"reason": reason, "consumer": consumer, "source.topic": source_topic,
              **{k.replace("source_", "source."): v for k, v in more.items()
                 if k.startswith("source_")},
              "attempts": attempts, "failed_at": failed_at.isoformat(),
              **{k: v for k, v in more.items() if not k.startswith("source_")}}
    return [(f"dlq.{k}", _header_bytes(v)) for k, v in fields.items()]


class EventConsumer:
    """Consumes a subscription: each event's effect and its inbox record commit together,
    offsets are committed after the effects; failures past their retries and invalid
    messages go to the service's dead-letter topic with the reason in the headers."""

    def __init__(self, settings: Settings, db: Database, tables: MessagingTables,
                 subscription: Subscription, *, sleep: Callable[[float], None] = time.sleep
                 ) -> None:
        self.settings = settings
        self.db = db
        self.inbox = Inbox(tables)
        self.subscription = subscription
        self.group = f"{settings.service}.{subscription.name}"
        self.dead_letter_topic = settings.topic(topics.dead_letter(settings.service))
        self._sleep = sleep
        self._consumer: KafkaConsumer | None = None
        self._producer: KafkaProducer | None = None

    @property
    def consumer(self) -> KafkaConsumer:
        if self._consumer is None:
            names = [self.settings.topic(t) for t in self.subscription.topics]
            consumer = KafkaConsumer(
                bootstrap_servers=self.settings.kafka_bootstrap,
                **security_options(),
                group_id=self.settings.topic(self.group),
                client_id=f"{self.group}-{os.getpid()}",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                max_poll_records=200,
                session_timeout_ms=10000,
                heartbeat_interval_ms=1000,
                max_poll_interval_ms=300000,
                metadata_max_age_ms=30000,
            )
            # Join the group only once the broker's metadata names every topic: a group
            # joined before would be assigned nothing until the next metadata refresh.
            deadline = time.monotonic() + 30
            while set(names) - consumer.topics() and time.monotonic() < deadline:
                time.sleep(0.1)
            consumer.subscribe(names)
            self._consumer = consumer
        return self._consumer

    @property
    def producer(self) -> KafkaProducer:
        if self._producer is None:
            self._producer = make_producer(self.settings)
        return self._producer

    def poll_once(self, timeout_ms: int = 500) -> int:
        batch = self.consumer.poll(timeout_ms=timeout_ms)
        handled = 0
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        try:
            for tp, records in batch.items():
                for record in records:
                    self.handle_record(record)
                    offsets[tp] = OffsetAndMetadata(record.offset + 1, "", -1)
                    handled += 1
        except Exception:
            # Keep what was done (its effects are committed) and go back to the first
            # record not done, or the next poll would go on past the one that failed.
            # Were the commit to fail too, the inboxes absorb the records done again.
            for tp, records in batch.items():
                try:
                    self.consumer.seek(tp, offsets[tp].offset if tp in offsets
                                       else records[0].offset)
                except Exception:  # no longer assigned: its next owner starts there
                    pass
            if offsets:
                try:
                    self.consumer.commit(offsets)
                except Exception:
                    pass
            raise
        if offsets:
            self.consumer.commit(offsets)
        return handled

    def handle_record(self, record: ConsumerRecord) -> None:
        value = record.value
        try:
            event_type = self._peek_type(value)
        except InvalidEvent as exc:
            self.dead_letter(record, str(exc), attempts=0)
            return
        handler = self.subscription.handlers.get(event_type)
        if handler is None:
            return  # another consumer's business
        try:
            envelope = parse_event(value)
        except InvalidEvent as exc:
            self.dead_letter(record, str(exc), attempts=0)
            return
        started = time.perf_counter()
        for attempt in range(1, self.settings.consumer_max_attempts + 1):
            try:
                with self.db.transaction() as session, correlation.handling(
                        envelope.correlation_id, envelope.id):
                    if self.inbox.first_time(session, self.group, envelope):
                        handler(session, envelope)
                metrics.EVENTS_CONSUMED.labels(self.settings.service, envelope.type).inc()
                metrics.HANDLER_SECONDS.labels(self.settings.service, envelope.type).observe(
                    time.perf_counter() - started)
                return
            except (PermanentFailure, ClinicError) as exc:
                self.dead_letter(record, f"{type(exc).__name__}: {exc}", attempts=attempt)
                return
            except DATABASE_AWAY:
                raise
            except Exception as exc:
                log.warning("handler failed", extra={
                    "event_id": envelope.id, "event_type": envelope.type,
                    "attempt": attempt, "error": repr(exc)[:500]})
                if attempt == self.settings.consumer_max_attempts:
                    self.dead_letter(record, f"{type(exc).__name__}: {exc}", attempts=attempt)
                    return
                self._sleep(self.settings.consumer_retry_backoff_seconds * 2 ** (attempt - 1))

    @staticmethod
    def _peek_type(value: bytes | None) -> str:
        if value is None:
            raise InvalidEvent("empty message")
        if len(value) > MAX_EVENT_BYTES:
            raise InvalidEvent(f"message of {len(value)} bytes exceeds {MAX_EVENT_BYTES}")
        try:
            data = json.loads(value)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidEvent(f"not JSON: {exc}") from exc
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            raise InvalidEvent("envelope has no type")
        event_type: str = data["type"]
        return event_type

    def dead_letter(self, record: ConsumerRecord, reason: str, *, attempts: int) -> None:
        """Park the message, with why, where it came from and when, and go on."""
        headers = dead_letter_headers(
            reason, consumer=self.group, source_topic=record.topic, attempts=attempts,
            failed_at=datetime.now(UTC), source_partition=record.partition,
            source_offset=record.offset)
        value = record.value if record.value is None or len(record.value) <= MAX_EVENT_BYTES \
            else record.value[:MAX_EVENT_BYTES]
        self.producer.send(self.dead_letter_topic, key=record.key, value=value,
                           headers=headers).get(timeout=30)
        metrics.DEAD_LETTERS.labels(self.settings.service).inc()
        log.error("event dead-lettered", extra={
            "topic": record.topic, "offset": record.offset, "reason": reason[:300]})

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.poll_once()
            except Exception as exc:  # broker restart, DB away: nothing committed, retry
                log.warning("consumer loop error, retrying", extra={"error": repr(exc)[:500]})
                stop.wait(1.0)
        self.close()

    def close(self) -> None:
        for client in (self._consumer, self._producer):
            if client is not None:
                try:
                    client.close()
                except Exception:
                    pass
        self._consumer = self._producer = None


# ----------------------------------------------------------------------- dead letters

@dataclass(frozen=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    key: str | None
    reason: str
    source_topic: str
    consumer: str
    failed_at: str
    event_type: str | None
    event_id: str | None


def _headers(record: ConsumerRecord) -> dict[str, str]:
    return {k: (v or b"").decode(errors="replace") for k, v in (record.headers or [])}


def _describe(record: ConsumerRecord) -> DeadLetter:
    h = _headers(record)
    event_type = event_id = None
    try:
        data = json.loads(record.value)
        event_type, event_id = str(data.get("type")), str(data.get("id"))
    except Exception:
        pass
    return DeadLetter(record.topic, record.partition, record.offset,
                      record.key.decode(errors="replace") if record.key else None,
                      h.get("dlq.reason", ""), h.get("dlq.source.topic", ""),
                      h.get("dlq.consumer", ""), h.get("dlq.failed_at", ""),
                      event_type, event_id)


def read_records(settings: Settings, topic: str, *, last: int | None = None,
                 timeout_ms: int = 2000, complete: bool = False) -> list[Any]:
    """Every record of a (prefixed) topic up to its end offsets at the time of the call,
    or the `last` few of each partition: for the dashboard's dead letters and for
    reconciling what the topics say. Reads without a group and commits nothing. Records
    written after the call are left out, so the answer is one snapshot. `complete`:
    raise rather than answer with less than the whole snapshot when `timeout_ms` runs
    out (a broker that has just restarted can be slow to serve a fetch)."""
    name = settings.topic(topic)
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap,
                             **security_options(),
                             enable_auto_commit=False, group_id=None)
    try:
        parts = [TopicPartition(name, p) for p in (consumer.partitions_for_topic(name) or [])]
        if not parts:
            return []
        consumer.assign(parts)
        ends = consumer.end_offsets(parts)
        if last is None:
            consumer.seek_to_beginning(*parts)
        else:
            for tp in parts:
                consumer.seek(tp, max(0, ends[tp] - last))
        out: list[Any] = []
        deadline = time.monotonic() + timeout_ms / 1000
        while not all(consumer.position(tp) >= ends[tp] for tp in parts):
            if time.monotonic() > deadline:
                if complete:
                    raise TimeoutError(
                        f"read {name} to {ends} in {timeout_ms} ms: reached "
                        f"{ {tp: consumer.position(tp) for tp in parts} }")
                break
            for tp, records in consumer.poll(timeout_ms=200).items():
                out.extend(r for r in records if r.offset < ends[tp])
        return out
    finally:
        consumer.close()


def read_dead_letters(settings: Settings, service: str, *, limit: int = 100,
                      timeout_ms: int = 1500) -> list[DeadLetter]:
    """The newest dead letters of a service, for the dashboard (reads, commits nothing)."""
    found = [_describe(r) for r in read_records(settings, topics.dead_letter(service),
                                                last=limit, timeout_ms=timeout_ms)]
    return sorted(found, key=lambda d: d.failed_at, reverse=True)[:limit]


def replay_dead_letters(settings: Settings, service: str, *, timeout_ms: int = 2000) -> int:
    """Send each parked message back to the topic it came from, once: the replayer's
    group commits its offsets, so a letter is replayed one time. Only letters parked
    before the replay began: one that fails again is parked anew while this runs, and
    replaying that too would send it round for ever."""
    topic = settings.topic(topics.dead_letter(service))
    consumer = KafkaConsumer(topic, bootstrap_servers=settings.kafka_bootstrap,
                                    **security_options(),
                             group_id=settings.topic(f"{service}.dlq-replay"),
                             enable_auto_commit=False, auto_offset_reset="earliest",
                             consumer_timeout_ms=timeout_ms)
    parts = [TopicPartition(topic, p) for p in (consumer.partitions_for_topic(topic) or [])]
    ends = consumer.end_offsets(parts) if parts else {}
    producer = make_producer(settings)
    replayed = 0
    try:
        for record in consumer:
            if record.offset >= ends.get(TopicPartition(record.topic, record.partition), 0):
                continue  # parked after the replay began: left for the next one
            source = _headers(record).get("dlq.source.topic")
            if source:
                producer.send(source, key=record.key, value=record.value,
                              headers=[("dlq.replayed", b"1")]).get(timeout=30)
                replayed += 1
            consumer.commit({TopicPartition(record.topic, record.partition):
                             OffsetAndMetadata(record.offset + 1, "", -1)})
    except KafkaError:
        log.exception("dead-letter replay stopped")
    finally:
        consumer.close()
        producer.close()
    return replayed
