"""The notes worker: its outbox relay, its event consumers and the safety alerts'
escalation loop, in their own process."""

from services.notes.db import patient_links
from services.notes.handlers import care_team_subscription
from services.notes.safety_alerts import escalation_loop
from services.notes.wiring import build_runtime
from shared import ops
from shared import patient_links as links
from shared.kafka import Subscription
from shared.runtime import Runtime
from shared.worker import run_worker


def subscriptions(runtime: Runtime) -> list[Subscription]:
    return [ops.ping_subscription(), care_team_subscription(),
            links.subscription(patient_links)]


def main() -> None:
    runtime = build_runtime()
    run_worker(runtime, subscriptions(runtime), extra_loops=[escalation_loop(runtime)])


if __name__ == "__main__":
    main()
