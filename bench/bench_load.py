"""Load: the clinic simulator at a sustained rate, every service under gunicorn with its
worker, beside a ping stream and a bare Kafka producer/consumer on the same machine.

The load is `simulator.run.ClinicSimulation` admitting new referrals at --referral-rate for
the whole --seconds (each patient's journey through the public APIs: referral, triage,
accept, the itinerary scheduling proposes, the scheduler's confirm, cancellations, and on
the day check-ins, no-shows and signed notes), while a lower-rate stream of pings and
simple GETs (--rate) measures event delivery to every service. The notifier really
delivers: a real SMTP server and SMS gateway (`simulator.receivers`) note when each
message arrived.

Prints: latency percentiles per endpoint (the simulator's and the pings'), throughput
(requests/s; referrals, itineraries booked and notes signed per minute), the ledger
summary, each process's peak RSS, and one latency table with ratios to Kafka's own
produce->consume latency measured in the same run (acks=all, as the relay):

- a ping's POST until the last service's inbox has it;
- referral.accepted (the event's occurred_at on the referrals topic) until the patient's
  "Your appointments" email or SMS reached the receiver; and its parts: accepted ->
  itinerary proposed (as the event says, and as the scheduler's polling saw it), the
  scheduler's confirm call, and confirmed -> message arrival (the system's own share).

Loopback only; every loop is bounded by time. Options: --seconds (default 60),
--referral-rate (new referrals/s, default 2), --rate (pings and GETs/s, default 8),
--backend sqlite|postgres, --web-workers. Broker from KAFKA_BOOTSTRAP_SERVERS.
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
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError
from sqlalchemy import MetaData, create_engine, select
from sqlalchemy.pool import NullPool

from services.notifier.domain import CHANNEL_TEMPLATES, TEMPLATES
from shared import topics
from shared.config import Settings
from shared.kafka import ensure_topics, read_records
from shared.launcher import ServiceProcesses, available_services, has_worker
from shared.messaging import add_messaging_tables
from simulator.client import percentile
from simulator.ledger import ItineraryRecord, Ledger, ReferralRecord
from simulator.receivers import SmsGateway, SmtpServer
from simulator.run import ROUND_THE_CLOCK_ENV, ClinicSimulation, SimulationPlan
from tests.proof.report import record, table
from tests.support import infra
from tests.support.clinic import bearer
from tests.support.processes import running_services

INBOX = add_messaging_tables(MetaData()).inbox
# How the patient's itinerary confirmation looks at the receivers, in every language.
CONFIRM_SUBJECTS = {subject for (name, _lang), (subject, _b) in TEMPLATES.items()
                    if name == "itinerary_booked"}
CONFIRM_SMS_OPENINGS = tuple(body.split("\n")[0] for (name, _l, ch), (_s, body)
                             in CHANNEL_TEMPLATES.items()
                             if name == "itinerary_booked" and ch == "sms")
CONFIRM_WAIT = 90.0  # seconds to wait for the last confirmations after the simulation


def ms(values: list[float], p: float) -> str:
    return f"{percentile(values, p) * 1000:.1f}"


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


def epoch(moment: datetime | str) -> float:
    """Naive datetimes from the databases are UTC."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


class KafkaBaseline:
    """Produce-to-consume latency of the bare broker, beside the clinic's load."""

    def __init__(self, bootstrap: str, topic: str, rate: float) -> None:
        self.bootstrap, self.topic, self.rate = bootstrap, topic, rate
        self.latencies: list[float] = []
        self.sent = 0
        self.failed = 0  # sends the broker did not acknowledge within 10 s
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
                try:  # a broker that stalls is a figure to show, not the end of the baseline
                    producer.send(self.topic, key=str(self.sent).encode(),
                                  value=json.dumps({"t": time.time()}).encode()).get(10)
                    self.sent += 1
                except KafkaError:
                    self.failed += 1
                self._stop.wait(1.0 / self.rate)
        finally:
            producer.close()

    def stop(self) -> None:
        self._drain_deadline = time.monotonic() + 10
        self._stop.set()
        self._producer_thread.join(30)
        self._consumer.join(30)


