"""The gateway's worker: the read-model consumer, the ops ping consumer and the outbox
relay."""

from __future__ import annotations

from services.fhir.handlers import read_model_subscription
from services.fhir.wiring import build_runtime
from shared import ops
from shared.kafka import Subscription
from shared.runtime import Runtime
from shared.worker import run_worker


def subscriptions(runtime: Runtime) -> list[Subscription]:
    return [read_model_subscription(runtime), ops.ping_subscription()]


def main() -> None:
    runtime = build_runtime()
    run_worker(runtime, subscriptions(runtime))


if __name__ == "__main__":
    main()
