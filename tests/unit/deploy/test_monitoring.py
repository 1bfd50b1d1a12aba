"""Prometheus' view of PainCare (deploy/prometheus/): promtool checks the syntax and runs
the alerts' unit tests in `make proof-deploy`; these hold the config to the services."""

from __future__ import annotations

import yaml

from shared.launcher import PORTS, available_services
from tests.unit.deploy import support


def test_one_machine_scrapes_every_services_web() -> None:
    """`PainCareServiceDown` only knows of targets that are scraped: the console (8006) was
    left out, so on one machine nobody would be told it was down."""
    config = yaml.safe_load((support.ROOT / "deploy" / "prometheus" / "prometheus.yml")
                            .read_text())
    [local] = [j for j in config["scrape_configs"] if j["job_name"] == "paincare-local"]
    targets = {t for group in local["static_configs"] for t in group["targets"]}
    expected = {f"127.0.0.1:{PORTS[s]}" for s in available_services()}
    assert expected <= targets, f"not scraped: {sorted(expected - targets)}"
