"""Wires the notifier service together in one place (settings, database, messaging)."""

from pathlib import Path

from services.notifier.db import Base
from shared.config import Settings
from shared.runtime import Runtime
from shared.topics import NOTIFICATIONS

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def build_runtime(settings: Settings | None = None) -> Runtime:
    return Runtime(settings or Settings.for_service("notifier"), Base.metadata, topic=NOTIFICATIONS,
                   migrations=MIGRATIONS)
