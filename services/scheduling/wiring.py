"""Wires the scheduling service together in one place (settings, database, messaging)."""

from pathlib import Path

from services.scheduling.diary.db import Base
from services.scheduling.itineraries import db as itinerary_db  # noqa: F401  (its tables join Base.metadata)
from shared.config import Settings
from shared.runtime import Runtime
from shared.topics import SCHEDULING

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def build_runtime(settings: Settings | None = None) -> Runtime:
    return Runtime(settings or Settings.for_service("scheduling"), Base.metadata, topic=SCHEDULING,
                   migrations=MIGRATIONS)