@dataclass
class PingStream:
    """Pings and simple GETs at a fixed rate: event delivery to every inbox, and the
    cheap endpoints' latency under the simulator's load."""

    clinic: dict[str, ServiceProcesses]
    services: list[str]
    admin: dict[str, str]
    rate: float
    lat: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    error_kinds: Counter = field(default_factory=Counter)  # "dashboard GET /x: 503"
    pings: dict[str, float] = field(default_factory=dict)  # event id -> wall time sent
    behind: int = 0

    def run(self, seconds: float) -> None:
        gets = {s: simple_gets(self.clinic[s].url, self.admin) for s in self.services}
        plan: list[tuple[str, str, str]] = []  # (service, method, path)
        for s in self.services:
            plan += [(s, "POST", "/ops/pings")] * 4
            plan += [(s, "GET", p) for p in gets[s]]
        tokens: queue.Queue = queue.Queue()
        lock = threading.Lock()

        def client() -> None:
            session = requests.Session()
            # As a browser does: a GET whose kept-alive connection the server closed at
            # that very moment (gunicorn's keepalive is 5 s) is sent again on a new one.
            session.mount("http://", HTTPAdapter(max_retries=Retry(
                total=1, connect=1, read=1, status=0, other=0,
                allowed_methods=frozenset({"GET"}), raise_on_status=False)))
            while (item := tokens.get()) is not None:
                service, method, path = item
                key = f"{service} {method} {path}"
                sent_wall, started = time.time(), time.perf_counter()
                try:
                    if method == "POST":
                        resp = session.post(self.clinic[service].url + path,
                                            json={"message": "bench"}, headers=self.admin,
                                            timeout=10)
                    else:
                        resp = session.get(self.clinic[service].url + path,
                                           headers=self.admin, timeout=10)
                    elapsed = time.perf_counter() - started
                    with lock:
                        self.lat[key].append(elapsed)
                        if resp.status_code >= 500:
                            self.errors[key] += 1
                            self.error_kinds[f"{key}: {resp.status_code}"] += 1
                        if method == "POST" and resp.status_code == 202:
                            self.pings[resp.json()["event_id"]] = sent_wall
                except requests.RequestException as exc:
                    with lock:
                        self.errors[key] += 1
                        self.error_kinds[f"{key}: {type(exc).__name__}"] += 1

        threads = [threading.Thread(target=client, daemon=True) for _ in range(8)]
        for t in threads:
            t.start()
        rng = random.Random(7)
        started = time.monotonic()
        issued = 0
        while (now := time.monotonic()) - started < seconds:
            due = started + issued / self.rate
            if due > now:
                time.sleep(due - now)
            elif tokens.qsize() > 16:
                self.behind += 1
            tokens.put(rng.choice(plan))
            issued += 1
        for _ in threads:
            tokens.put(None)
        for t in threads:
            t.join(30)

    def end_to_end(self, urls: dict[str, str]) -> list[float]:
        """Every ping until the last service's inbox has it (bounded wait)."""
        handled: dict[str, dict[str, datetime]] = {}
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            for service in self.services:
                engine = create_engine(urls[service], poolclass=NullPool)
                with engine.connect() as conn:
                    handled[service] = {r.event_id: r.handled_at for r in conn.execute(
                        select(INBOX.c.event_id, INBOX.c.handled_at).where(
                            INBOX.c.event_type == "system.ping"))}
                engine.dispose()
            if all(set(self.pings) <= set(h) for h in handled.values()):
                break
            time.sleep(1)
        e2e = []
        for event_id, sent in self.pings.items():
            times = [h[event_id] for h in handled.values() if event_id in h]
            if len(times) == len(self.services):
                e2e.append(max(epoch(t) for t in times) - sent)
        return e2e


