"""A service's worker process: its outbox relay and its consumers, each in a thread,
stopped cleanly on SIGTERM/SIGINT. Tests run the same `Worker` in their own process."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable

from prometheus_client import start_http_server

from shared import logs, topics
from shared.kafka import EventConsumer, OutboxRelay, Subscription, ensure_topics
from shared.runtime import Runtime

log = logging.getLogger(__name__)


class Worker:
    def __init__(self, runtime: Runtime, subscriptions: Iterable[Subscription],
                 *, relay: bool = True,
                 extra_loops: Iterable[Callable[[threading.Event], None]] = ()) -> None:
        self.runtime = runtime
        self.stop_event = threading.Event()
        self.relay = OutboxRelay(runtime.settings, runtime.db, runtime.tables,
                                 runtime.lease) if relay else None
        self.consumers = [EventConsumer(runtime.settings, runtime.db, runtime.tables, s)
                          for s in subscriptions]
        self.extra_loops = list(extra_loops)
        self.threads: list[threading.Thread] = []

    def start(self) -> Worker:
        loops: list[tuple[str, Callable[[threading.Event], None]]] = []
        if self.relay:
            loops.append(("relay", self.relay.run))
        loops += [(c.group, c.run) for c in self.consumers]
        loops += [(getattr(f, "__name__", "loop"), f) for f in self.extra_loops]
        for name, loop in loops:
            t = threading.Thread(target=loop, args=(self.stop_event,), name=name, daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def stop(self, timeout: float = 15.0) -> None:
        self.stop_event.set()
        for t in self.threads:
            t.join(timeout)

    def __enter__(self) -> Worker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def await_schema(runtime: Runtime, *, poll_seconds: float = 2.0,
                 log_every_seconds: float = 30.0, stop: threading.Event | None = None) -> bool:
    """With MIGRATE_ON_START=false the migration step runs beside the rollout: consuming
    events against an older schema would fail them into dead letters, so wait for it.
    Returns False when `stop` was set first (SIGTERM while waiting)."""
    stop = stop or threading.Event()
    logged: float | None = None
    while True:
        try:
            problem = runtime.schema_problem()
        except Exception as exc:  # the database may come later
            problem = f"database not reachable: {exc!r}"[:300]
        if problem is None:
            return True
        if logged is None or time.monotonic() - logged >= log_every_seconds:
            log.warning("worker waiting for the migration", extra={"problem": problem})
            logged = time.monotonic()
        if stop.wait(poll_seconds):
            return False


def run_worker(runtime: Runtime, subscriptions: Iterable[Subscription], **kw: object) -> None:
    """The worker entry point: migrate, wait for topics, run until told to stop. SIGTERM
    is heard from the first moment, also while waiting for the migration or the topics,
    so a pod stopped then exits at once and cleanly (not by SIGKILL after its grace)."""
    settings = runtime.settings
    logs.configure(settings.service + "-worker", settings.log_level)
    settings.check_key_source()  # fail closed, as the web does
    stop = threading.Event()

    def _stop(signum: int, _frame: object) -> None:
        log.info("worker stopping", extra={"signal": signum})
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    port = os.environ.get("WORKER_METRICS_PORT")
    if port:
        # loopback on one host; a pod sets 0.0.0.0 so Prometheus can scrape it
        start_http_server(int(port), addr=os.environ.get("WORKER_METRICS_ADDR", "127.0.0.1"))
    runtime.create_schema()
    if not settings.migrate_on_start and not await_schema(runtime, stop=stop):
        return
    # made here on one machine; on a cluster the operator makes them: wait for as long
    # as it takes (a timeout would only crash-loop the pod)
    if not ensure_topics(settings, topics.ALL_TOPICS, timeout=None, stop=stop):
        return
    # kw passes Worker's own keywords through (extra_loops=...); Worker checks their types
    worker = Worker(runtime, subscriptions, **kw)  # type: ignore[arg-type]
    worker.stop_event = stop
    worker.start()
    log.info("worker started", extra={"consumers": [c.group for c in worker.consumers]})
    stop.wait()
    worker.stop()
