"""The platform's state as an admin sees it: each service's readiness and outbox backlog
(over HTTP), Kafka topics with throughput, consumer-group lag, and dead letters.

Asked of the services and the broker, never of their databases. One probe per web
process; its answers are cached for a moment so that several open pages cost the broker
one round of questions.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from typing import Any

import requests
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from services.dashboard import domain
from shared import topics
from shared.auth import ServiceTokens
from shared.errors import ClinicError
from shared.kafka import (
    kafka_reachable,
    read_dead_letters,
    replay_dead_letters,
    security_options,
)
from shared.launcher import PORTS
from shared.runtime import Runtime

log = logging.getLogger(__name__)

CACHE_SECONDS = 1.5
LATEST_DEAD_LETTERS = 5


class PlatformProbe:
    def __init__(self, runtime: Runtime, *, http_timeout: float = 1.5) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.http_timeout = http_timeout
        self.urls = {s: self.settings.setting(f"{s.upper()}_URL", f"http://127.0.0.1:{PORTS[s]}")
                     for s in topics.SERVICES if s != self.settings.service}
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[str, Any]] | None = None
        self._samples: dict[str, tuple[float, int]] = {}
        self._dead_letters: dict[str, tuple[int, list[dict[str, Any]]]] = {}
        self._admin: KafkaAdminClient | None = None
        self._consumer: KafkaConsumer | None = None
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="probe")
        self._tokens = ServiceTokens(self.settings)  # the provider's, or local in development

    # ------------------------------------------------------------------ services
    def _service_token(self) -> str:
        return self._tokens.token()

    def _remote(self, service: str, token: str) -> dict[str, Any]:
        url = self.urls[service]
        out: dict[str, Any] = {"service": service, "url": url, "alive": False, "ready": False,
                               "failures": {}, "outbox_backlog": None}
        try:
            ready = requests.get(url + "/readyz", timeout=self.http_timeout)
            out["alive"] = True
            out["ready"] = ready.status_code == 200
            out["failures"] = ready.json().get("failures", {}) if not out["ready"] else {}
            backlog = requests.get(url + "/ops/outbox", timeout=self.http_timeout,
                                   headers={"Authorization": f"Bearer {token}"})
            if backlog.status_code == 200:
                out["outbox_backlog"] = backlog.json()["outbox_backlog"]
        except (requests.RequestException, ValueError) as exc:
            out["failures"] = out["failures"] or {"http": type(exc).__name__}
        return out

    def _own(self) -> dict[str, Any]:
        failures: dict[str, str] = {}
        for check in self.runtime.ready_checks():
            try:
                check()
            except Exception as exc:
                failures[check.__name__] = str(exc)[:200]
        backlog = None
        try:
            with self.runtime.db.transaction() as s:
                backlog = self.runtime.outbox.backlog(s)
        except Exception:
            pass
        return {"service": self.settings.service, "url": "(this service)", "alive": True,
                "ready": not failures, "failures": failures, "outbox_backlog": backlog}

    def services(self) -> list[dict[str, Any]]:
        try:
            token = self._service_token()
        except ClinicError as exc:  # no token: readiness still shows, the backlog does not
            log.warning("the probe has no service token", extra={"error": exc.detail})
            token = ""
        futures = {s: self._pool.submit(self._remote, s, token) for s in self.urls}
        found = {s: f.result() for s, f in futures.items()}
        found[self.settings.service] = self._own()
        return [found[s] for s in topics.SERVICES if s in found]

    # --------------------------------------------------------------------- kafka
    def _clients(self) -> tuple[KafkaAdminClient, KafkaConsumer]:
        if self._admin is None:
            self._admin = KafkaAdminClient(bootstrap_servers=self.settings.kafka_bootstrap,
                                           **security_options(),
                                           client_id="dashboard-probe",
                                           request_timeout_ms=5000)
        if self._consumer is None:
            self._consumer = KafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap,
                                           **security_options(),
                                           group_id=None, enable_auto_commit=False,
                                           client_id="dashboard-probe",
                                           request_timeout_ms=5000)
        return self._admin, self._consumer

    def _drop_clients(self) -> None:
        for client in (self._admin, self._consumer):
            if client is not None:
                try:
                    client.close()
                except Exception:
                    pass
        self._admin = self._consumer = None

    def kafka(self) -> dict[str, Any]:
        if not kafka_reachable(self.settings):
            return {"reachable": False, "topics": [], "groups": [],
                    "lag_by_service": {}, "dead_letters": {}}
        try:
            return self._kafka()
        except Exception as exc:
            log.warning("kafka probe failed", extra={"error": repr(exc)[:300]})
            self._drop_clients()
            return {"reachable": False, "error": repr(exc)[:300], "topics": [], "groups": [],
                    "lag_by_service": {}, "dead_letters": {}}

    def _kafka(self) -> dict[str, Any]:
        admin, consumer = self._clients()
        prefix = self.settings.topic_prefix
        parts: dict[str, list[TopicPartition]] = {}
        for logical in topics.ALL_TOPICS:
            name = self.settings.topic(logical)
            parts[logical] = [TopicPartition(name, p)
                              for p in sorted(consumer.partitions_for_topic(name) or [])]
        every = [tp for tps in parts.values() for tp in tps]
        ends: dict[TopicPartition, int] = consumer.end_offsets(every) if every else {}
        now = time.monotonic()
        topic_rows = []
        for logical, tps in parts.items():
            total = sum(ends.get(tp, 0) for tp in tps)
            rate = domain.throughput(self._samples.get(logical), (now, total))
            self._samples[logical] = (now, total)
            topic_rows.append({"topic": logical, "partitions": len(tps), "messages": total,
                               "per_second": rate})

        groups = [g["group_id"] for g in admin.list_groups()
                  if domain.service_of_group(g["group_id"], prefix, topics.SERVICES)]
        committed_by_group = admin.list_group_offsets(dict.fromkeys(groups)) if groups else {}
        by_topic: dict[str, list[TopicPartition]] = {}
        for tp in every:
            by_topic.setdefault(tp.topic, []).append(tp)
        group_rows = []
        lag_by_service = dict.fromkeys(topics.SERVICES, 0)
        replayed: dict[str, dict[TopicPartition, int]] = {}
        for group in sorted(groups):
            committed = {tp: meta.offset for tp, meta in
                         (committed_by_group.get(group) or {}).items() if meta.offset >= 0}
            consumed_topics = {tp.topic for tp in committed}
            group_ends = {tp: ends.get(tp, 0) for t in consumed_topics
                          for tp in by_topic.get(t, [])}
            service = domain.service_of_group(group, prefix, topics.SERVICES) or ""
            if group.endswith(".dlq-replay"):
                replayed[service] = committed
                continue
            lag = domain.group_lag(group_ends, committed)
            lag_by_service[service] += lag
            group_rows.append({"group": group[len(prefix):], "service": service, "lag": lag,
                               "topics": sorted(t[len(prefix):] for t in consumed_topics)})

        dlq_ends = {s: {tp: ends.get(tp, 0) for tp in parts[topics.dead_letter(s)]}
                    for s in topics.SERVICES}
        dead_letters = self._latest_dead_letters(
            {s: sum(e.values()) for s, e in dlq_ends.items()})
        for s, row in dead_letters.items():
            row["waiting"] = domain.group_lag(dlq_ends[s], replayed.get(s, {}))
        return {"reachable": True, "topics": topic_rows, "groups": group_rows,
                "lag_by_service": lag_by_service, "dead_letters": dead_letters}

    def _latest_dead_letters(self, counts: dict[str, int]) -> dict[str, Any]:
        """Reading a dead-letter topic is slow, so each is read again only when its count
        has changed."""
        stale = [s for s, n in counts.items()
                 if n and self._dead_letters.get(s, (-1, []))[0] != n]
        fresh = {s: self._pool.submit(read_dead_letters, self.settings, s,
                                      limit=LATEST_DEAD_LETTERS, timeout_ms=700)
                 for s in stale}
        for s, fut in fresh.items():
            try:
                letters = [asdict(d) for d in fut.result()][:LATEST_DEAD_LETTERS]
                self._dead_letters[s] = (counts[s], letters)
            except Exception as exc:
                log.warning("could not read dead letters", extra={"service": s,
                                                                  "error": repr(exc)[:300]})
        return {s: {"count": n, "latest": self._dead_letters.get(s, (0, []))[1] if n else []}
                for s, n in counts.items()}

    # ------------------------------------------------------------------- the lot
    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            if self._cached and time.monotonic() - self._cached[0] < CACHE_SECONDS:
                return self._cached[1]
            services = self._pool.submit(self.services)
            kafka = self.kafka()
            result = {"services": services.result(), "kafka": kafka}
            self._cached = (time.monotonic(), result)
            return result

    def replay(self, service: str) -> int:
        replayed = replay_dead_letters(self.settings, service)
        with self._lock:
            self._cached = None
        return replayed