@dataclass
class EventTimes:
    """From the topics themselves: when each referral's referral.accepted and its
    itinerary.proposed happened (envelope occurred_at), and when the relay put
    referral.accepted on Kafka (the record's timestamp)."""

    accepted: dict[str, float] = field(default_factory=dict)
    accepted_on_kafka: dict[str, float] = field(default_factory=dict)
    proposed: dict[str, float] = field(default_factory=dict)

    @classmethod
    def read(cls, settings: Settings, timeout: float = 60.0) -> EventTimes:
        out = cls()
        for topic in (topics.REFERRALS, topics.SCHEDULING):
            for r in read_records(settings, topic, timeout_ms=int(timeout * 1000)):
                out._see(r.value, r.timestamp / 1000)
        return out

    def _see(self, raw: bytes, on_kafka: float) -> None:
        try:
            event = json.loads(raw)
            kind, referral_id = event["type"], event["payload"].get("referral_id")
            when = epoch(event["occurred_at"])
        except (ValueError, KeyError, TypeError, AttributeError):
            return
        if not referral_id:
            return
        if kind == "referral.accepted":
            self.accepted.setdefault(referral_id, when)
            self.accepted_on_kafka.setdefault(referral_id, on_kafka)
        elif kind == "itinerary.proposed":
            self.proposed.setdefault(referral_id, when)


@dataclass
class Confirmations:
    """Per booked referral whose patient can be reached (email or SMS): the arrival of
    their itinerary confirmation, and the parts of the way there."""

    expected: list[str] = field(default_factory=list)  # referral ids
    arrived: dict[str, float] = field(default_factory=dict)  # referral id -> arrival
    e2e: list[float] = field(default_factory=list)
    to_proposed_event: list[float] = field(default_factory=list)
    to_proposed_seen: list[float] = field(default_factory=list)
    confirm_call: list[float] = field(default_factory=list)
    to_arrival: list[float] = field(default_factory=list)
    relay: list[float] = field(default_factory=list)
    from_ledger: int = 0  # accepted times taken from the ledger, the event not found


Booked = tuple[str, ReferralRecord, ItineraryRecord]


def booked_referrals(ledger: Ledger) -> list[Booked]:
    """(referral id, referral record, itinerary record) of every accepted referral whose
    itinerary was booked and whose patient gets an email or SMS (in-app gets neither)."""
    with ledger.lock:
        out = []
        for it in ledger.itineraries.values():
            ref = ledger.referrals.get(it.referral_id or "")
            patient = ledger.patients.get(it.patient_id)
            if it.status == "booked" and it.confirmed_at and ref and ref.accepted_at \
                    and patient and patient.channel in ("email", "sms"):
                out.append((ref.referral_id, ref, it))
        return out


def match_arrivals(ledger: Ledger, booked: list[Booked], smtp: SmtpServer,
                   sms: SmsGateway) -> dict[str, float]:
    """Referral id -> when the patient's confirmation arrived: the first confirmation to
    their address at or after the confirm (an address two patients share is claimed
    once per message, in the order they were confirmed)."""
    by_address: dict[str, list[float]] = defaultdict(list)
    for a, _message in smtp.snapshot():
        if a.subject in CONFIRM_SUBJECTS:
            by_address[a.to.strip().lower()].append(a.received_at)
    for body in sms.bodies():
        if str(body.get("message", "")).startswith(CONFIRM_SMS_OPENINGS):
            by_address[str(body.get("to", "")).strip()].append(body["received_at"])
    out = {}
    for referral_id, _ref, it in sorted(booked, key=lambda b: b[2].confirmed_at):
        patient = ledger.patients[it.patient_id]
        address = (patient.email or "").lower() if patient.channel == "email" \
            else (patient.phone or "")
        times = sorted(by_address.get(address, []))
        found = next((t for t in times if t >= it.confirmed_at - 5), None)
        if found is not None:
            by_address[address].remove(found)
            out[referral_id] = found
    return out


