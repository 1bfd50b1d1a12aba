"""Wires the FHIR gateway together in one place (settings, database, messaging, the
referrals service it hands intake to)."""

from pathlib import Path

from services.fhir.db import Base
from services.fhir.referrals_client import HttpReferrals
from shared.config import Settings
from shared.runtime import Runtime
from shared.topics import FHIR

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
REFERRALS_URL = "http://127.0.0.1:8001"


def build_runtime(settings: Settings | None = None) -> Runtime:
    """The gateway's own events (fhir.events) are only for its subscribers: a subscribed
    referral's Task changed (referrals produces the clinic's events for what comes in
    here)."""
    return Runtime(settings or Settings.for_service("fhir"), Base.metadata,
                   topic=FHIR, migrations=MIGRATIONS)


def referrals_intake(settings: Settings) -> HttpReferrals:
    return HttpReferrals(settings.setting("REFERRALS_URL", REFERRALS_URL))
