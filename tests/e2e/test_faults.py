"""Faults in the middle of the clinic's work, and afterwards every record accounted for.

Every service runs as in production (gunicorn web, worker process) on a private broker
(this suite stops it; it never touches a broker others use), with a real SMTP server and
SMS gateway for the notifier. Two streams run through each fault:
- the clinic simulator (`simulator/`): patients referred, triaged, accepted, rejected,
  withdrawn; itineraries proposed by the services themselves and confirmed or declined;
  visits called off, attended or missed; notes written and signed;
- a pinger: `POST /ops/pings` round-robin over the services, each a system.ping that every
  service's worker records in its inbox.
Faults: each worker SIGKILLed and restarted, the broker stopped and restarted, a service's
database unavailable for a while, a poison event. After each, two reconciliations:
`simulator.reconcile` accounts for every referral, appointment, itinerary, note and
notification against the simulator's ledger, the services' databases and the events on
the topics (each exactly once, every effect applied once, no double booking, every sent
email received); the ping one checks every ping in every inbox exactly once, every
acknowledged ping on the topic, no outbox row left unpublished.

Short form in the normal suite; `make proof` (PROOF_LONG=1) streams longer, kills every
worker twice and makes every service's database unavailable.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from kafka import KafkaProducer
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from shared import topics
from shared.config import Settings
from shared.launcher import ServiceProcesses, available_services, has_worker
from simulator.client import Timings
from simulator.journeys import Staff
from simulator.ledger import Ledger
from simulator.receivers import SmsGateway, SmtpServer
from simulator.reconcile import inbox_counts, unpublished
from simulator.reconcile import reconcile as reconcile_clinic
from simulator.run import ROUND_THE_CLOCK_ENV, ClinicSimulation, SimulationPlan
from tests.proof.broker import PrivateBroker, private_broker
from tests.proof.report import long_form, record
from tests.support import infra
from tests.support.clinic import bearer, read_topic
from tests.support.processes import running_services

# Each wait inside is bounded (journeys 300 s, reconciliation 120 s, missed visits 420 s);
# together, on a loaded 2-core machine, they outlast the suite's default of 300 s a test.
pytestmark = [pytest.mark.kafka, pytest.mark.timeout(1200)]

SERVICES = [s for s in available_services() if has_worker(s)]
RECONCILE_SECONDS = 120.0
MISSED_FIRST_VISITS = 2
# Missed visits are recorded once they have begun: the first phase's begin on the clinic's
# five-minute grid, within minutes; the last phase waits at most this long for them.
AWAIT_MISSED_SECONDS = 420.0


@dataclass
class Attempt:
    n: int
    service: str
    status: int | None
    event_id: str | None


@dataclass
class Pinger:
    """Streams pings round-robin over the services from a thread, recording each try."""

    clinic: dict[str, ServiceProcesses]
    headers: dict[str, str]
    rate: float = 25.0
    attempts: list[Attempt] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _run(self) -> None:
        names = sorted(self.clinic)
        session = requests.Session()
        n = len(self.attempts)
        while not self._stop.is_set():
            service = names[n % len(names)]
            status = event_id = None
            try:
                resp = session.post(self.clinic[service].url + "/ops/pings",
                                    json={"message": f"fault-{n}"}, headers=self.headers,
                                    timeout=5)
                status = resp.status_code
                if status == 202:
                    event_id = resp.json()["event_id"]
            except requests.RequestException:
                pass
            self.attempts.append(Attempt(n, service, status, event_id))
            n += 1
            self._stop.wait(1.0 / self.rate)

    def start(self) -> Pinger:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(30)

    @property
    def acked(self) -> set[str]:
        return {a.event_id for a in self.attempts if a.event_id}



@dataclass
class Clinic:
    """The running services, their databases and the private broker."""

    procs: dict[str, ServiceProcesses]
    db_urls: dict[str, str]
    broker: PrivateBroker
    settings: Settings  # topic prefix and bootstrap, for reading topics
    headers: dict[str, str]
    mailbox: SmtpServer
    ledger: Ledger = field(default_factory=Ledger)
    timings: Timings = field(default_factory=Timings)
    phases: int = 0
    staff: Staff | None = None

    def engine(self, service: str):  # type: ignore[no-untyped-def]
        return create_engine(self.db_urls[service], poolclass=NullPool)

    def simulation(self, seconds: float, rate: float, missed_first_visits: int = 0
                   ) -> ClinicSimulation:
        """One phase of simulated patients (new ids per phase) on the shared ledger."""
        self.phases += 1
        plan = SimulationPlan(patients=10_000, seconds=seconds, rate=rate, concurrency=6,
                              seed=self.phases, run_id=f"p{self.phases}",
                              missed_first_visits=missed_first_visits)
        urls = {s: p.url for s, p in self.procs.items()}
        simulation = ClinicSimulation(urls, self.settings, plan, ledger=self.ledger,
                                      timings=self.timings)
        simulation.staff = self.staff
        return simulation


@dataclass
class Reconciliation:
    pings_sent: int
    acked: int
    on_topic: int
    distinct_on_topic: int
    republished: int
    inbox: dict[str, int]
    missing: dict[str, int]
    unpublished: dict[str, int]
    dead_letters: dict[str, int]
    seconds: float

    @property
    def ok(self) -> bool:
        return not any(self.missing.values()) and not any(self.unpublished.values())


def _ping_ids_on_topic(clinic: Clinic) -> Counter:
    return Counter(v["id"] for _k, _h, v in read_topic(clinic.settings, topics.SYSTEM)
                   if isinstance(v, dict) and v.get("type") == "system.ping"
                   and isinstance(v.get("id"), str))


def _inbox(clinic: Clinic, service: str) -> tuple[set[str], int]:
    engine = clinic.engine(service)
    try:
        held = inbox_counts(engine, f"{service}.system", "system.ping")
    finally:
        engine.dispose()
    return set(held), sum(held.values())


def _unpublished(clinic: Clinic, service: str) -> int:
    engine = clinic.engine(service)
    try:
        return unpublished(engine)
    finally:
        engine.dispose()


def reconcile(clinic: Clinic, pinger: Pinger, label: str) -> Reconciliation:
    """Wait (bounded) for the pipe to settle, then account for every record."""
    started = time.monotonic()
    deadline = started + RECONCILE_SECONDS
    while True:
        on_topic = _ping_ids_on_topic(clinic)
        inboxes = {s: _inbox(clinic, s) for s in clinic.procs}
        missing = {s: len(set(on_topic) - ids) for s, (ids, _n) in inboxes.items()}
        unpublished = {s: _unpublished(clinic, s) for s in clinic.procs}
        settled = pinger.acked <= set(on_topic) and not any(missing.values()) \
            and not any(unpublished.values())
        if settled or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    letters = {s: sum(1 for _k, h, _v in read_topic(clinic.settings, topics.dead_letter(s))
                      if h.get("dlq.consumer") == f"{s}.system")
               for s in clinic.procs}
    result = Reconciliation(
        pings_sent=len(pinger.attempts), acked=len(pinger.acked),
        on_topic=sum(on_topic.values()), distinct_on_topic=len(on_topic),
        republished=sum(on_topic.values()) - len(on_topic),
        inbox={s: n for s, (_ids, n) in inboxes.items()},
        missing={**missing, "topic (acked pings)": len(pinger.acked - set(on_topic))},
        unpublished=unpublished, dead_letters=letters,
        seconds=round(time.monotonic() - started, 1))
    extra = {s: n - result.distinct_on_topic for s, n in result.inbox.items()
             if n != result.distinct_on_topic}
    for service, (ids, n) in inboxes.items():
        assert n == len(ids), f"{service}: an event recorded twice in its inbox"
    record("faults", f"{label}: every ping in every inbox exactly once",
           tried=result.distinct_on_topic * len(clinic.procs),
           held=sum(result.distinct_on_topic - m for s, m in missing.items()),
           detail=f"sent={result.pings_sent} acked={result.acked} on_topic={result.on_topic} "
                  f"republished={result.republished} dlq={sum(letters.values())} "
                  f"settled_in={result.seconds}s")
    record("faults", f"{label}: every acknowledged ping on the topic, outboxes drained",
           tried=result.acked + len(clinic.procs),
           held=result.acked - result.missing["topic (acked pings)"]
           + sum(1 for n in unpublished.values() if n == 0))
    assert result.ok, f"{label}: {result}"
    assert not extra or all(v <= 0 for v in extra.values()), \
        f"{label}: inbox rows for events that are not on the topic: {extra}"
    return result


@pytest.fixture
def clinic(backend: str, new_database_url, tmp_path: Path) -> Iterator[Clinic]:
    """Every service on its own databases and a private broker, on this test's topics."""
    broker = private_broker(Path("/tmp") / f"pc-faults-{tmp_path.name[-12:]}-{time.time_ns()}")
    prefix = f"f{time.time_ns() % 10**10}."
    settings = Settings.for_service("tests", topic_prefix=prefix, database_url="sqlite://",
                                    kafka_bootstrap=broker.bootstrap)
    from shared.kafka import ensure_topics

    ensure_topics(settings, topics.ALL_TOPICS)
    urls: dict[str, str] = {}

    def database_url(service: str) -> str:
        urls[service] = new_database_url(service)
        return urls[service]

    mailbox, sms = SmtpServer().start(), SmsGateway().start()
    env = {"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "CONSUMER_MAX_ATTEMPTS": "3",
           "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(mailbox.port),
           "SMS_GATEWAY_URL": sms.url, "NOTIFIER_POLL_SECONDS": "0.2", **ROUND_THE_CLOCK_ENV}
    try:
        with running_services(SERVICES, database_url=database_url, topic_prefix=prefix,
                              log_dir=tmp_path / "logs", extra_env=env,
                              web_workers=1) as procs:
            clinic = Clinic(procs, urls, broker, settings, bearer(settings, "admin"), mailbox)
            clinic.staff = clinic.simulation(0, 1).open_clinic()
            yield clinic
    finally:
        broker.destroy()
        mailbox.stop()
        sms.stop()


