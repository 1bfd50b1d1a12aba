"""schemathesis and hostile strings against every live service's OpenAPI document: no
500s, and every error is application/problem+json.

Short form here (a few examples per operation, a bounded time per service); `make proof`
sets PROOF_LONG=1 for many more examples.
"""

from __future__ import annotations

import os

import pytest

from shared.config import Settings
from shared.launcher import available_services
from tests.proof.fuzz import fuzz_service
from tests.proof.report import long_form, record
from tests.support.clinic import bearer
from tests.support.processes import running_services

pytestmark = pytest.mark.kafka


def test_every_operation_survives_generated_and_hostile_input(new_database_url, topic_prefix,
                                                              tmp_path, backend) -> None:
    services = available_services()
    if backend != "sqlite" and not long_form():
        pytest.skip("short form fuzzes on SQLite only; make proof runs PostgreSQL too")
    examples = int(os.environ.get("PROOF_FUZZ_EXAMPLES", 40 if long_form() else 6))
    budget = float(os.environ.get("PROOF_FUZZ_SECONDS", 45 if long_form() else 25))
    admin = bearer(Settings.for_service("tests"), "admin")
    failures: list[str] = []
    fuzzed: list[str] = []
    with running_services(services, database_url=new_database_url, topic_prefix=topic_prefix,
                          log_dir=tmp_path / "logs", web_workers=1) as clinic:
        for service, procs in clinic.items():
            stats = fuzz_service(service, procs.url, admin, max_examples=examples,
                                 budget_seconds=budget,
                                 hostile_per_operation=19 if long_form() else 6)
            if stats.operations == 0:  # a service with no API of its own (a web console)
                print(f"[bad-input] {service}: no OpenAPI operations")
                continue
            fuzzed.append(service)
            assert stats.cases > 0, f"{service}: nothing fuzzed"
            bad = len(stats.failures)
            record("bad-input", f"{service}: schemathesis + hostile strings ({backend})",
                   tried=stats.cases + stats.hostile,
                   held=stats.cases + stats.hostile - bad,
                   detail=f"{stats.operations} ops, {stats.server_refusals} refused by "
                          f"gunicorn, statuses "
                          f"{dict(sorted(stats.statuses.items()))}")
            failures += [f"{service}: {f}" for f in stats.failures]
    assert fuzzed, "no service had an operation to fuzz"
    assert not failures, "\n".join(failures[:40])
