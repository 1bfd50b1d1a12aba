"""App factory for the scheduling service's HTTP API, served by gunicorn."""

from collections.abc import Callable
from datetime import datetime

from flask import Flask

from services.scheduling.diary import api, feed_api
from services.scheduling.diary.context import Diary
from services.scheduling.itineraries import api as itinerary_api
from services.scheduling.wiring import build_runtime
from shared import ops
from shared.config import Settings
from shared.runtime import Runtime
from shared.web import create_service_app


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None,
               clock: Callable[[], datetime] | None = None) -> Flask:
    """`clock` lets tests fix "now" (bookings in the past are refused)."""
    runtime = runtime or build_runtime(settings)
    runtime.create_schema()
    return create_service_app(
        runtime.settings,
        title="PainCare scheduling",
        description="Providers, rooms, availability, appointments and multi-specialty itineraries.",
        blueprints=[api.blp, itinerary_api.blp, feed_api.blp, ops.blp],
        ready_checks=runtime.ready_checks(),
        extensions={"paincare.runtime": runtime,
                    "scheduling.diary": Diary(runtime, clock=clock)},
        secret_url_paths=("/calendar/",),  # providers' iCal feeds: the URL is the credential
    )