def _stream(clinic: Clinic, seconds: float, during: Callable[[], None] | None = None,
            pinger: Pinger | None = None, missed_first_visits: int = 0) -> Pinger:
    """Simulated patients and pings for `seconds`, doing `during` (the fault) in the middle;
    returns once every journey begun has ended (through the fault's aftermath)."""
    pinger = pinger or Pinger(clinic.procs, clinic.headers)
    simulation = clinic.simulation(seconds, rate=1.5 if long_form() else 1.0,
                                   missed_first_visits=missed_first_visits)
    patients = threading.Thread(target=simulation.run, daemon=True)
    patients.start()
    pinger.start()
    try:
        time.sleep(seconds / 2)
        if during:
            during()
        time.sleep(seconds / 2)
    finally:
        pinger.stop()
        patients.join(300)
    assert not patients.is_alive(), "simulated journeys still running after 300 s"
    return pinger


def reconcile_patients(clinic: Clinic, label: str) -> None:
    """Every referral, itinerary, appointment, note and notification accounted for."""
    checks = reconcile_clinic(clinic.ledger, clinic.db_urls, clinic.settings,
                              mailbox=clinic.mailbox)
    summary = clinic.ledger.summary()
    print(f"[faults] {label}: simulated so far {summary}")
    for check in checks:
        record("faults", f"{label}: {check.name}", tried=check.tried, held=check.held,
               detail=check.detail)
    failed = [c for c in checks if not c.ok]
    assert not failed, f"{label}: " + "; ".join(f"{c.name}: {c.detail}" for c in failed)
    # The simulated staff had every answer they expected (faults give 503s and
    # retries, never a wrong answer or a lost action).
    assert not clinic.ledger.failures, clinic.ledger.failures[:10]


