"""Wires the notifier service together in one place: settings, database, messaging, the
rules' configuration, the channels and the clock. Tests swap the clock or a channel
here rather than patching."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from services.notifier.db import Base
from services.notifier.domain import (
    CLINICAL_LEAD,
    PRIVACY_OFFICER,
    SCHEDULERS,
    TRIAGE_LEAD,
    Contact,
    Rules,
    parse_offsets,
)
from shared.config import Settings
from shared.runtime import Runtime
from shared.topics import NOTIFICATIONS

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class NotifierConfig:
    """The notifier's own settings (environment, or `Settings.extra` in tests)."""

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_timeout: float = 10.0
    smtp_starttls: bool = False   # a clinic's relay: true, with a login
    smtp_username: str = ""
    smtp_password: str = field(default="", repr=False)
    smtp_ca_file: str = ""        # "" = the system's trust store
    email_from: str = "PainCare <no-reply@paincare.local>"
    sms_gateway_url: str = "http://127.0.0.1:8099/sms"
    sms_timeout: float = 5.0
    rest_hook_timeout: float = 10.0   # a referring system's FHIR Subscription endpoint
    max_attempts: int = 5
    retry_backoff_seconds: float = 2.0
    lease_seconds: float = 60.0
    batch: int = 100
    poll_seconds: float = 0.2
    reminder_offsets: str = "48h,2h"
    unknown_recipient_grace_seconds: float = 30.0
    triage_lead_email: str | None = "triage-lead@paincare.local"
    schedulers_email: str | None = "schedulers@paincare.local"
    triage_lead_phone: str | None = None
    clinical_lead_email: str | None = "clinical-lead@paincare.local"
    clinical_lead_phone: str | None = None
    privacy_officer_email: str | None = "privacy-officer@paincare.local"
    safety_duty_phone: str | None = None  # the clinic's duty phone: SMS for every alert
    console_url: str = "http://127.0.0.1:8006"

    @classmethod
    def from_settings(cls, settings: Settings) -> NotifierConfig:
        d = cls()

        def get(name: str, default: object) -> str:
            return settings.setting(name, str(default) if default is not None else "")

        return cls(
            smtp_host=get("SMTP_HOST", d.smtp_host),
            smtp_port=int(get("SMTP_PORT", d.smtp_port)),
            smtp_timeout=float(get("SMTP_TIMEOUT", d.smtp_timeout)),
            smtp_starttls=get("SMTP_STARTTLS", "false").lower() in ("1", "true", "yes"),
            smtp_username=get("SMTP_USERNAME", d.smtp_username),
            smtp_password=get("SMTP_PASSWORD", d.smtp_password),
            smtp_ca_file=get("SMTP_CA_FILE", d.smtp_ca_file),
            email_from=get("NOTIFIER_EMAIL_FROM", d.email_from),
            sms_gateway_url=get("SMS_GATEWAY_URL", d.sms_gateway_url),
            sms_timeout=float(get("SMS_TIMEOUT", d.sms_timeout)),
            rest_hook_timeout=float(get("REST_HOOK_TIMEOUT", d.rest_hook_timeout)),
            max_attempts=int(get("NOTIFIER_MAX_ATTEMPTS", d.max_attempts)),
            retry_backoff_seconds=float(get("NOTIFIER_RETRY_BACKOFF_SECONDS",
                                            d.retry_backoff_seconds)),
            lease_seconds=float(get("NOTIFIER_LEASE_SECONDS", d.lease_seconds)),
            batch=int(get("NOTIFIER_BATCH", d.batch)),
            poll_seconds=float(get("NOTIFIER_POLL_SECONDS", d.poll_seconds)),
            reminder_offsets=get("NOTIFIER_REMINDER_OFFSETS", d.reminder_offsets),
            unknown_recipient_grace_seconds=float(get(
                "NOTIFIER_UNKNOWN_RECIPIENT_GRACE_SECONDS", d.unknown_recipient_grace_seconds)),
            triage_lead_email=get("TRIAGE_LEAD_EMAIL", d.triage_lead_email) or None,
            schedulers_email=get("SCHEDULERS_EMAIL", d.schedulers_email) or None,
            triage_lead_phone=get("TRIAGE_LEAD_PHONE", d.triage_lead_phone) or None,
            clinical_lead_email=get("CLINICAL_LEAD_EMAIL", d.clinical_lead_email) or None,
            clinical_lead_phone=get("CLINICAL_LEAD_PHONE", d.clinical_lead_phone) or None,
            privacy_officer_email=get("PRIVACY_OFFICER_EMAIL",
                                      d.privacy_officer_email) or None,
            safety_duty_phone=get("SAFETY_DUTY_PHONE", d.safety_duty_phone) or None,
            console_url=get("CONSOLE_URL", d.console_url).rstrip("/") or d.console_url,
        )

    def rules(self, timezone: str) -> Rules:
        return Rules(
            reminder_offsets=parse_offsets(self.reminder_offsets), timezone=timezone,
            unknown_recipient_grace=timedelta(seconds=self.unknown_recipient_grace_seconds),
            triage_lead=Contact(TRIAGE_LEAD, "role", "Triage lead", email=self.triage_lead_email,
                                phone=self.triage_lead_phone),
            schedulers=Contact(SCHEDULERS, "role", "Schedulers", email=self.schedulers_email),
            clinical_lead=Contact(CLINICAL_LEAD, "role", "Clinical lead",
                                  email=self.clinical_lead_email,
                                  phone=self.clinical_lead_phone),
            privacy_officer=Contact(PRIVACY_OFFICER, "role", "Privacy officer",
                                    email=self.privacy_officer_email),
            duty_phone=self.safety_duty_phone, console_url=self.console_url,
            organizer_email=self.email_from)


def build_runtime(settings: Settings | None = None) -> Runtime:
    return Runtime(settings or Settings.for_service("notifier"), Base.metadata,
                   topic=NOTIFICATIONS, migrations=MIGRATIONS)
