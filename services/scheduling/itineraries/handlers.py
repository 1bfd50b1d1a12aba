"""Events in for itineraries: an accepted referral is answered with a proposed itinerary
(or itinerary.unplaceable and a place on the waitlist), without a scheduler asking.

The handler runs in the consumer's transaction, which also records the inbox row, so a
redelivered referral.accepted changes nothing; a second referral.accepted for a referral
that already has a live itinerary is ignored as well.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from services.scheduling.diary import wishes
from services.scheduling.diary.context import Diary
from services.scheduling.itineraries.planner import Planner
from services.scheduling.itineraries.use_cases import intake, releasing
from shared import topics
from shared.events import Envelope
from shared.kafka import Handler, Subscription
from shared.runtime import Runtime

log = logging.getLogger(__name__)


def handlers(runtime: Runtime, *, clock: Callable[[], datetime] | None = None
             ) -> dict[str, Handler]:
    diary = Diary(runtime, clock=clock)
    planner = Planner(diary)

    def on_referral_accepted(session: Session, envelope: Envelope) -> None:
        """Propose and hold the referral's itinerary (emits itinerary.proposed)."""
        view = intake.on_referral_accepted(planner, session, diary.clock(), envelope.payload)
        log.info("itinerary for accepted referral", extra={
            "itinerary_id": view["id"], "referral_id": view["referral_id"],
            "status": view["status"]})

    return {"referral.accepted": on_referral_accepted}


def subscription(runtime: Runtime) -> Subscription:
    """scheduling's consumer of referrals.events."""
    return Subscription("scheduling-itineraries", (topics.REFERRALS,), handlers(runtime))


def expiry_loop(runtime: Runtime, *, clock: Callable[[], datetime] | None = None,
                every: float | None = None) -> Callable[[threading.Event], None]:
    """A worker loop that releases lapsed holds every ITINERARY_EXPIRY_SECONDS: first
    whole itineraries (so they read `expired`), then any other hold, such as an
    unanswered waitlist offer, whose slot goes on to the next patient waiting. (The
    booking path also releases a lapsed hold it runs into, so the slot is never lost.)"""
    diary = Diary(runtime, clock=clock)
    planner = Planner(diary)
    if every is None:
        every = float(runtime.settings.setting("ITINERARY_EXPIRY_SECONDS", "30"))

    def itinerary_expiry(stop: threading.Event) -> None:
        while not stop.wait(every):
            try:
                now = (clock or _utcnow)()
                with runtime.db.transaction() as s:
                    released = releasing.expire_holds(planner, s, now)
                with runtime.db.transaction() as s:
                    released += wishes.expire_holds(diary, s, now)
                if released:
                    log.info("holds expired", extra={"count": released})
            except Exception:
                log.exception("itinerary expiry failed; trying again")

    return itinerary_expiry


def _utcnow() -> datetime:
    return datetime.now(UTC)
