"""Load: every service under gunicorn with its worker, driven at a sustained, bounded rate.

Prints throughput, latency percentiles per endpoint, end-to-end event latency (a ping's
POST until the last service's inbox has it) and, measured in the same run on the same
machine, Kafka's own produce-to-consume latency with a bare kafka-python producer and
consumer on a scratch topic (acks=all, as the relay), with the ratios between them.

Loopback only; every loop is bounded by time. Options: --seconds (default 60), --rate
(requests/s, default 40), --backend sqlite|postgres. Broker from KAFKA_BOOTSTRAP_SERVERS.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kafka import KafkaConsumer, KafkaProducer
from sqlalchemy import MetaData, create_engine, select
from sqlalchemy.pool import NullPool

from shared import topics
from shared.config import Settings
from shared.kafka import ensure_topics
from shared.launcher import available_services, has_worker
from shared.messaging import add_messaging_tables
from tests.proof.report import record, table
from tests.support import infra
from tests.support.clinic import bearer
from tests.support.processes import running_services

INBOX = add_messaging_tables(MetaData()).inbox


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def simple_gets(url: str, headers: dict[str, str]) -> list[str]:
    """GET routes of a service with no path or required parameters, from its OpenAPI."""
    spec = requests.get(url + "/openapi.json", timeout=10).json()
    out = []
    for path, item in spec.get("paths", {}).items():
        op = item.get("get")
        if not op or "{" in path:
            continue
        params = op.get("parameters", []) + item.get("parameters", [])
        if any(p.get("required") for p in params):
            continue
        out.append(path)
    return sorted(set(out) | {"/healthz", "/readyz"})


class KafkaBaseline:
    """Produce-to-consume latency of the bare broker, beside the clinic's load."""

    def __init__(self, bootstrap: str, topic: str, rate: float) -> None:
        self.bootstrap, self.topic, self.rate = bootstrap, topic, rate
        self.latencies: list[float] = []
        self.sent = 0
        self._stop = threading.Event()
        self._ready = threading.Event()

    def _consume(self) -> None:
        consumer = KafkaConsumer(self.topic, bootstrap_servers=self.bootstrap,
                                 group_id=f"bench-{uuid.uuid4().hex[:6]}",
                                 auto_offset_reset="latest", enable_auto_commit=False)
        try:
            deadline = time.monotonic() + 30
            while not consumer.assignment() and time.monotonic() < deadline:
                consumer.poll(timeout_ms=200)
            self._ready.set()
            while not self._stop.is_set() or len(self.latencies) < self.sent:
                for records in consumer.poll(timeout_ms=200).values():
                    now = time.time()
                    for r in records:
                        self.latencies.append(now - json.loads(r.value)["t"])
                if self._stop.is_set() and time.monotonic() > self._drain_deadline:
                    break
        finally:
            consumer.close()

    def start(self) -> KafkaBaseline:
        self._drain_deadline = float("inf")
        self._consumer = threading.Thread(target=self._consume, daemon=True)
        self._consumer.start()
        self._ready.wait(35)
        self._producer_thread = threading.Thread(target=self._produce, daemon=True)
        self._producer_thread.start()
        return self

    def _produce(self) -> None:
        producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all",
                                 enable_idempotence=True, linger_ms=5)
        try:
            while not self._stop.is_set():
                producer.send(self.topic, key=str(self.sent).encode(),
                              value=json.dumps({"t": time.time()}).encode()).get(10)
                self.sent += 1
                self._stop.wait(1.0 / self.rate)
        finally:
            producer.close()

    def stop(self) -> None:
        self._drain_deadline = time.monotonic() + 10
        self._stop.set()
        self._producer_thread.join(30)
        self._consumer.join(30)


