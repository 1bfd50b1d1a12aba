"""Settings from environment variables, with defaults that run the clinic on one machine."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("PAINCARE_VAR", ROOT / ".var"))

DEV_JWT_SECRET = "paincare-local-development-secret-change-me"


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


@dataclass(frozen=True)
class Settings:
    """Everything a service reads from its environment, read once at start-up.

    Tests build their own with `Settings.for_service(...)` and `replace()`, so nothing
    reads `os.environ` behind a test's back.
    """

    service: str
    database_url: str
    kafka_bootstrap: str = "127.0.0.1:9092"
    topic_prefix: str = ""
    jwt_secret: str = DEV_JWT_SECRET
    jwt_issuer: str = "paincare-local"
    jwt_audience: str = "paincare"
    log_level: str = "INFO"
    outbox_poll_seconds: float = 0.2
    outbox_batch: int = 200
    consumer_max_attempts: int = 3
    consumer_retry_backoff_seconds: float = 0.2
    kafka_enabled: bool = True
    clinic_timezone: str = "Europe/London"
    # false where a migration step runs before the processes (compose, k8s): they then
    # only check the revision, and /readyz answers 503 until the database is at head
    migrate_on_start: bool = True
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def for_service(cls, service: str, **overrides: object) -> Settings:
        prefix = service.upper()
        default_db = f"sqlite:///{VAR_DIR / (service + '.db')}"
        settings = cls(
            service=service,
            database_url=_env(f"{prefix}_DATABASE_URL", _env("DATABASE_URL", default_db)),
            kafka_bootstrap=_env("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
            topic_prefix=_env("KAFKA_TOPIC_PREFIX", ""),
            jwt_secret=_env("JWT_SECRET", DEV_JWT_SECRET),
            jwt_issuer=_env("JWT_ISSUER", "paincare-local"),
            jwt_audience=_env("JWT_AUDIENCE", "paincare"),
            log_level=_env("LOG_LEVEL", "INFO"),
            outbox_poll_seconds=_env_float("OUTBOX_POLL_SECONDS", 0.2),
            outbox_batch=_env_int("OUTBOX_BATCH", 200),
            consumer_max_attempts=_env_int("CONSUMER_MAX_ATTEMPTS", 3),
            consumer_retry_backoff_seconds=_env_float("CONSUMER_RETRY_BACKOFF_SECONDS", 0.2),
            kafka_enabled=_env("KAFKA_ENABLED", "true").lower() in ("1", "true", "yes"),
            clinic_timezone=_env("CLINIC_TIMEZONE", "Europe/London"),
            migrate_on_start=_env("MIGRATE_ON_START", "true").lower() in ("1", "true", "yes"),
        )
        return replace(settings, **overrides) if overrides else settings

    def topic(self, name: str) -> str:
        """The broker's name for a logical topic; tests isolate themselves with a prefix."""
        return f"{self.topic_prefix}{name}"

    def setting(self, name: str, default: str) -> str:
        """A service-specific setting: `extra` first (tests), then the environment."""
        return self.extra.get(name, os.environ.get(name, default))
