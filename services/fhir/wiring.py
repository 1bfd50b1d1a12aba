"""Wires the FHIR gateway together in one place (settings, database, messaging, the
referrals service it hands intake to)."""

from pathlib import Path

from services.fhir.db import Base
from services.fhir.referrals_client import HttpReferrals
from shared.config import Settings
from shared.runtime import Runtime
from shared.topics import SYSTEM

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
REFERRALS_URL = "http://127.0.0.1:8001"


def build_runtime(settings: Settings | None = None) -> Runtime:
    """The gateway produces no clinic events (referrals does, for what comes in here);
    its outbox carries only ops pings."""
    return Runtime(settings or Settings.for_service("fhir"), Base.metadata,
                   topic=SYSTEM, migrations=MIGRATIONS)


def referrals_intake(settings: Settings) -> HttpReferrals:
    return HttpReferrals(settings.setting("REFERRALS_URL", REFERRALS_URL))
