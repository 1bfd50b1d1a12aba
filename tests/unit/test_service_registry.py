"""The service registry (shared/services.py) against the checkout: what the launcher, the
proofs and the deploy checks iterate must be every service, or fail."""

from __future__ import annotations

from importlib import import_module

import pytest

from shared import launcher, topics
from shared import services as registry
from shared.config import Settings


def test_every_registered_service_has_its_package_and_no_package_is_unregistered():
    assert registry.missing_packages() == []
    assert registry.unregistered_packages() == []
    assert launcher.available_services() == list(registry.NAMES)


def test_a_registered_service_without_its_package_fails_the_proofs_instead_of_shrinking(
        monkeypatch):
    lost = registry.Service("radiology", 8099, subscribes=(topics.REFERRALS,))
    monkeypatch.setattr(registry, "REGISTRY", (*registry.REGISTRY, lost))
    with pytest.raises(RuntimeError, match=r"services/radiology/app\.py"):
        launcher.available_services()


def test_a_package_the_registry_does_not_know_fails_too(monkeypatch):
    monkeypatch.setattr(registry, "BY_NAME", {n: s for n, s in registry.BY_NAME.items()
                                              if n != "fhir"})
    with pytest.raises(RuntimeError, match=r"services/fhir has an app\.py but is not registered"):
        registry.require_packages()


def test_ports_are_unique_and_the_topics_module_reads_the_registry():
    assert len(set(registry.PORTS.values())) == len(registry.PORTS)
    assert tuple(s.name for s in registry.REGISTRY if s.worker) == topics.SERVICES
    assert {s.topic for s in registry.REGISTRY if s.topic} <= set(topics.EVENT_TOPICS)
    assert {t for s in registry.REGISTRY for t in s.subscribes} <= set(topics.EVENT_TOPICS)


@pytest.mark.parametrize("name", registry.WITH_WORKER)
def test_the_registry_says_what_each_worker_really_reads_and_writes(name):
    service = registry.service(name)
    wiring = import_module(f"services.{name}.wiring")
    runtime = wiring.build_runtime(Settings.for_service(name, database_url="sqlite://",
                                                        kafka_enabled=False))
    subscriptions = import_module(f"services.{name}.worker").subscriptions(runtime)
    if name == "dashboard":  # its read model's consumer, started beside the pings
        from services.dashboard.handlers import read_model_subscription

        subscriptions.append(read_model_subscription(None, 0))  # type: ignore[arg-type]
    read = {t for s in subscriptions for t in s.topics} - {topics.SYSTEM}
    assert read == set(service.subscribes)
    assert runtime.topic == service.topic


def test_services_without_a_worker_or_a_database_say_so():
    console = registry.service("console")
    assert (console.worker, console.database, console.database_env) == (False, False, None)
    assert not (console.package / "worker.py").exists()
    assert not (console.package / "wiring.py").exists()
    assert registry.service("notes").database_env == "NOTES_DATABASE_URL"


def test_the_local_postgres_creates_a_database_for_every_service_that_owns_one():
    line = next(x for x in (registry.ROOT / "scripts" / "postgres.sh").read_text().splitlines()
                if x.startswith("databases=("))
    created = set(line.removeprefix("databases=(").removesuffix(")").split())
    assert created - {"paincare_test"} == set(registry.WITH_DATABASE)
