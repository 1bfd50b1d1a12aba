"""Small tools for clinic stories in tests: tokens for each role, waiting for an
asynchronous effect, reading a topic."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TypeVar

from kafka import KafkaConsumer, TopicPartition

from shared.auth import mint_token
from shared.config import Settings

T = TypeVar("T")


def token(settings: Settings, role: str, subject: str | None = None, **claims: str) -> str:
    return mint_token(settings.jwt_secret, subject=subject or f"{role}-1", role=role,
                      issuer=settings.jwt_issuer, audience=settings.jwt_audience, **claims)


def bearer(settings: Settings, role: str, subject: str | None = None, **claims: str) -> dict:
    return {"Authorization": f"Bearer {token(settings, role, subject, **claims)}"}


def wait_for(probe: Callable[[], T], *, timeout: float = 30.0, interval: float = 0.1,
             what: str = "condition") -> T:
    """Poll until `probe` returns something truthy; fail the test with `what` if not."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def read_topic(settings: Settings, topic: str, *, timeout_ms: int = 2000) -> list:
    """Every record on a (prefixed) topic, from the start, as (key, headers, value dict)."""
    name = settings.topic(topic)
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None,
                             enable_auto_commit=False, consumer_timeout_ms=timeout_ms)
    try:
        parts = [TopicPartition(name, p) for p in (consumer.partitions_for_topic(name) or [])]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = consumer.end_offsets(parts)
        out = []
        if not any(ends.values()):
            return out
        for record in consumer:
            try:
                value = json.loads(record.value)
            except Exception:
                value = record.value
            out.append((record.key.decode() if record.key else None,
                        {k: v.decode(errors="replace") for k, v in record.headers or []},
                        value))
            if all(consumer.position(tp) >= ends[tp] for tp in parts):
                break
        return out
    finally:
        consumer.close()
