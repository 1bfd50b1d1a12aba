"""Fixtures for every suite: the real broker and databases (started by the project's own
scripts), per-test topics and databases, settings and tokens.

Database tests run on each backend named in PAINCARE_TEST_BACKENDS (default: both
sqlite and postgres), so one `pytest` run proves them on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest

from shared import topics
from shared.config import Settings
from tests.proof.report import long_form
from tests.support import infra

BACKENDS = [b for b in os.environ.get("PAINCARE_TEST_BACKENDS", "sqlite,postgres").split(",")
            if b]


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    return infra.ensure_kafka()


@pytest.fixture(scope="session")
def _postgres_server() -> None:
    infra.ensure_postgres()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """A journey (`@pytest.mark.journey(short=...)`: several services as processes, end
    to end) runs on one named backend in `make test`, to keep that under its time
    budget; every service's integration tests still run on both, and `make proof`
    (PROOF_LONG=1, its `journeys` step) runs each journey on both. The skip is
    reported, never silent."""
    journey = request.node.get_closest_marker("journey")
    if journey is not None and not long_form() and len(BACKENDS) > 1:
        short = journey.kwargs["short"]
        if short not in BACKENDS:
            raise ValueError(f"journey short form names an unknown backend: {short}")
        if request.param != short:
            pytest.skip(f"short form: this journey runs on {short} in make test; "
                        "make proof runs it on both")
    return request.param


@pytest.fixture
def database_url(backend: str, tmp_path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty database of the backend under test."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'service.db'}"
        return
    request.getfixturevalue("_postgres_server")
    name = infra.create_pg_database()
    try:
        yield infra.pg_url(name)
    finally:
        infra.drop_pg_database(name)


@pytest.fixture
def new_database_url(backend: str, tmp_path, request: pytest.FixtureRequest
                     ) -> Iterator[Callable[[str], str]]:
    """More than one fresh database in a test (one per service)."""
    made: list[str] = []

    def make(label: str) -> str:
        if backend == "sqlite":
            return f"sqlite:///{tmp_path / (label + '.db')}"
        request.getfixturevalue("_postgres_server")
        made.append(infra.create_pg_database())
        return infra.pg_url(made[-1])

    yield make
    for name in made:
        infra.drop_pg_database(name)


@pytest.fixture
def topic_prefix(kafka_bootstrap: str) -> Iterator[str]:
    """Topics of this test alone, made up front and deleted afterwards."""
    prefix = f"t{uuid.uuid4().hex[:10]}."
    from shared.kafka import ensure_topics

    ensure_topics(Settings.for_service("tests", topic_prefix=prefix,
                                       kafka_bootstrap=kafka_bootstrap,
                                       database_url="sqlite://"), topics.ALL_TOPICS)
    yield prefix
    infra.delete_topics(kafka_bootstrap, prefix)


@pytest.fixture
def settings_for(database_url: str) -> Callable[..., Settings]:
    """Settings of a service under test, without Kafka unless a topic prefix is given."""

    def make(service: str, **overrides: object) -> Settings:
        base: dict[str, object] = {"database_url": database_url, "kafka_enabled": False,
                                   "consumer_retry_backoff_seconds": 0.05}
        base.update(overrides)
        return Settings.for_service(service, **base)

    return make


@pytest.fixture(scope="session")
def fhir_validator() -> Iterator[object]:
    """The HAPI FHIR reference validator, one JVM for the session (its start is reported
    at the end of the run)."""
    from tests.support.fhir_validator import FhirValidator

    validator = FhirValidator()
    yield validator
    validator.close()
    print(f"\nFHIR validator: build/fetch {validator.build_seconds:.1f}s, "
          f"JVM start and warm-up {validator.start_seconds:.1f}s")
