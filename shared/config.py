"""Settings from environment variables, with defaults that run the clinic on one machine."""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path

from shared.auth import ROLES

ROOT = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("PAINCARE_VAR", ROOT / ".var"))

DEVELOPMENT = "development"
log = logging.getLogger(__name__)


class ConfigurationError(RuntimeError):
    """A setting a service cannot start without; the message says what to set."""


def development_secret(var_dir: Path | None = None) -> str:
    """The local JWT secret of this machine's development clinic: random, made once in
    `.var/dev-jwt-secret` (mode 0600) and shared by every process of the checkout (the
    services of `make up`, scripts/mint_token.py, the demo, the simulator, the tests).
    Never a publicly known value."""
    path = (var_dir or VAR_DIR) / "dev-jwt-secret"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    made = path.with_name(f".dev-jwt-secret.{os.getpid()}")
    fd = os.open(made, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(48))
    try:
        os.link(made, path)  # the first process to get here wins; the others read its secret
    except FileExistsError:
        pass
    finally:
        made.unlink()
    return path.read_text().strip()


SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def with_sslmode(url: str, sslmode: str) -> str:
    """A PostgreSQL URL with libpq's `sslmode` (DATABASE_SSLMODE), unless the URL already
    names one (the URL wins: `?sslmode=verify-full&sslrootcert=/etc/clinic/pg-ca.pem`)."""
    if not sslmode or not url.startswith("postgresql"):
        return url
    if sslmode not in SSLMODES:
        raise ConfigurationError(f"DATABASE_SSLMODE={sslmode!r} is not one of "
                                 f"{', '.join(SSLMODES)}")
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if "sslmode" in parsed.query:
        return url
    return parsed.update_query_dict({"sslmode": sslmode}).render_as_string(hide_password=False)


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def _pairs(value: str) -> dict[str, str]:
    """`a=b,c=d` → {"a": "b", "c": "d"}."""
    pairs = (item.split("=", 1) for item in _csv(value) if "=" in item)
    return {k.strip(): v.strip() for k, v in pairs}


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
    # PAINCARE_ENV: "development" (a checkout: make up, the tests) or anything else
    # (the container image says "production"), where only the provider's tokens count
    environment: str = DEVELOPMENT
    # local HS256 tokens, development only ("" = none accepted)
    jwt_secret: str = ""
    jwt_issuer: str = "paincare-local"
    jwt_audience: str = "paincare"
    # the clinic's OpenID Connect provider (see deploy/README.md)
    oidc_issuer: str = ""
    oidc_jwks_url: str = ""  # "" = the issuer's discovery document names it
    # a confidential client for this service's own calls (client-credentials grant)
    oidc_client_id: str = ""
    oidc_client_secret: str = ""
    oidc_roles_claim: str = "realm_access.roles"
    oidc_roles: tuple[str, ...] = ("scheduler", "specialist", "admin", "service")
    oidc_role_aliases: dict[str, str] = field(default_factory=dict)
    oidc_discipline_claim: str = "discipline"
    oidc_provider_id_claim: str = "provider_id"
    # the key set is kept this long; an unknown kid refetches it at most once per cooldown
    oidc_jwks_cache_seconds: float = 300.0
    oidc_jwks_refresh_cooldown_seconds: float = 30.0
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
        environment = _env("PAINCARE_ENV", DEVELOPMENT).strip().lower() or DEVELOPMENT
        secret = os.environ.get("JWT_SECRET", "")
        if environment != DEVELOPMENT:
            if secret:
                log.warning("JWT_SECRET is ignored outside development: only the identity "
                            "provider's tokens are accepted (PAINCARE_ENV=%s)", environment)
            secret = ""
        elif not secret:
            secret = development_secret()
        settings = cls(
            service=service,
            database_url=with_sslmode(
                _env(f"{prefix}_DATABASE_URL", _env("DATABASE_URL", default_db)),
                _env("DATABASE_SSLMODE", "").strip()),
            kafka_bootstrap=_env("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
            topic_prefix=_env("KAFKA_TOPIC_PREFIX", ""),
            environment=environment,
            jwt_secret=secret,
            jwt_issuer=_env("JWT_ISSUER", "paincare-local"),
            jwt_audience=_env("JWT_AUDIENCE", "paincare"),
            oidc_issuer=_env("OIDC_ISSUER", "").rstrip("/"),
            oidc_jwks_url=_env("OIDC_JWKS_URL", ""),
            oidc_client_id=_env("OIDC_CLIENT_ID", ""),
            oidc_client_secret=_env("OIDC_CLIENT_SECRET", ""),
            oidc_roles_claim=_env("OIDC_ROLES_CLAIM", "realm_access.roles"),
            oidc_roles=_csv(_env("OIDC_ROLES", ",".join(ROLES))),
            oidc_role_aliases=_pairs(_env("OIDC_ROLE_ALIASES", "")),
            oidc_discipline_claim=_env("OIDC_DISCIPLINE_CLAIM", "discipline"),
            oidc_provider_id_claim=_env("OIDC_PROVIDER_ID_CLAIM", "provider_id"),
            log_level=_env("LOG_LEVEL", "INFO"),
            outbox_poll_seconds=_env_float("OUTBOX_POLL_SECONDS", 0.2),
            outbox_batch=_env_int("OUTBOX_BATCH", 200),
            consumer_max_attempts=_env_int("CONSUMER_MAX_ATTEMPTS", 3),
            consumer_retry_backoff_seconds=_env_float("CONSUMER_RETRY_BACKOFF_SECONDS", 0.2),
            kafka_enabled=_env("KAFKA_ENABLED", "true").lower() in ("1", "true", "yes"),
            clinic_timezone=_env("CLINIC_TIMEZONE", "Europe/London"),
            migrate_on_start=_env("MIGRATE_ON_START", "true").lower() in ("1", "true", "yes"),
        )
        # tests name any field: a wrong name or type fails at once in replace()
        return replace(settings, **overrides) if overrides else settings  # type: ignore[arg-type]

    @property
    def is_development(self) -> bool:
        return self.environment == DEVELOPMENT

    def check_key_source(self) -> None:
        """Fail closed: outside development a service starts only with the clinic's
        identity provider to verify tokens against."""
        if self.is_development or self.oidc_issuer:
            return
        raise ConfigurationError(
            f"{self.service}: PAINCARE_ENV={self.environment!r} is not development, so "
            "local tokens are refused and the identity provider's keys are needed: set "
            "OIDC_ISSUER (the provider's issuer URL, e.g. "
            "https://idp.example/realms/paincare) and, if its discovery document is not "
            "reachable, OIDC_JWKS_URL; or set PAINCARE_ENV=development on a developer's "
            "machine")

    def topic(self, name: str) -> str:
        """The broker's name for a logical topic; tests isolate themselves with a prefix."""
        return f"{self.topic_prefix}{name}"

    def setting(self, name: str, default: str) -> str:
        """A service-specific setting: `extra` first (tests), then the environment."""
        return self.extra.get(name, os.environ.get(name, default))
