"""Wires the dashboard together in one place (settings, database, messaging, read model)."""

from pathlib import Path

from services.dashboard.db import Base
from shared.config import Settings
from shared.runtime import Runtime
from shared.topics import SYSTEM

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def build_runtime(settings: Settings | None = None) -> Runtime:
    """The dashboard produces no clinic events; its outbox carries only ops pings."""
    return Runtime(settings or Settings.for_service("dashboard"), Base.metadata,
                   topic=SYSTEM, migrations=MIGRATIONS)
