"""FHIR intake against native intake, both through gunicorn in the same run, and the FHIR
Appointment search at 10,000 appointments.

- Native: POST /referrals (JSON, Idempotency-Key) to the referrals service.
- FHIR: POST /fhir (a transaction Bundle) to the gateway, which parses it and hands it on
  to the same POST /referrals. Target: at least 0.5x the native rate.
- Search: the gateway's read model holding --appointments appointments (applied through
  its own event handlers), then GET /fhir/Appointment by patient and by a week's dates.

Prints rates, the ratio and the searches' p50/p95. Options: --referrals (each kind,
default 200), --concurrency (8), --appointments (10000), --backend sqlite|postgres,
--web-workers (2).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

from services.fhir import handlers
from services.fhir.db import Resources
from services.fhir.wiring import build_runtime
from shared import topics
from shared.config import Settings
from shared.kafka import ensure_topics
from simulator.client import percentile
from tests.support import infra
from tests.support.clinic import bearer
from tests.support.fhir import referral_bundle
from tests.support.processes import running_services

START = datetime(2027, 1, 4, 8, 0, tzinfo=UTC)


def native_body(i: int) -> dict:
    return {
        "patient": {"id": f"bench-pat-{i}", "name": "Ann Whitfield",
                    "date_of_birth": "1958-07-14",
                    "contact": {"email": "ann.whitfield@example.org"}},
        "referrer": {"name": "Dr Priya Patel", "organisation": "Elm Street Surgery"},
        "condition": "diabetic_neuropathy", "pain_duration": {"value": 9, "unit": "months"},
        "reason": "Burning pain in both feet despite pregabalin; poor sleep.",
        "urgency_requested": "soon",
        "attachments": [{"filename": "gp-letter.pdf", "content_type": "application/pdf",
                         "size_bytes": 24}],
    }


def timed_posts(n: int, concurrency: int, post) -> tuple[float, list[float]]:  # type: ignore[no-untyped-def]
    latencies: list[float] = []

    def one(i: int) -> None:
        began = time.perf_counter()
        resp = post(i)
        latencies.append(time.perf_counter() - began)
        if resp.status_code != 201:
            raise RuntimeError(f"{resp.status_code}: {resp.text[:300]}")

    began = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(n)))
    return time.perf_counter() - began, latencies


def seed_appointments(database_url: str, count: int) -> list[str]:
    """The read model with `count` appointments of count/10 patients, through the
    gateway's own handlers (as its worker would apply them)."""
    runtime = build_runtime(Settings.for_service("fhir", database_url=database_url,
                                                 kafka_enabled=False))
    patients = [f"bench-pt-{n}" for n in range(max(1, count // 10))]
    at = datetime.now(UTC)
    with runtime.db.transaction() as s:
        repo = Resources(s)
        for n in range(count):
            start = START + timedelta(days=n // 40, minutes=15 * (n % 40))
            handlers.on_visit(repo, "appointment.booked", {
                "appointment_id": f"bench-appt-{n}", "patient_id": patients[n % len(patients)],
                "provider_id": f"prov-{n % 12}", "provider_name": "Dr Okafor",
                "discipline": "pain_medicine", "room_id": None, "room_name": "",
                "start": start.isoformat(), "end": (start + timedelta(minutes=45)).isoformat(),
                "referral_id": None}, at)
    return patients


def timed_gets(url: str, params: list[dict], headers: dict) -> list[float]:
    http = requests.Session()
    out = []
    for p in params:
        began = time.perf_counter()
        resp = http.get(url, params=p, headers=headers, timeout=30)
        out.append(time.perf_counter() - began)
        if resp.status_code != 200:
            raise RuntimeError(f"{resp.status_code}: {resp.text[:300]}")
    return out


def run(n: int, concurrency: int, appointments: int, backend: str, workers: int) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="paincare-bench-fhir-"))
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

    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    settings = Settings.for_service("bench", database_url="sqlite://", topic_prefix=prefix,
                                    kafka_bootstrap=bootstrap)
    ensure_topics(settings, topics.ALL_TOPICS)
    scheduler = bearer(settings, "scheduler")
    env = {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "LOG_LEVEL": "WARNING"}
    print(f"bench_fhir: {n} referrals each way, {concurrency} at a time, {backend}, "
          f"{workers} gunicorn workers each; logs in {tmp / 'logs'}")
    try:
        with running_services(["referrals"], database_url=database_url, topic_prefix=prefix,
                              log_dir=tmp / "logs", web_workers=workers,
                              extra_env=env) as core, \
                running_services(["fhir"], database_url=database_url, topic_prefix=prefix,
                                 log_dir=tmp / "logs", web_workers=workers,
                                 extra_env={**env, "REFERRALS_URL": core["referrals"].url}
                                 ) as gw:
            native_url = core["referrals"].url + "/referrals"
            fhir_url = gw["fhir"].url + "/fhir"
            http = requests.Session()
            run_id = uuid.uuid4().hex[:8]
            native_wall, native_lat = timed_posts(n, concurrency, lambda i: http.post(
                native_url, json=native_body(i), timeout=30,
                headers={**scheduler, "Idempotency-Key": f"{run_id}-native-{i}"}))
            fhir_wall, fhir_lat = timed_posts(n, concurrency, lambda i: http.post(
                fhir_url, timeout=30, headers={**scheduler,
                                               "Content-Type": "application/fhir+json"},
                json=referral_bundle(bundle_value=f"{run_id}-b{i}",
                                     request_value=f"{run_id}-sr{i}",
                                     nhs_number=str(9_100_000_000 + i))))
            native_rate, fhir_rate = n / native_wall, n / fhir_wall
            print(f"native intake: {native_rate:.1f} referrals/s "
                  f"(p95 {percentile(native_lat, 95) * 1000:.0f} ms)")
            print(f"FHIR intake:   {fhir_rate:.1f} Bundles/s "
                  f"(p95 {percentile(fhir_lat, 95) * 1000:.0f} ms)")
            ratio = fhir_rate / native_rate
            print(f"FHIR / native: {ratio:.2f}x (target >= 0.5x)")

            began = time.perf_counter()
            patients = seed_appointments(urls["fhir"], appointments)
            print(f"read model: {appointments} appointments of {len(patients)} patients "
                  f"applied in {time.perf_counter() - began:.1f}s")
            by_patient = timed_gets(fhir_url + "/Appointment",
                                    [{"patient": patients[(i * 37) % len(patients)]}
                                     for i in range(200)], scheduler)
            days = max(1, appointments // 40)
            by_week = timed_gets(fhir_url + "/Appointment", [{
                "date": [f"ge{(START + timedelta(days=(i * 7) % days)).date()}",
                         f"lt{(START + timedelta(days=(i * 7) % days + 7)).date()}"],
                "_count": "20"} for i in range(200)], scheduler)
            for label, lat in (("by patient", by_patient), ("by week, 20 a page", by_week)):
                print(f"GET /fhir/Appointment {label}: p50 "
                      f"{percentile(lat, 50) * 1000:.1f} ms, p95 "
                      f"{percentile(lat, 95) * 1000:.1f} ms")
            return 0 if ratio >= 0.5 else 1
    finally:
        infra.delete_topics(bootstrap, prefix)
        for name in pg_names:
            infra.drop_pg_database(name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--referrals", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--appointments", type=int, default=10_000)
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--web-workers", type=int, default=2)
    args = parser.parse_args()
    return run(args.referrals, args.concurrency, args.appointments, args.backend,
               args.web_workers)


if __name__ == "__main__":
    sys.exit(main())
