"""Service processes for end-to-end tests: real gunicorn and real workers, each test's
own topics and databases."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from shared.launcher import ServiceProcesses
from simulator.receivers import free_port

__all__ = ["free_port", "running_services"]


@contextmanager
def running_services(services: list[str], *, database_url: Callable[[str], str],
                     topic_prefix: str, log_dir: Path, extra_env: dict[str, str] | None = None,
                     web_workers: int = 2) -> Iterator[dict[str, ServiceProcesses]]:
    started: dict[str, ServiceProcesses] = {}
    try:
        for service in services:
            env = {"DATABASE_URL": database_url(service), "KAFKA_TOPIC_PREFIX": topic_prefix,
                   "OUTBOX_POLL_SECONDS": "0.1", "CONSUMER_RETRY_BACKOFF_SECONDS": "0.1",
                   "LOG_LEVEL": "INFO"}
            env.update(extra_env or {})
            started[service] = ServiceProcesses(service, free_port(), env, log_dir,
                                                web_workers=web_workers).start()
        for procs in started.values():
            procs.wait_ready()
        yield started
    finally:
        for procs in started.values():
            procs.stop()
