"""The Prometheus scrape config and the Grafana dashboard in deploy/ read series that the
services really expose, and cover what an admin watches on the dashboard page."""

from __future__ import annotations

import json
import re

import yaml
from prometheus_client.metrics import MetricWrapperBase

from shared import metrics
from shared.config import ROOT
from shared.launcher import PORTS, available_services

SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def exposed_series() -> set[str]:
    names = set()
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            for family in value.describe():
                names.update(family.name + s for s in SUFFIXES[family.type])
    return names


def paincare_series(text: str) -> set[str]:
    return set(re.findall(r"\bpaincare_[a-z_]+", text))


def test_prometheus_scrapes_every_service_locally_and_on_a_cluster():
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    local = jobs["paincare-local"]["static_configs"][0]["targets"]
    # Every service with a web process is scraped, the console too (it has no topic).
    assert "console" in available_services()
    assert sorted(local) == sorted(f"127.0.0.1:{PORTS[s]}" for s in available_services())
    assert {"paincare-web", "paincare-worker", "kafka-exporter"} <= jobs.keys()
    for rules_file in config["rule_files"]:
        rules = yaml.safe_load((ROOT / "deploy/prometheus" / rules_file).read_text())
        exprs = " ".join(r["expr"] for g in rules["groups"] for r in g["rules"])
        assert paincare_series(exprs) <= exposed_series()


def test_the_grafana_dashboard_shows_what_the_services_expose():
    board = json.loads((ROOT / "deploy/grafana/paincare.json").read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    used = paincare_series(" ".join(exprs))
    assert used <= exposed_series(), used - exposed_series()
    for needed in ("paincare_http_requests_total", "paincare_http_request_seconds_bucket",
                   "paincare_http_errors_total", "paincare_events_produced_total",
                   "paincare_events_consumed_total", "paincare_event_handler_seconds_bucket",
                   "paincare_dead_letters_total", "paincare_outbox_backlog"):
        assert needed in used
    assert any("kafka_consumergroup_lag" in e for e in exprs)
    assert all(p["datasource"]["uid"] == "${datasource}" for p in board["panels"]
               if p["type"] != "row")
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
