"""The referrals worker: its outbox relay, its event consumers and the breach-risk sweep,
in their own process."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from services.referrals import use_cases
from services.referrals.handlers import handlers
from services.referrals.wiring import build_runtime
from shared import ops
from shared.kafka import Subscription
from shared.runtime import Runtime
from shared.topics import SCHEDULING
from shared.worker import run_worker

log = logging.getLogger(__name__)


def subscriptions(runtime: Runtime) -> list[Subscription]:
    return [ops.ping_subscription(), Subscription("scheduling", (SCHEDULING,), handlers(runtime))]


def breach_sweep(runtime: Runtime, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
                 ) -> Callable[[threading.Event], None]:
    """A loop for the worker: every REFERRAL_BREACH_SWEEP_SECONDS, warn about referrals
    still unscheduled close to their due date. A failed round (the database away) is
    logged and tried again next round; several replicas may run it side by side."""
    every = float(runtime.settings.setting("REFERRAL_BREACH_SWEEP_SECONDS", "60"))
    if every <= 0:
        raise ValueError(f"REFERRAL_BREACH_SWEEP_SECONDS must be above 0, not {every}")
    warning_days = use_cases.breach_warning_days(runtime)

    def breach_sweep(stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                with runtime.db.transaction() as session:
                    warned = use_cases.sweep_near_due(runtime, session, now=clock(),
                                                      warning_days=warning_days)
                if warned:
                    log.info("breach risk: unscheduled near due", extra={"count": len(warned)})
            except Exception:  # the next round tries again
                log.exception("breach-risk sweep failed")
            stop.wait(every)

    return breach_sweep


def main() -> None:
    runtime = build_runtime()
    run_worker(runtime, subscriptions(runtime), extra_loops=[breach_sweep(runtime)])


if __name__ == "__main__":
    main()
