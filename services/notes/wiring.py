"""Wires the notes service together in one place (settings, database, messaging)."""

from pathlib import Path

from services.notes.db import Base
from shared.config import Settings
from shared.runtime import Runtime
from shared.topics import NOTES

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def build_runtime(settings: Settings | None = None) -> Runtime:
    return Runtime(settings or Settings.for_service("notes"), Base.metadata, topic=NOTES,
                   migrations=MIGRATIONS)
