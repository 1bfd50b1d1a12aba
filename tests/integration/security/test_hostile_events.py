"""Malformed and hostile events on every topic every service consumes.

Generic: the topics and event types come from each service's `worker.subscriptions`
as they are when the suite runs. Every bad message must land on the consuming service's
dead-letter topic with a reason (once per consumer group that would have handled it),
and the worker must go on to handle a valid ping sent after them (an inbox row).
"""

from __future__ import annotations

import importlib
import json
import random
import uuid
from collections import defaultdict
from dataclasses import dataclass

import marshmallow as ma
import pytest
from kafka import KafkaProducer
from sqlalchemy import select

from shared import topics
from shared.config import Settings
from shared.events import MAX_EVENT_BYTES, new_event, payload_schema, registered_types
from shared.kafka import Subscription
from shared.launcher import available_services, has_worker
from shared.runtime import Runtime
from shared.worker import Worker
from tests.proof.report import long_form, record
from tests.support.clinic import read_topic, wait_for

pytestmark = pytest.mark.kafka

SERVICES = [s for s in available_services() if has_worker(s)]


@dataclass(frozen=True)
class Hostile:
    kind: str
    topic: str
    key: bytes | None
    value: bytes | None
    event_type: str | None  # None: every group on the topic must dead-letter it


def _valid(event_type: str) -> dict:
    """An envelope around a payload that may be invalid; only system.ping gets a real one."""
    payload = {"ping_id": uuid.uuid4().hex, "message": "x"} if event_type == "system.ping" \
        else {}
    env = new_event("system.ping", {"ping_id": "template"}, producer="mallory").to_dict()
    env.update(type=event_type, payload=payload, id=str(uuid.uuid4()))
    return env


def _wrong_payload(event_type: str, version: int) -> dict | None:
    """Every declared field given a value of the wrong type; None if the schema would
    accept it anyway (a Raw field), so the test never sends a 'bad' event that is good."""
    schema = payload_schema(event_type, version)
    payload = {name: (12345 if isinstance(f, ma.fields.List) else [1, {"x": 2}])
               for name, f in schema.fields.items() if not f.dump_only}
    if not payload:
        payload = {"unexpected_field": "x"}
    try:
        schema.load(payload)
    except ma.ValidationError:
        return payload
    return None


def _bytes(data: object) -> bytes:
    return json.dumps(data).encode()


def hostile_messages(topic: str, handled: set[str], key: bytes) -> list[Hostile]:
    """The bad messages for one topic: some any consumer must refuse, some aimed at the
    event types its consumers handle."""
    out = [
        Hostile("not JSON", topic, key, b"\x00\xff{{not json", None),
        Hostile("JSON but not an object", topic, key, b"[1, 2, 3]", None),
        Hostile("type is not a string", topic, key, _bytes({**_valid("system.ping"),
                                                              "type": 42}), None),
        Hostile("tombstone (null value)", topic, key, None, None),
    ]
    for event_type in sorted(handled):
        versions = [v for t, v in registered_types() if t == event_type] or [1]
        base = _valid(event_type)
        oversized = {**base, "payload": {**base["payload"], "message": "A" * MAX_EVENT_BYTES}}
        out += [
            # too big is refused before the type is read: every group on the topic refuses it
            Hostile("oversized", topic, key, _bytes(oversized), None),
            Hostile("unknown version", topic, key,
                    _bytes({**base, "version": max(versions) + 97}), event_type),
            Hostile("version is a string", topic, key, _bytes({**base, "version": "1"}),
                    event_type),
            Hostile("id is not a uuid", topic, key, _bytes({**base, "id": 12345}), event_type),
            Hostile("occurred_at is not a time", topic, key,
                    _bytes({**base, "occurred_at": "yesterday"}), event_type),
            Hostile("payload is a list", topic, key, _bytes({**base, "payload": [1]}),
                    event_type),
            Hostile("unknown envelope key", topic, key,
                    _bytes({**base, "patient_name": "Jane Doe"}), event_type),
            Hostile("unknown payload key", topic, key,
                    _bytes({**base, "payload": {**base["payload"], "evil": "<script>"}}),
                    event_type),
        ]
        for version in versions:
            wrong = _wrong_payload(event_type, version)
            if wrong is not None:
                out.append(Hostile(f"payload of wrong types (v{version})", topic, key,
                                   _bytes({**base, "version": version, "payload": wrong}),
                                   event_type))
    return out


def random_mutations(topic: str, handled: set[str], key: bytes, n: int) -> list[Hostile]:
    """Long form: valid envelopes with one byte flipped or truncated at random; kept only
    if they really are invalid JSON (anything else might be a valid event by chance)."""
    out: list[Hostile] = []
    rng = random.Random(20261125)
    handled_list = sorted(handled)
    while len(out) < n and handled_list:
        raw = bytearray(_bytes(_valid(rng.choice(handled_list))))
        if rng.random() < 0.5:
            raw = raw[: rng.randrange(1, len(raw) - 1)]
        else:
            raw[rng.randrange(len(raw))] = rng.choice(b"{}[]\",:\x00\xff")
        try:
            json.loads(bytes(raw))
        except (ValueError, UnicodeDecodeError):
            out.append(Hostile("random mutation", topic, key, bytes(raw), None))
    return out


def _worker_of(service: str, settings: Settings) -> tuple[Runtime, list[Subscription]]:
    wiring = importlib.import_module(f"services.{service}.wiring")
    worker = importlib.import_module(f"services.{service}.worker")
    runtime = wiring.build_runtime(settings)
    runtime.create_schema()
    return runtime, worker.subscriptions(runtime)