def confirmations(ledger: Ledger, smtp: SmtpServer, sms: SmsGateway, events: EventTimes,
                  wait: float) -> Confirmations:
    booked = booked_referrals(ledger)
    deadline = time.monotonic() + wait
    while True:
        arrived = match_arrivals(ledger, booked, smtp, sms)
        if len(arrived) == len(booked) or time.monotonic() > deadline:
            break
        time.sleep(1)
    c = Confirmations(expected=[b[0] for b in booked], arrived=arrived)
    for referral_id, ref, it in booked:
        accepted = events.accepted.get(referral_id)
        if accepted is None:
            accepted, c.from_ledger = ref.accepted_at, c.from_ledger + 1
        if referral_id in events.proposed:
            c.to_proposed_event.append(events.proposed[referral_id] - accepted)
        if referral_id in events.accepted_on_kafka:
            c.relay.append(events.accepted_on_kafka[referral_id] - accepted)
        if it.proposed_seen_at:
            c.to_proposed_seen.append(it.proposed_seen_at - accepted)
        if it.confirm_asked_at:
            c.confirm_call.append(it.confirmed_at - it.confirm_asked_at)
        if referral_id in arrived:
            c.e2e.append(arrived[referral_id] - accepted)
            c.to_arrival.append(arrived[referral_id] - it.confirmed_at)
    return c


def peak_rss(clinic: dict[str, ServiceProcesses]) -> list[list[str]]:
    """VmHWM (peak resident set) of every process, read while they still run: the
    gunicorn master, its workers (the largest, and their sum) and the service's worker."""
    def hwm(pid: int) -> int | None:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) // 1024
        except OSError:
            return None
        return None

    def children(pid: int) -> list[int]:
        try:
            return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except OSError:
            return []

    rows = []
    for service, procs in clinic.items():
        web = procs.processes.get("web")
        worker = procs.processes.get("worker")
        kids = [m for m in (hwm(c) for c in children(web.pid)) if m] if web else []
        rows.append([service, str(hwm(web.pid) if web else "-"),
                     f"{len(kids)} x max {max(kids)}" if kids else "-",
                     str(sum(kids)) if kids else "-",
                     str(hwm(worker.pid) if worker else "-")])
    return rows


def run(seconds: float, rate: float, referral_rate: float, backend: str, workers: int) -> int:
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
    print(f"bench_load: {len(services)} services under gunicorn ({workers} workers each) "
          f"+ workers, {backend}, broker {bootstrap}; simulator {referral_rate:g} "
          f"referrals/s + pings/GETs {rate:g}/s for {seconds:.0f}s; logs in {tmp / 'logs'}")
    smtp = SmtpServer().start()
    sms = SmsGateway().start()
    try:
        with running_services(services, database_url=database_url, topic_prefix=prefix,
                              log_dir=tmp / "logs", web_workers=workers,
                              extra_env={"KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                                         "LOG_LEVEL": "WARNING", "SMTP_HOST": "127.0.0.1",
                                         "SMTP_PORT": str(smtp.port),
                                         "SMS_GATEWAY_URL": sms.url,
                                         **ROUND_THE_CLOCK_ENV}) as clinic:
            return _drive(clinic, services, urls, settings, seconds, rate, referral_rate,
                          bootstrap, smtp, sms, backend)
    finally:
        sms.stop()
        smtp.stop()
        infra.delete_topics(bootstrap, prefix)
        for name in pg_names:
            infra.drop_pg_database(name)


