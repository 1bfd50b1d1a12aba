"""Issue 21, defects 2 and 6: how a worker comes up on a cluster. Topics made by services
take the cluster's replication factor (or are not made at all where an operator makes
them, and the worker waits for the operator's); and SIGTERM is heard while the worker
waits for the migration or the topics. Fake admin client and runtime: no broker here."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from typing import Any

import pytest

from shared import kafka
from shared.config import ROOT, Settings


class FakeAdmin:
    """Stands in for KafkaAdminClient: the topics the 'cluster' has, what was created."""

    topics: set[str] = set()
    created: list[Any] = []

    def __init__(self, **_kw: object) -> None:
        pass

    def list_topics(self) -> list[str]:
        return sorted(FakeAdmin.topics)

    def create_topics(self, new: list[Any]) -> None:
        FakeAdmin.created += new
        FakeAdmin.topics |= {t.name for t in new}

    def close(self) -> None:
        pass


@pytest.fixture
def admin(monkeypatch: pytest.MonkeyPatch) -> type[FakeAdmin]:
    FakeAdmin.topics, FakeAdmin.created = set(), []
    monkeypatch.setattr(kafka, "KafkaAdminClient", FakeAdmin)
    return FakeAdmin


SETTINGS = Settings.for_service("referrals", database_url="sqlite://", topic_prefix="t-")


def test_made_topics_take_the_clusters_replication_factor(admin: type[FakeAdmin]) -> None:
    assert kafka.ensure_topics(SETTINGS, ["referrals.events"], partitions=6, create=True)
    (topic,) = admin.created
    assert (topic.name, topic.num_partitions) == ("t-referrals.events", 6)
    # -1: the broker's default.replication.factor (3 on the Strimzi cluster), never 1
    assert topic.replication_factor == -1


def test_with_creation_off_the_worker_waits_for_the_operators_topics(
        admin: type[FakeAdmin]) -> None:
    stop = threading.Event()
    done: list[bool] = []
    waiter = threading.Thread(target=lambda: done.append(kafka.ensure_topics(
        SETTINGS, ["referrals.events", "notes.events"], create=False, timeout=None,
        stop=stop)))
    waiter.start()
    admin.topics = {"t-referrals.events"}
    waiter.join(0.5)
    assert waiter.is_alive(), "still waiting: one topic is missing"
    admin.topics |= {"t-notes.events"}   # the topic operator made the other
    waiter.join(10)
    assert done == [True] and admin.created == [], "it made none itself"


def test_waiting_for_topics_ends_when_told_to_stop(admin: type[FakeAdmin]) -> None:
    stop = threading.Event()
    done: list[bool] = []
    waiter = threading.Thread(target=lambda: done.append(kafka.ensure_topics(
        SETTINGS, ["referrals.events"], create=False, timeout=None, stop=stop)))
    waiter.start()
    stop.set()
    waiter.join(10)
    assert done == [False]


def test_creation_is_off_where_the_environment_says_so() -> None:
    assert kafka.CREATE_TOPICS, "on by default: one machine, tests, compose"
    env = dict(os.environ, KAFKA_CREATE_TOPICS="false")
    out = subprocess.run([sys.executable, "-c", "import shared.kafka as k; print(k.CREATE_TOPICS)"],
                         env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.stdout.strip() == "False", out.stderr


# --- 6. SIGTERM while the worker waits for the migration ---------------------------------

WAITING_WORKER = textwrap.dedent("""
    import sys, threading
    from shared import worker
    from shared.config import ROOT, Settings

    class NeverMigrated:
        settings = Settings.for_service("referrals", database_url="sqlite://",
                                        migrate_on_start=False)
        def create_schema(self):
            pass
        def schema_problem(self):
            print("waiting", flush=True)
            return "database at revision None, code expects abc; run the migration"

    worker.run_worker(NeverMigrated(), [])
    print("stopped cleanly", flush=True)
""")


def test_sigterm_while_waiting_for_the_migration_exits_at_once_and_cleanly() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("WORKER_METRICS_PORT", None)
    proc = subprocess.Popen([sys.executable, "-c", WAITING_WORKER], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "waiting"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err[-2000:]
    assert "stopped cleanly" in out
