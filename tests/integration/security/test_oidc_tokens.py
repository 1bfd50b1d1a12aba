"""The services' check of the clinic's identity provider's tokens (RS256/ES256 against its
JWKS, served over real HTTP), on a real service (referrals) and its database: what is
refused is 401 problem+json, key rotation is picked up, and a service outside development
will not start without a key source."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from services.referrals.app import create_app
from shared.auth import mint_token
from shared.config import ConfigurationError, Settings, development_secret
from shared.web import PROBLEM
from tests.support.jwks import KeySet, SigningKey, claims, serving

ISSUER = "https://idp.clinic.test/realms/paincare"
AUDIENCE = "paincare"
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def provider() -> Iterator[KeySet]:
    with serving(KeySet(SigningKey("rsa-1"), SigningKey("ec-1", "ES256"))) as keys:
        yield keys


@pytest.fixture
def production(settings_for: Callable[..., Settings], provider: KeySet) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        base: dict[str, Any] = {"environment": "production", "jwt_secret": "",
                                "oidc_issuer": ISSUER, "oidc_jwks_url": provider.url,
                                "jwt_audience": AUDIENCE}
        base.update(overrides)
        return settings_for("referrals", **base)
    return make


@pytest.fixture
def client(production: Callable[..., Settings]) -> FlaskClient:
    return create_app(production()).test_client()


def _get(client: FlaskClient, token: str) -> Any:
    return client.get("/referrals", headers={"Authorization": f"Bearer {token}"})


def _refused(resp: Any, words: str) -> None:
    assert resp.status_code == 401, resp.get_json()
    assert resp.mimetype == PROBLEM
    assert words.lower() in resp.get_json()["detail"].lower()


def test_the_providers_rs256_and_es256_tokens_are_accepted_with_roles_from_claims(
        client: FlaskClient, provider: KeySet) -> None:
    rsa, ec = provider.keys
    scheduler = rsa.sign(claims(issuer=ISSUER, audience=[AUDIENCE, "account"],
                                roles=["default-roles-paincare", "offline_access", "scheduler"]))
    assert _get(client, scheduler).status_code == 200
    specialist = ec.sign(claims(issuer=ISSUER, audience=AUDIENCE, roles=["specialist"],
                                discipline="pain_medicine", provider_id="p-1"))
    assert _get(client, specialist).status_code == 200
    service = rsa.sign(claims(issuer=ISSUER, audience=AUDIENCE, roles=["service"]))
    assert _get(client, service).status_code == 403  # a known role the route does not allow


def test_tokens_the_services_must_not_accept_are_refused_with_401(
        client: FlaskClient, provider: KeySet) -> None:
    rsa = provider.keys[0]
    good = {"issuer": ISSUER, "audience": AUDIENCE, "roles": ["scheduler"]}
    stranger = SigningKey("rsa-1")  # the provider's kid, someone else's key
    _refused(_get(client, stranger.sign(claims(**good))), "Signature verification failed")
    _refused(_get(client, SigningKey("not-published").sign(claims(**good))),
             "a key the identity provider does not publish")
    _refused(_get(client, rsa.sign(claims(**{**good, "audience": "another-app"}))),
             "audience")
    _refused(_get(client, rsa.sign(claims(**{**good, "issuer": "https://evil.test/"}))),
             "issuer")
    long_ago = datetime(2020, 1, 1, tzinfo=UTC)
    _refused(_get(client, rsa.sign(claims(**good, now=long_ago))), "expired")
    _refused(_get(client, rsa.sign(claims(**{**good, "roles": ["offline_access"]}))),
             "no known role")
    _refused(_get(client, rsa.sign(claims(**{**good, "roles": ["specialist"]}))),
             "must name a discipline")
    # a local development token: refused outside development, whatever its secret
    local = mint_token("any-secret", subject="mallory", role="admin", issuer=ISSUER,
                       audience=AUDIENCE)
    _refused(_get(client, local), "not signed with the provider's algorithms")
    # the provider's public key used as an HMAC secret (alg confusion)
    import jwt
    _refused(_get(client, jwt.encode(claims(**good), "x" * 32, algorithm="HS384",
                                     headers={"kid": "rsa-1"})), "not signed")


def test_a_rotated_key_is_picked_up_on_its_first_token(
        production: Callable[..., Settings], provider: KeySet) -> None:
    client = create_app(production(oidc_jwks_refresh_cooldown_seconds=0)).test_client()
    first = provider.keys[0]
    assert _get(client, first.sign(claims(issuer=ISSUER, audience=AUDIENCE,
                                          roles=["scheduler"]))).status_code == 200
    rotated = SigningKey("rsa-2")
    provider.keys = [rotated]  # the provider rotates: the old key is withdrawn
    before = provider.fetches
    token = rotated.sign(claims(issuer=ISSUER, audience=AUDIENCE, roles=["scheduler"]))
    assert _get(client, token).status_code == 200
    assert provider.fetches == before + 1  # one refetch, for the unknown kid
    assert _get(client, token).status_code == 200
    assert provider.fetches == before + 1  # then from the cache


def test_unknown_kids_refetch_the_key_set_at_most_once_per_cooldown(
        production: Callable[..., Settings], provider: KeySet) -> None:
    client = create_app(production(oidc_jwks_refresh_cooldown_seconds=3600)).test_client()
    good = claims(issuer=ISSUER, audience=AUDIENCE, roles=["scheduler"])
    assert _get(client, provider.keys[0].sign(good)).status_code == 200
    fetched = provider.fetches
    for n in range(5):
        _refused(_get(client, SigningKey(f"made-up-{n}").sign(good)), "does not publish")
    assert provider.fetches == fetched  # a flood of made-up kids does not reach the provider


def test_claims_are_mapped_by_configuration(production: Callable[..., Settings],
                                            provider: KeySet) -> None:
    """A provider with its own names: roles in a top-level `groups` claim, the clinic's
    `clinic-scheduler` role, and the discipline in `dept`."""
    client = create_app(production(
        oidc_roles_claim="groups", oidc_role_aliases={"clinic-scheduler": "scheduler"},
        oidc_discipline_claim="dept", oidc_roles=("scheduler", "specialist", "triage_lead"),
    )).test_client()
    rsa = provider.keys[0]
    base = claims(issuer=ISSUER, audience=AUDIENCE, roles=[])
    assert _get(client, rsa.sign({**base, "groups": ["clinic-scheduler"]})).status_code == 200
    assert _get(client, rsa.sign({**base, "groups": ["specialist"],
                                  "dept": "psychology"})).status_code == 200
    _refused(_get(client, rsa.sign({**base, "groups": ["scheduler-not"]})), "no known role")


def test_development_accepts_local_tokens_beside_the_providers(
        settings_for: Callable[..., Settings], provider: KeySet) -> None:
    settings = settings_for("referrals", environment="development", jwt_secret="s" * 40,
                            oidc_issuer=ISSUER, oidc_jwks_url=provider.url)
    client = create_app(settings).test_client()
    local = mint_token(settings.jwt_secret, subject="sam", role="scheduler",
                       issuer=settings.jwt_issuer, audience=settings.jwt_audience)
    assert _get(client, local).status_code == 200
    assert _get(client, provider.keys[0].sign(claims(
        issuer=ISSUER, audience=AUDIENCE, roles=["scheduler"]))).status_code == 200
    forged = mint_token("t" * 40, subject="sam", role="scheduler",
                        issuer=settings.jwt_issuer, audience=settings.jwt_audience)
    _refused(_get(client, forged), "Signature verification failed")


def test_outside_development_a_service_without_a_key_source_refuses_to_start(
        settings_for: Callable[..., Settings]) -> None:
    with pytest.raises(ConfigurationError, match="set OIDC_ISSUER"):
        create_app(settings_for("referrals", environment="production", oidc_issuer=""))


def test_the_service_process_fails_closed_and_says_what_to_set(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OIDC_", "JWT_"))}
    env.update({"PAINCARE_ENV": "production", "JWT_SECRET": "left-over-secret",
                "REFERRALS_DATABASE_URL": f"sqlite:///{tmp_path / 'r.db'}",
                "KAFKA_ENABLED": "false", "PYTHONPATH": str(ROOT)})
    run = subprocess.run([sys.executable, "-c",
                          "from services.referrals.app import create_app; create_app()"],
                         env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert "ConfigurationError" in run.stderr and "set OIDC_ISSUER" in run.stderr


def test_development_never_falls_back_to_a_known_secret(tmp_path: Path) -> None:
    first = development_secret(tmp_path)
    assert len(first) >= 40 and development_secret(tmp_path) == first
    assert (tmp_path / "dev-jwt-secret").stat().st_mode & 0o077 == 0
    assert development_secret(tmp_path / "another-checkout") != first


def test_postgres_sslmode_is_set_by_database_sslmode_unless_the_url_names_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.config import with_sslmode

    url = "postgresql+psycopg://notes:p%40ss@db.clinic:5432/notes"
    assert with_sslmode(url, "verify-full") == url + "?sslmode=verify-full"
    named = url + "?sslmode=require&sslrootcert=/etc/clinic/pg-ca.pem"
    assert with_sslmode(named, "verify-full") == named
    assert with_sslmode("sqlite:///x.db", "verify-full") == "sqlite:///x.db"
    with pytest.raises(ConfigurationError, match="DATABASE_SSLMODE"):
        with_sslmode(url, "sometimes")
    monkeypatch.setenv("DATABASE_SSLMODE", "require")
    monkeypatch.setenv("NOTES_DATABASE_URL", url)
    assert Settings.for_service("notes").database_url.endswith("?sslmode=require")


def test_a_database_connection_honours_sslmode(database_url: str) -> None:
    """The tests' PostgreSQL server has no TLS: `require` is refused, `disable` connects,
    so the setting reaches libpq. A SQLite file has no TLS to ask for: left alone."""
    import sqlalchemy

    from shared.config import with_sslmode
    from shared.db import make_engine

    with make_engine(with_sslmode(database_url, "disable")).connect() as conn:
        assert conn.execute(sqlalchemy.text("select 1")).scalar() == 1
    if database_url.startswith("sqlite"):
        assert with_sslmode(database_url, "require") == database_url
        return
    engine = make_engine(with_sslmode(database_url, "require"))
    with pytest.raises(sqlalchemy.exc.OperationalError, match="SSL"):
        engine.connect()
    engine.dispose()


class _FakeProvider:
    """A token endpoint that counts the client-credentials grants it gives."""

    def __init__(self) -> None:
        self.grants: list[dict[str, Any]] = []

    def get(self, url: str, **kw: Any) -> Any:
        doc = {"token_endpoint": f"{ISSUER}/protocol/openid-connect/token"}
        return type("Answer", (), {"json": lambda self: doc})()

    def post(self, url: str, **kw: Any) -> Any:
        self.grants.append(kw["data"])
        body = {"access_token": f"token-{len(self.grants)}", "expires_in": 300}
        return type("Answer", (), {"json": lambda self: body})()


def test_a_services_own_token_comes_from_the_provider_and_is_kept_until_near_expiry() -> None:
    from shared.auth import ProviderUnavailable, ServiceTokens

    def settings_for(service: str, **overrides: Any) -> Settings:
        return Settings.for_service(service, database_url="sqlite://", **overrides)

    clock = [1000.0]
    fake = _FakeProvider()
    settings = settings_for("dashboard", environment="production", oidc_issuer=ISSUER,
                            oidc_client_id="paincare-services", oidc_client_secret="s3")
    tokens = ServiceTokens(settings, http=fake, clock=lambda: clock[0])
    assert tokens.token() == "token-1"
    clock[0] += 200
    assert tokens.token() == "token-1"  # still well within its 300 s
    clock[0] += 50
    assert tokens.token() == "token-2"  # within a minute of expiry: a fresh one
    assert fake.grants[0] == {"grant_type": "client_credentials",
                              "client_id": "paincare-services", "client_secret": "s3"}
    bare = settings_for("dashboard", environment="production", oidc_issuer=ISSUER)
    with pytest.raises(ProviderUnavailable, match="OIDC_CLIENT_ID"):
        ServiceTokens(bare).token()