def test_hostile_events_on_every_topic_are_dead_lettered_and_workers_go_on(
        settings_for, new_database_url, topic_prefix, kafka_bootstrap) -> None:
    workers: dict[str, tuple[Runtime, list[Subscription], Worker]] = {}
    try:
        for service in SERVICES:
            settings = settings_for(service, topic_prefix=topic_prefix, kafka_enabled=True,
                                    kafka_bootstrap=kafka_bootstrap,
                                    database_url=new_database_url(service))
            runtime, subs = _worker_of(service, settings)
            workers[service] = (runtime, subs,
                                Worker(runtime, subs, relay=False).start())

        # what each topic's consumers handle, across every service
        handled_on: dict[str, set[str]] = defaultdict(set)
        for _runtime, subs, _w in workers.values():
            for sub in subs:
                for t in sub.topics:
                    handled_on[t] |= set(sub.handlers)
        assert topics.SYSTEM in handled_on, "no worker consumes system.events"

        key = b"hostile-" + uuid.uuid4().hex.encode()
        sent: list[tuple[Hostile, int, int]] = []
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all",
                                 max_request_size=4 * MAX_EVENT_BYTES)
        try:
            for topic, handled in sorted(handled_on.items()):
                messages = hostile_messages(topic, handled, key)
                if long_form():
                    messages += random_mutations(topic, handled, key, 40)
                for m in messages:
                    meta = producer.send(topic_prefix + m.topic, key=m.key,
                                         value=m.value).get(30)
                    sent.append((m, meta.partition, meta.offset))
            # then good pings, behind the poison on the same partition, and one with no key
            ping = new_event("system.ping", {"ping_id": "after-poison"}, producer="tests")
            keyless = new_event("system.ping", {"ping_id": "no-key"}, producer="tests")
            producer.send(topic_prefix + topics.SYSTEM, key=key, value=ping.to_bytes()).get(30)
            producer.send(topic_prefix + topics.SYSTEM, key=None,
                          value=keyless.to_bytes()).get(30)
        finally:
            producer.close()

        for service, (runtime, subs, _w) in workers.items():
            # expected: (consumer group, source topic, offset) for each bad message
            expected: set[tuple[str, str, int, int]] = set()
            for m, partition, offset in sent:
                for sub in subs:
                    if m.topic in sub.topics and (m.event_type is None
                                                  or m.event_type in sub.handlers):
                        expected.add((f"{service}.{sub.name}", topic_prefix + m.topic,
                                      partition, offset))
            ping_groups = [f"{service}.{s.name}" for s in subs if "system.ping" in s.handlers]

            def inbox(runtime: Runtime = runtime) -> set[tuple[str, str]]:
                with runtime.db.transaction() as s:
                    return {(r.consumer, r.event_id) for r in s.execute(
                        select(runtime.tables.inbox.c.consumer,
                               runtime.tables.inbox.c.event_id))}

            wanted = {(g, e.id) for g in ping_groups for e in (ping, keyless)}
            wait_for(lambda inbox=inbox, wanted=wanted: wanted <= inbox(), timeout=60,
                     what=f"{service} to handle the pings sent after the poison")

            def letters(settings: Settings = runtime.settings, n: int = len(expected)
                        ) -> list | None:
                found = read_topic(settings, topics.dead_letter(settings.service))
                return found if len(found) >= n else None

            found = wait_for(letters, timeout=60, what=f"{service}'s dead letters")
            got = {(h.get("dlq.consumer"), h.get("dlq.source.topic"),
                    int(h.get("dlq.source.partition", -1)), int(h.get("dlq.source.offset", -1)))
                   for _k, h, _v in found}
            reasons_ok = all(h.get("dlq.reason") for _k, h, _v in found)
            missing = expected - got
            kind_at = {(topic_prefix + m.topic, p, o): m.kind for m, p, o in sent}
            missing_kinds = sorted({kind_at[(t, p, o)] for _g, t, p, o in missing})
            record("hostile", f"{service}: bad events dead-lettered with a reason",
                   tried=len(expected), held=len(expected & got) if reasons_ok else 0,
                   detail=f"{len(sent)} sent on {len(handled_on)} topics")
            assert not missing, f"{service}: not dead-lettered: {missing_kinds}"
            assert reasons_ok, f"{service}: a dead letter without a reason"
            assert len(found) == len(expected), \
                f"{service}: {len(found)} dead letters for {len(expected)} bad messages"
            handled = inbox()
            record("hostile", f"{service}: valid pings handled after the poison",
                   tried=len(wanted), held=len(wanted & handled))
            assert {e for _c, e in handled} == {ping.id, keyless.id}, \
                "a hostile message reached a handler"
    finally:
        for _runtime, _subs, worker in workers.values():
            worker.stop()
        for runtime, _subs, _w in workers.values():
            runtime.db.dispose()


def test_the_hostile_catalogue_is_really_hostile() -> None:
    """Every message the suite calls bad fails validation, so a pass means refusal."""
    from shared.events import InvalidEvent, parse_event

    msgs = hostile_messages(topics.SYSTEM, {"system.ping"}, b"k")
    msgs += random_mutations(topics.SYSTEM, {"system.ping"}, b"k", 20)
    assert len({m.kind for m in msgs}) >= 12
    for m in msgs:
        with pytest.raises(InvalidEvent):
            parse_event(m.value)  # type: ignore[arg-type]
