"""The shared event pipe through the real broker and real databases: outbox, relay,
consumer, inbox and dead-letter topic, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from kafka import KafkaProducer
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select

from shared import topics
from shared.events import new_event
from shared.kafka import EventConsumer, OutboxRelay, Subscription
from shared.runtime import Runtime
from tests.support import infra
from tests.support.clinic import read_topic, wait_for

pytestmark = pytest.mark.kafka


def _clinic_runtime(settings) -> tuple[Runtime, Table]:
    metadata = MetaData()
    pings = Table("pings_seen", metadata,
                  Column("id", Integer, primary_key=True, autoincrement=True),
                  Column("ping_id", String(64), nullable=False))
    runtime = Runtime(settings, metadata, topic=topics.SYSTEM,
                      migrations=Path("/nonexistent"))
    runtime.create_schema()
    return runtime, pings


@pytest.fixture
def pipe(settings_for, topic_prefix, kafka_bootstrap):
    settings = settings_for("referrals", topic_prefix=topic_prefix, kafka_enabled=True,
                            kafka_bootstrap=kafka_bootstrap)
    runtime, pings = _clinic_runtime(settings)

    def record(session, event):
        session.execute(insert(pings).values(ping_id=event.payload["ping_id"]))

    subscription = Subscription("pings", (topics.SYSTEM,), {"system.ping": record})
    consumer = EventConsumer(settings, runtime.db, runtime.tables, subscription,
                             sleep=lambda _s: None)
    relay = OutboxRelay(settings, runtime.db, runtime.tables, runtime.lease)
    yield runtime, pings, consumer, relay
    consumer.close()
    relay.close_producer()
    runtime.db.dispose()


def _stage_pings(runtime: Runtime, n: int, start: int = 0) -> list[str]:
    ids = []
    for i in range(start, start + n):
        with runtime.db.transaction() as s:
            ids.append(runtime.emit(s, "system.ping", {"ping_id": f"p{i}"}, key=f"p{i}").id)
    return ids


def _seen(runtime: Runtime, pings: Table) -> list[str]:
    with runtime.db.transaction() as s:
        return [r[0] for r in s.execute(select(pings.c.ping_id))]


def _drain(consumer: EventConsumer, until, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not until():
        consumer.poll_once(timeout_ms=300)
    assert until(), "consumer did not catch up in time"


def test_an_event_rolled_back_with_its_write_is_never_published(pipe):
    runtime, _pings, _consumer, relay = pipe
    with pytest.raises(RuntimeError), runtime.db.transaction() as s:
        runtime.emit(s, "system.ping", {"ping_id": "ghost"}, key="ghost")
        raise RuntimeError("the domain write failed")
    assert relay.run_once() == 0


def test_a_relay_crash_between_send_and_mark_still_applies_the_event_once(pipe):
    runtime, pings, consumer, relay = pipe
    _stage_pings(runtime, 3)
    rows = relay.pending()
    relay.send(rows)  # ... and the relay dies here, before marking the rows published
    relay.close_producer()
    restarted = OutboxRelay(runtime.settings, runtime.db, runtime.tables, runtime.lease)
    restarted.holder = relay.holder  # the same process comes back and keeps its lease
    assert restarted.run_once() == 3  # at-least-once: the rows go out again
    restarted.close_producer()
    on_topic = [v["payload"]["ping_id"] for _k, _h, v in
                read_topic(runtime.settings, topics.SYSTEM)]
    assert sorted(on_topic) == ["p0", "p0", "p1", "p1", "p2", "p2"]
    _drain(consumer, lambda: len(_seen(runtime, pings)) >= 3)
    consumer.poll_once(timeout_ms=1000)  # let any duplicate arrive
    assert sorted(_seen(runtime, pings)) == ["p0", "p1", "p2"]
    with runtime.db.transaction() as s:
        assert runtime.outbox.backlog(s) == 0


def test_the_same_event_handed_twice_is_applied_once(pipe):
    runtime, pings, consumer, _relay = pipe
    event = new_event("system.ping", {"ping_id": "twice"}, producer="tests")
    producer = KafkaProducer(bootstrap_servers=runtime.settings.kafka_bootstrap, acks="all")
    for _ in range(2):
        producer.send(runtime.settings.topic(topics.SYSTEM), key=b"k",
                      value=event.to_bytes()).get(10)
    producer.close()
    _drain(consumer, lambda: _seen(runtime, pings) == ["twice"])
    consumer.poll_once(timeout_ms=1000)
    assert _seen(runtime, pings) == ["twice"]


def test_malformed_and_unknown_version_events_are_dead_lettered_and_the_consumer_goes_on(pipe):
    runtime, pings, consumer, _relay = pipe
    good = new_event("system.ping", {"ping_id": "after-the-poison"}, producer="tests")
    future = json.loads(new_event("system.ping", {"ping_id": "v9"}, producer="t").to_bytes())
    future["version"] = 9
    bad_payload = json.loads(good.to_bytes())
    bad_payload["id"] = "not-a-uuid"
    producer = KafkaProducer(bootstrap_servers=runtime.settings.kafka_bootstrap, acks="all")
    topic = runtime.settings.topic(topics.SYSTEM)
    for value in (b"{not json", json.dumps(future).encode(), json.dumps(bad_payload).encode(),
                  good.to_bytes()):
        producer.send(topic, key=b"same-key", value=value).get(10)
    producer.close()
    _drain(consumer, lambda: _seen(runtime, pings) == ["after-the-poison"])
    letters = wait_for(lambda: read_topic(runtime.settings, topics.dead_letter("referrals")),
                       what="dead letters")
    reasons = sorted(h["dlq.reason"] for _k, h, _v in letters)
    assert len(reasons) == 3
    assert any("not JSON" in r for r in reasons)
    assert any("version 9" in r for r in reasons)
    assert any("id" in r and "envelope invalid" in r for r in reasons)
    assert all(h["dlq.source.topic"] == topic for _k, h, _v in letters)


def test_a_handler_that_keeps_failing_is_retried_then_dead_lettered(pipe):
    runtime, _pings, consumer, _relay = pipe
    calls = []

    def broken(session, event):
        calls.append(event.id)
        raise OSError("the SMTP server is down")

    consumer.subscription.handlers["system.ping"] = broken
    _stage_pings(runtime, 1)
    OutboxRelay(runtime.settings, runtime.db, runtime.tables, runtime.lease).run_once()
    _drain(consumer, lambda: len(calls) >= runtime.settings.consumer_max_attempts)
    letters = wait_for(lambda: read_topic(runtime.settings, topics.dead_letter("referrals")),
                       what="dead letter")
    assert "SMTP server is down" in letters[0][1]["dlq.reason"]
    assert letters[0][1]["dlq.attempts"] == str(runtime.settings.consumer_max_attempts)
    with runtime.db.transaction() as s:  # no inbox row: a replay will be applied
        assert s.execute(select(func.count()).select_from(runtime.tables.inbox)).scalar() == 0


def test_a_broker_restart_in_the_middle_of_a_stream_loses_nothing(pipe):
    runtime, pings, consumer, relay = pipe
    stop = threading.Event()
    threads = [threading.Thread(target=relay.run, args=(stop,)),
               threading.Thread(target=consumer.run, args=(stop,))]
    for t in threads:
        t.start()
    try:
        _stage_pings(runtime, 30)
        wait_for(lambda: len(_seen(runtime, pings)) >= 5, what="first pings")
        infra.stop_kafka()
        _stage_pings(runtime, 30, start=30)  # written while the broker is down
        infra.start_kafka()
        _stage_pings(runtime, 30, start=60)
        wait_for(lambda: len(_seen(runtime, pings)) >= 90, timeout=90, what="all 90 pings")
        time.sleep(1.0)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    seen = _seen(runtime, pings)
    assert sorted(seen) == sorted(f"p{i}" for i in range(90))  # none lost, none twice