def run(seconds: float, rate: float, backend: str, workers: int) -> int:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    settings = Settings.for_service("bench", topic_prefix=prefix, database_url="sqlite://",
                                    kafka_bootstrap=bootstrap)
    ensure_topics(settings, (*topics.ALL_TOPICS, "bench.baseline"))
    tmp = Path(tempfile.mkdtemp(prefix="paincare-bench-"))
    pg_names: list[str] = []
    urls: dict[str, str] = {}

    def database_url(service: str) -> str:
        if backend == "postgres":
            infra.ensure_postgres()
            pg_names.append(infra.create_pg_database())
            urls[service] = infra.pg_url(pg_names[-1])
        else:
            urls[service] = f"sqlite:///{tmp / (service + '.db')}"
        return urls[service]

    services = [s for s in available_services() if has_worker(s)]
    admin = bearer(settings, "admin")
    print(f"bench_load: {len(services)} services under gunicorn ({workers} workers each) "
          f"+ workers, {backend}, broker {bootstrap}, {rate:.0f} req/s for {seconds:.0f}s")
    try:
        with running_services(services, database_url=database_url, topic_prefix=prefix,
                              log_dir=tmp / "logs", web_workers=workers,
                              extra_env={"KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                                         "LOG_LEVEL": "WARNING"}) as clinic:
            return _drive(clinic, services, urls, admin, settings, seconds, rate, bootstrap)
    finally:
        infra.delete_topics(bootstrap, prefix)
        for name in pg_names:
            infra.drop_pg_database(name)


def _drive(clinic, services, urls, admin, settings, seconds, rate, bootstrap) -> int:  # type: ignore[no-untyped-def]
    gets = {s: simple_gets(clinic[s].url, admin) for s in services}
    plan: list[tuple[str, str, str]] = []  # (service, method, path)
    for s in services:
        plan += [(s, "POST", "/ops/pings")] * 4
        plan += [(s, "GET", p) for p in gets[s]]
    tokens: queue.Queue = queue.Queue()
    lat: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, int] = defaultdict(int)
    pings: dict[str, float] = {}  # event id -> wall time the POST was sent
    lock = threading.Lock()
    stop = threading.Event()

    def client() -> None:
        session = requests.Session()
        while True:
            item = tokens.get()
            if item is None:
                return
            service, method, path = item
            key = f"{service} {method} {path}"
            sent_wall, started = time.time(), time.perf_counter()
            try:
                if method == "POST":
                    resp = session.post(clinic[service].url + path, json={"message": "bench"},
                                        headers=admin, timeout=10)
                else:
                    resp = session.get(clinic[service].url + path, headers=admin, timeout=10)
                elapsed = time.perf_counter() - started
                with lock:
                    lat[key].append(elapsed)
                    if resp.status_code >= 500:
                        errors[key] += 1
                    if method == "POST" and resp.status_code == 202:
                        pings[resp.json()["event_id"]] = sent_wall
            except requests.RequestException:
                with lock:
                    errors[key] += 1

    threads = [threading.Thread(target=client, daemon=True) for _ in range(16)]
    for t in threads:
        t.start()
    baseline = KafkaBaseline(bootstrap, settings.topic("bench.baseline"), rate / 2).start()
    rng = random.Random(7)
    started = time.monotonic()
    issued = behind = 0
    while (now := time.monotonic()) - started < seconds and not stop.is_set():
        due = started + issued / rate
        if due > now:
            time.sleep(due - now)
        elif tokens.qsize() > 32:
            behind += 1
        tokens.put(rng.choice(plan))
        issued += 1
    for _ in threads:
        tokens.put(None)
    for t in threads:
        t.join(30)
    wall = time.monotonic() - started
    baseline.stop()

    # end to end: every ping until the last service's inbox has it (bounded wait)
    handled: dict[str, dict[str, datetime]] = {}
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        for service in services:
            engine = create_engine(urls[service], poolclass=NullPool)
            with engine.connect() as conn:
                handled[service] = {r.event_id: r.handled_at for r in conn.execute(
                    select(INBOX.c.event_id, INBOX.c.handled_at).where(
                        INBOX.c.event_type == "system.ping"))}
            engine.dispose()
        if all(set(pings) <= set(h) for h in handled.values()):
            break
        time.sleep(1)
    e2e = []
    for event_id, sent in pings.items():
        times = [h[event_id] for h in handled.values() if event_id in h]
        if len(times) == len(services):
            last = max(t.timestamp() if t.tzinfo else t.replace(
                tzinfo=__import__("datetime").UTC).timestamp() for t in times)
            e2e.append(last - sent)
    delivered = len(e2e)

    total = sum(len(v) for v in lat.values())
    rows = []
    for key in sorted(lat):
        v = lat[key]
        rows.append([key, str(len(v)), f"{len(v) / wall:.1f}", f"{pct(v, 50) * 1000:.1f}",
                     f"{pct(v, 95) * 1000:.1f}", f"{pct(v, 99) * 1000:.1f}",
                     str(errors.get(key, 0))])
    print(table(rows, ["endpoint", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "5xx"]))
    all_lat = [x for v in lat.values() for x in v]
    k = baseline.latencies
    print(f"throughput: {total} requests in {wall:.1f}s = {total / wall:.1f} req/s "
          f"(target {rate:.0f}; {behind} ticks behind schedule); "
          f"HTTP p50 {pct(all_lat, 50) * 1000:.1f} ms p95 {pct(all_lat, 95) * 1000:.1f} ms "
          f"p99 {pct(all_lat, 99) * 1000:.1f} ms")
    rows = [["end-to-end ping (POST -> last inbox)", str(delivered),
             *(f"{pct(e2e, p) * 1000:.1f}" for p in (50, 95, 99))],
            ["Kafka produce->consume (bare, acks=all)", str(len(k)),
             *(f"{pct(k, p) * 1000:.1f}" for p in (50, 95, 99))]]
    if e2e and k:
        rows.append(["ratio end-to-end / Kafka", "",
                     *(f"{pct(e2e, p) / max(pct(k, p), 1e-6):.1f}x" for p in (50, 95, 99))])
    print(table(rows, ["latency", "n", "p50 ms", "p95 ms", "p99 ms"]))
    print(f"pings: {len(pings)} accepted, {delivered} in all {len(services)} inboxes")
    fivexx = sum(errors.values())
    record("load", f"HTTP requests at {rate:.0f}/s for {wall:.0f}s without 5xx",
           tried=total, held=total - fivexx,
           detail=f"{total / wall:.1f} req/s, p99 {pct(all_lat, 99) * 1000:.0f} ms")
    record("load", "pings delivered to every service's inbox", tried=len(pings),
           held=delivered,
           detail=f"e2e p50 {pct(e2e, 50) * 1000:.0f} ms p99 {pct(e2e, 99) * 1000:.0f} ms; "
                  f"kafka p50 {pct(k, 50) * 1000:.1f} ms p99 {pct(k, 99) * 1000:.1f} ms")
    return 0 if fivexx == 0 and delivered == len(pings) and pings else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float,
                        default=float(os.environ.get("BENCH_SECONDS", 60)))
    parser.add_argument("--rate", type=float, default=float(os.environ.get("BENCH_RATE", 40)))
    parser.add_argument("--backend", choices=("sqlite", "postgres"),
                        default=os.environ.get("BENCH_BACKEND", "sqlite"))
    parser.add_argument("--web-workers", type=int, default=2)
    args = parser.parse_args()
    return run(min(args.seconds, 600), min(args.rate, 500), args.backend, args.web_workers)


if __name__ == "__main__":
    raise SystemExit(main())
