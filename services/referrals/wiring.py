"""Wires the referrals service together in one place (settings, database, messaging)."""

from pathlib import Path

from services.referrals.db import Base
from services.referrals.patients import db as _patients  # noqa: F401  (its tables on Base)
from shared.config import Settings
from shared.runtime import Runtime
from shared.topics import REFERRALS

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def build_runtime(settings: Settings | None = None) -> Runtime:
    return Runtime(settings or Settings.for_service("referrals"), Base.metadata, topic=REFERRALS,
                   migrations=MIGRATIONS)
