"""The scheduling worker: its outbox relay and its event consumers, in their own process."""

from services.scheduling.diary.db import patient_links
from services.scheduling.itineraries import handlers as itinerary_handlers
from services.scheduling.wiring import build_runtime
from shared import ops
from shared import patient_links as links
from shared.kafka import Subscription
from shared.runtime import Runtime
from shared.worker import run_worker


def subscriptions(runtime: Runtime) -> list[Subscription]:
    return [ops.ping_subscription(), itinerary_handlers.subscription(runtime),
            links.subscription(patient_links)]


def main() -> None:
    runtime = build_runtime()
    run_worker(runtime, subscriptions(runtime),
               extra_loops=[itinerary_handlers.expiry_loop(runtime)])


if __name__ == "__main__":
    main()