def _drive(clinic: dict[str, ServiceProcesses], services: list[str], db_urls: dict[str, str],
           settings: Settings, seconds: float, rate: float, referral_rate: float,
           bootstrap: str, smtp: SmtpServer, sms: SmsGateway, backend: str) -> int:
    admin = bearer(settings, "admin")
    plan = SimulationPlan(patients=int(referral_rate * seconds) + 1, seconds=seconds,
                          rate=referral_rate, concurrency=12, short_pathways=True,
                          round_the_clock=True)
    sim = ClinicSimulation({s: clinic[s].url for s in clinic}, settings, plan)
    sim.open_clinic()  # seeding the staff is set-up, not load
    sim_wall: list[float] = []
    sim_error: list[BaseException] = []

    def simulate() -> None:
        t0 = time.monotonic()
        try:
            sim.run()
        except Exception as exc:  # shown below and failing the run, never a hang
            sim_error.append(exc)
        sim_wall.append(time.monotonic() - t0)

    baseline = KafkaBaseline(bootstrap, settings.topic("bench.baseline"), 10).start()
    pings = PingStream(clinic, services, admin, rate)
    started = time.monotonic()
    sim_thread = threading.Thread(target=simulate, daemon=True)
    sim_thread.start()
    pings.run(seconds)
    sim_thread.join(seconds + 600)
    if sim_thread.is_alive():
        sim.stop()
        sim_error.append(TimeoutError("simulation still running 10 min after admissions"))
    wall = time.monotonic() - started
    baseline.stop()
    memory = peak_rss(clinic)

    e2e = pings.end_to_end(db_urls)
    events = EventTimes.read(settings)
    conf = confirmations(sim.ledger, smtp, sms, events, CONFIRM_WAIT)

    # per endpoint: the simulator's calls and the pings'
    rows, all_lat, fivexx, total = [], [], 0, 0
    timings = sim.timings
    with timings.lock:
        sim_seconds = {k: list(v) for k, v in timings.seconds.items()}
        sim_status = {k: dict(v) for k, v in timings.statuses.items()}
    for key, v in sorted(sim_seconds.items()):
        bad = sum(n for code, n in sim_status[key].items()
                  if code == "error" or (isinstance(code, int) and code >= 500))
        rows.append([f"sim {key}", str(len(v)), f"{len(v) / wall:.1f}", ms(v, 50), ms(v, 95),
                     ms(v, 99), f"{max(v) * 1000:.0f}", str(bad)])
        all_lat += v
        fivexx += bad
        total += len(v)
    for key, v in sorted(pings.lat.items()):
        bad = pings.errors.get(key, 0)
        rows.append([key, str(len(v)), f"{len(v) / wall:.1f}", ms(v, 50), ms(v, 95),
                     ms(v, 99), f"{max(v) * 1000:.0f}", str(bad)])
        all_lat += v
        fivexx += bad
        total += len(v)
    print(table(rows, ["endpoint", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms",
                       "max ms", "5xx/err"]))
    if pings.error_kinds:
        print(f"errors: {dict(pings.error_kinds)}")
    print(f"throughput: {total} requests in {wall:.1f}s = {total / wall:.1f} req/s "
          f"(simulator {sum(map(len, sim_seconds.values()))}, pings/GETs "
          f"{sum(map(len, pings.lat.values()))} at target {rate:g}/s, {pings.behind} ticks "
          f"behind); HTTP p50 {ms(all_lat, 50)} ms p95 {ms(all_lat, 95)} ms "
          f"p99 {ms(all_lat, 99)} ms")
    ledger = sim.ledger
    summary = ledger.summary()
    minutes = (sim_wall[0] if sim_wall else wall) / 60
    out = ledger.outcomes
    print(f"clinic: {out['referral received']} referrals ({out['referral received'] / minutes:.1f}"
          f"/min, target {referral_rate * 60:.0f}/min), {out['itinerary booked']} itineraries "
          f"booked ({out['itinerary booked'] / minutes:.1f}/min), {out['note signed']} notes "
          f"signed ({out['note signed'] / minutes:.1f}/min) over {minutes * 60:.0f}s of "
          f"simulation")
    for key, value in summary.items():
        shown = dict(value) if hasattr(value, "items") else value
        print(f"ledger: {key}: {shown}")
    for line in ledger.failures[:20]:
        print(f"ledger: unexpected: {line}")
    for exc in sim_error:
        print(f"ledger: simulation stopped: {exc!r}")

    k = baseline.latencies
    lat_rows = [("Kafka produce->consume (bare, acks=all)", k),
                ("ping: POST -> last service's inbox", e2e),
                ("referral.accepted -> patient's confirmation", conf.e2e),
                ("  accepted -> on Kafka (outbox relay)", conf.relay),
                ("  accepted -> itinerary.proposed event", conf.to_proposed_event),
                ("  accepted -> proposal seen by scheduler", conf.to_proposed_seen),
                ("  scheduler's confirm (POST .../confirm)", conf.confirm_call),
                ("  confirmed -> message arrived (system)", conf.to_arrival)]
    rows = []
    for name, v in lat_rows:
        ratio = [f"{percentile(v, p) / max(percentile(k, p), 1e-6):.0f}x"
                 if v and k and v is not k else "" for p in (50, 99)]
        rows.append([name, str(len(v)), ms(v, 50), ms(v, 95), ms(v, 99), *ratio])
    print(table(rows, ["latency", "n", "p50 ms", "p95 ms", "p99 ms", "p50/Kafka",
                       "p99/Kafka"]))
    print(table(memory, ["service", "gunicorn master MB", "web workers MB", "web sum MB",
                         "worker MB"]))
    print(f"pings: {len(pings.pings)} accepted, {len(e2e)} in all {len(services)} inboxes; "
          f"Kafka baseline {baseline.sent} sent, {baseline.failed} not acknowledged in 10 s")
    print(f"confirmations: {len(conf.arrived)} of {len(conf.expected)} booked patients "
          f"(email or SMS) received theirs; {len(smtp.snapshot())} emails and "
          f"{len(sms.bodies())} SMS in all; accepted time from the ledger for "
          f"{conf.from_ledger}")

    record("load", f"HTTP requests (simulator + pings) for {wall:.0f}s without 5xx "
                   f"({backend})",
           tried=total, held=total - fivexx,
           detail=f"{total / wall:.1f} req/s, p99 {percentile(all_lat, 99) * 1000:.0f} ms")
    record("load", f"pings delivered to every service's inbox ({backend})",
           tried=len(pings.pings),
           held=len(e2e), detail=f"e2e p50 {ms(e2e, 50)} ms p99 {ms(e2e, 99)} ms; "
                                 f"kafka p50 {ms(k, 50)} ms p99 {ms(k, 99)} ms")
    record("load", f"booked patients received their itinerary confirmation ({backend})",
           tried=len(conf.expected), held=len(conf.arrived),
           detail=f"accepted->message p50 {percentile(conf.e2e, 50):.2f} s "
                  f"p99 {percentile(conf.e2e, 99):.2f} s")
    journeys = len(ledger.patients)
    record("load", f"simulated journeys at {referral_rate:g} referrals/s without a failure "
                   f"({backend})",
           tried=journeys, held=journeys - min(journeys, len(ledger.failures) + len(sim_error)),
           detail=f"{out['itinerary booked']} booked, {out['note signed']} notes signed, "
                  f"{len(ledger.failures)} failures")
    ok = (fivexx == 0 and pings.pings and len(e2e) == len(pings.pings)
          and len(conf.arrived) == len(conf.expected) and conf.expected
          and not ledger.failures and not sim_error)
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float,
                        default=float(os.environ.get("BENCH_SECONDS", 60)))
    parser.add_argument("--referral-rate", type=float,
                        default=float(os.environ.get("BENCH_REFERRAL_RATE", 2)),
                        help="new referrals per second (the simulator)")
    parser.add_argument("--rate", type=float, default=float(os.environ.get("BENCH_RATE", 8)),
                        help="pings and simple GETs per second")
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"),
                        default=os.environ.get("BENCH_BACKEND", "sqlite"),
                        help="both: one run on each, one after the other")
    parser.add_argument("--web-workers", type=int, default=2)
    args = parser.parse_args()
    backends = ("sqlite", "postgres") if args.backend == "both" else (args.backend,)
    results = [run(min(args.seconds, 600), min(args.rate, 500), min(args.referral_rate, 50),
                   backend, args.web_workers) for backend in backends]
    return max(results)


if __name__ == "__main__":
    raise SystemExit(main())
