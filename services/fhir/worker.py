"""The gateway's worker: the read-model consumer, the ops ping consumer and the outbox
relay."""

from __future__ import annotations

from services.fhir.db import patient_links
from services.fhir.handlers import read_model_subscription
from services.fhir.wiring import build_runtime
from shared import ops
from shared import patient_links as links
from shared.kafka import Subscription
from shared.runtime import Runtime
from shared.worker import run_worker


def subscriptions(runtime: Runtime) -> list[Subscription]:
    return [read_model_subscription(runtime), ops.ping_subscription(),
            links.subscription(patient_links)]


def main() -> None:
    runtime = build_runtime()
    run_worker(runtime, subscriptions(runtime))


if __name__ == "__main__":
    main()
