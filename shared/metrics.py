"""Prometheus metrics every service exposes at /metrics. Under gunicorn, set
PROMETHEUS_MULTIPROC_DIR so that all workers' figures are summed."""

from __future__ import annotations

import os

from prometheus_client import REGISTRY as DEFAULT_REGISTRY
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

HTTP_REQUESTS = Counter("paincare_http_requests_total", "HTTP requests",
                        ["service", "method", "route", "status"])
HTTP_SECONDS = Histogram("paincare_http_request_seconds", "HTTP request latency",
                         ["service", "method", "route"],
                         buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
HTTP_ERRORS = Counter("paincare_http_errors_total", "HTTP responses with status >= 500",
                      ["service", "route"])
EVENTS_PRODUCED = Counter("paincare_events_produced_total", "Events published by the relay",
                          ["service", "type"])
EVENTS_CONSUMED = Counter("paincare_events_consumed_total", "Events applied by consumers",
                          ["service", "type"])
HANDLER_SECONDS = Histogram("paincare_event_handler_seconds", "Event handler latency",
                            ["service", "type"])
DEAD_LETTERS = Counter("paincare_dead_letters_total", "Messages sent to a dead-letter topic",
                       ["service"])
OUTBOX_BACKLOG = Gauge("paincare_outbox_backlog", "Outbox rows not yet published",
                       ["service"], multiprocess_mode="max")
KAFKA_REACHABLE = Gauge("paincare_kafka_reachable",
                        "1 when a bootstrap server answered at scrape time, else 0",
                        ["service"], multiprocess_mode="mostrecent")


def exposition() -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        # prometheus_client leaves this constructor unannotated
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(DEFAULT_REGISTRY)
