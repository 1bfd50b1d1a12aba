"""The notifier worker: its outbox relay, its event consumer (which plans notifications)
and its delivery loop (which sends them), in their own process."""

from __future__ import annotations

from collections.abc import Mapping

from services.notifier import db, handlers
from services.notifier.channels import Channel
from services.notifier.delivery import Deliverer, default_channels
from services.notifier.wiring import Clock, NotifierConfig, build_runtime, system_clock
from shared import ops
from shared import patient_links as links
from shared.kafka import Subscription
from shared.runtime import Runtime
from shared.worker import run_worker


def subscriptions(runtime: Runtime, now: Clock = system_clock) -> list[Subscription]:
    config = NotifierConfig.from_settings(runtime.settings)
    rules = config.rules(runtime.settings.clinic_timezone)
    return [ops.ping_subscription(), handlers.subscription(runtime, rules, now),
            links.subscription(db.patient_links)]


def deliverer(runtime: Runtime, now: Clock = system_clock,
              channels: Mapping[str, Channel] | None = None) -> Deliverer:
    config = NotifierConfig.from_settings(runtime.settings)
    return Deliverer(runtime, config, channels or default_channels(config), now)


def main() -> None:
    runtime = build_runtime()
    run_worker(runtime, subscriptions(runtime), extra_loops=[deliverer(runtime).run])


if __name__ == "__main__":
    main()
