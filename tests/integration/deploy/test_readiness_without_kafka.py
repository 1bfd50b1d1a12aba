"""Issue 21, defect 9: a web pod's readiness follows its database, not Kafka. Writes stage
their events in the outbox, so a broker outage must not take the APIs out of service;
Kafka's state shows in /metrics instead (and on the dashboard)."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from importlib import import_module

import pytest

from shared.config import Settings


def _closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("service", ["referrals", "notes", "dashboard"])
def test_ready_while_kafka_is_down_and_metrics_say_kafka_is_away(
        service: str, settings_for: Callable[..., Settings]) -> None:
    settings = settings_for(service, kafka_enabled=True,
                            kafka_bootstrap=f"127.0.0.1:{_closed_port()}")
    runtime = import_module(f"services.{service}.wiring").build_runtime(settings)
    app = import_module(f"services.{service}.app").create_app(runtime=runtime)
    client = app.test_client()

    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.get_json()
    assert ready.get_json()["status"] == "ready"

    text = client.get("/metrics").get_data(as_text=True)
    found = re.search(rf'^paincare_kafka_reachable\{{service="{service}"\}} (\S+)$', text, re.M)
    assert found and float(found.group(1)) == 0.0, "the broker's outage shows in the metrics"


def test_still_unready_when_the_database_is_away(settings_for: Callable[..., Settings]) -> None:
    settings = settings_for("referrals")
    runtime = import_module("services.referrals.wiring").build_runtime(settings)
    app = import_module("services.referrals.app").create_app(runtime=runtime)
    runtime.db.ping = _refuse  # type: ignore[method-assign]
    resp = app.test_client().get("/readyz")
    assert resp.status_code == 503
    assert resp.mimetype == "application/problem+json"
    assert "database" in resp.get_json()["failures"]


def _refuse() -> None:
    raise ConnectionError("database not reachable")
