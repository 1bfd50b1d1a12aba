"""The dashboard worker: the read-model consumer (restarted on a new consumer group when
a rebuild is asked for), the ops ping consumer and the outbox relay."""

from __future__ import annotations

import logging
import threading

from kafka import KafkaAdminClient

from services.dashboard.db import ReadModelStore
from services.dashboard.handlers import read_model_subscription
from services.dashboard.wiring import build_runtime
from shared import ops
from shared.kafka import EventConsumer, Subscription, security_options
from shared.runtime import Runtime
from shared.worker import run_worker

log = logging.getLogger(__name__)


class ReadModelConsumer:
    """Consumes the clinic's topics into the read model under the current generation's
    consumer group; when a rebuild bumps the generation it switches to the new group,
    which starts from the beginning of every topic."""

    def __init__(self, runtime: Runtime, store: ReadModelStore | None = None) -> None:
        self.runtime = runtime
        self.store = store or ReadModelStore()
        self.generation: int | None = None
        self.consumer: EventConsumer | None = None

    def current_generation(self) -> int:
        with self.runtime.db.transaction() as s:
            return self.store.generation(s)

    def poll_once(self) -> int:
        generation = self.current_generation()
        if generation != self.generation:
            self._switch(generation)
        assert self.consumer is not None
        return self.consumer.poll_once()

    def _switch(self, generation: int) -> None:
        old = self.consumer.group if self.consumer else None
        if self.consumer is not None:
            self.consumer.close()
        rt = self.runtime
        self.consumer = EventConsumer(rt.settings, rt.db, rt.tables,
                                      read_model_subscription(self.store, generation))
        self.generation = generation
        log.info("read model consuming", extra={"generation": generation})
        if old:
            self._forget_group(rt.settings.topic(old))

    def _forget_group(self, group: str) -> None:
        """An abandoned generation's group would show as ever-growing lag."""
        try:
            admin = KafkaAdminClient(bootstrap_servers=self.runtime.settings.kafka_bootstrap,
                                     **security_options())
            try:
                admin.delete_groups([group])
            finally:
                admin.close()
        except Exception as exc:
            log.warning("could not delete old consumer group",
                        extra={"group": group, "error": repr(exc)[:300]})

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.poll_once()
            except Exception as exc:
                log.warning("read model loop error, retrying", extra={"error": repr(exc)[:500]})
                stop.wait(1.0)
        if self.consumer is not None:
            self.consumer.close()


def subscriptions(runtime: Runtime) -> list[Subscription]:
    return [ops.ping_subscription()]


def main() -> None:
    runtime = build_runtime()
    read_model = ReadModelConsumer(runtime)
    run_worker(runtime, subscriptions(runtime), extra_loops=[read_model.run])


if __name__ == "__main__":
    main()
