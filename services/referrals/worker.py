"""The referrals worker: its outbox relay and its event consumers, in their own process."""

from services.referrals.handlers import handlers
from services.referrals.wiring import build_runtime
from shared import ops
from shared.kafka import Subscription
from shared.runtime import Runtime
from shared.topics import SCHEDULING
from shared.worker import run_worker


def subscriptions(runtime: Runtime) -> list[Subscription]:
    return [ops.ping_subscription(), Subscription("scheduling", (SCHEDULING,), handlers(runtime))]


def main() -> None:
    runtime = build_runtime()
    run_worker(runtime, subscriptions(runtime))


if __name__ == "__main__":
    main()