def see_out_missed_visits(clinic: Clinic, backend: str) -> None:
    """The front desk records each no-show once its visit has begun; the reconciliation
    after it then holds every appointment.no_show to exactly one event."""
    planned = sum(1 for v in clinic.ledger.visits.values() if v.plan == "no_show")
    left = clinic.simulation(0, 1).await_missed_visits(AWAIT_MISSED_SECONDS)
    recorded = clinic.ledger.outcomes["visit noshow"]
    record("faults", f"missed visits recorded as no-shows once begun ({backend})",
           tried=recorded + left, held=recorded,
           detail=f"planned={planned} (the later ones begin after the run) still_booked={left}")
    assert left == 0, f"{left} missed visits were never recorded as no-shows"
    assert recorded >= 1, "no visit was missed in the whole run: the no-show path went untried"


# -------------------------------------------------------------------------- faults

def kill_workers(clinic: Clinic, rounds: int) -> Callable[[], None]:
    def fault() -> None:
        for _ in range(rounds):
            for service, procs in clinic.procs.items():
                procs.kill("worker")  # SIGKILL, to the whole process group
                time.sleep(0.3)
                procs.start_worker()
                print(f"[faults] SIGKILLed and restarted {service}'s worker")
    return fault


def restart_broker(clinic: Clinic, down_seconds: float) -> Callable[[], None]:
    def fault() -> None:
        clinic.broker.stop()
        print(f"[faults] broker stopped for {down_seconds}s")
        time.sleep(down_seconds)
        clinic.broker.start()
        print("[faults] broker started")
    return fault


def database_away(clinic: Clinic, service: str, seconds: float) -> Callable[[], None]:
    """PostgreSQL: refuse connections and end the live ones; SQLite: hold the write lock."""
    url = clinic.db_urls[service]

    def fault() -> None:
        parsed = make_url(url)
        if parsed.get_backend_name() == "postgresql":
            admin = create_engine(infra.PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
            name = parsed.database
            with admin.connect() as conn:
                conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
                conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                  "WHERE datname = :n AND pid <> pg_backend_pid()"), {"n": name})
                print(f"[faults] {service}'s PostgreSQL database refuses connections")
                time.sleep(seconds)
                conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
            admin.dispose()
        else:
            import sqlite3

            conn = sqlite3.connect(parsed.database, timeout=30, isolation_level=None)
            conn.execute("BEGIN EXCLUSIVE")
            print(f"[faults] {service}'s SQLite database locked exclusively")
            time.sleep(seconds)
            conn.execute("ROLLBACK")
            conn.close()
        print(f"[faults] {service}'s database is back after {seconds}s")
    return fault


def poison(clinic: Clinic) -> Callable[[], None]:
    def fault() -> None:
        producer = KafkaProducer(bootstrap_servers=clinic.broker.bootstrap, acks="all")
        topic = clinic.settings.topic(topics.SYSTEM)
        for value in (b"\xff poison", b'{"type": "system.ping", "version": 1}'):
            producer.send(topic, key=b"poison", value=value).get(30)
        producer.close()
        print("[faults] two poison events on system.events")
    return fault


# --------------------------------------------------------------------------- tests

def test_faults_mid_stream_lose_nothing_and_duplicate_nothing(clinic: Clinic,
                                                              backend: str) -> None:
    long = long_form()
    seconds = 12.0 if long else 5.0
    results: dict[str, Reconciliation] = {}

    # The first stream books into an empty clinic: its first patients' first visits begin
    # within minutes, so the ones who miss them are seen out before the last reconciliation.
    pinger = _stream(clinic, seconds, kill_workers(clinic, rounds=2 if long else 1),
                     missed_first_visits=MISSED_FIRST_VISITS)
    results["SIGKILL workers"] = reconcile(clinic, pinger, f"SIGKILL each worker ({backend})")
    reconcile_patients(clinic, f"SIGKILL each worker ({backend})")

    if long or backend == "sqlite":  # the broker does not care which database; short form once
        pinger = _stream(clinic, seconds, restart_broker(clinic, 8.0 if long else 3.0), pinger)
        results["broker restart"] = reconcile(clinic, pinger, f"broker stop/start ({backend})")
        reconcile_patients(clinic, f"broker stop/start ({backend})")

    away = sorted(clinic.procs) if long else [sorted(clinic.procs)[-1]]
    for service in away:
        pinger = _stream(clinic, seconds, database_away(clinic, service, 8.0 if long else 4.0),
                         pinger)
        results[f"{service} db away"] = reconcile(
            clinic, pinger, f"{service} database unavailable ({backend})")
        reconcile_patients(clinic, f"{service} database unavailable ({backend})")

    pinger = _stream(clinic, seconds, poison(clinic), pinger)
    see_out_missed_visits(clinic, backend)
    results["poison"] = reconcile(clinic, pinger, f"poison event ({backend})")
    reconcile_patients(clinic, f"poison event ({backend})")
    letters = {s: n for s, n in results["poison"].dead_letters.items()}
    record("faults", f"poison event dead-lettered by every service ({backend})",
           tried=2 * len(clinic.procs), held=sum(min(n, 2) for n in letters.values()),
           detail=str(letters))
    assert all(n == 2 for n in letters.values()), letters
    statuses = Counter(a.status for a in pinger.attempts)
    print(f"[faults] ping answers over the whole run: {dict(statuses)}")
    assert statuses[202] > 0
