"""The console's side of the code flow with PKCE: it says where the provider's
authorization endpoint is, exchanges a code and verifier at the token endpoint (never a
token in a URL), checks the token as the services do and says who it names; local sign-in
is for development only."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from services.console import identity as identities
from services.console.app import create_app
from services.console.proxy import Upstreams
from shared.config import Settings
from tests.support.jwks import KeySet, SigningKey, claims, serving

ISSUER = "http://idp.test/realms/paincare"
UPSTREAMS = Upstreams({"referrals": "http://referrals.test", "scheduling": "http://sched.test",
                       "notes": "http://notes.test", "notifier": "http://notifier.test"})
VERIFIER = "v" * 43
REDIRECT = "http://127.0.0.1:8006/"


class Answer:
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status_code, self.body = status, body

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise requests.HTTPError(str(self.status_code))

    def json(self) -> Any:
        return self.body


class FakeProvider:
    """The provider's discovery document and token endpoint; records the exchanges."""

    def __init__(self, key: SigningKey) -> None:
        self.key = key
        self.posts: list[dict[str, Any]] = []
        self.token_answer: Answer | None = None

    def get(self, url: str, **kw: Any) -> Answer:
        assert url == f"{ISSUER}/.well-known/openid-configuration"
        return Answer(200, {"issuer": ISSUER,
                            "authorization_endpoint": f"{ISSUER}/protocol/openid-connect/auth",
                            "token_endpoint": f"{ISSUER}/protocol/openid-connect/token",
                            "end_session_endpoint": f"{ISSUER}/protocol/openid-connect/logout"})

    def post(self, url: str, **kw: Any) -> Answer:
        self.posts.append({"url": url, **kw})
        if self.token_answer is not None:
            return self.token_answer
        token = self.key.sign(claims(issuer=ISSUER, audience=["paincare", "account"],
                                     roles=["default-roles-paincare", "specialist"],
                                     subject="kc-ingrid", name="Ingrid Lind",
                                     discipline="psychology", provider_id="prov-lind"))
        return Answer(200, {"access_token": token, "token_type": "Bearer"})


@pytest.fixture
def provider() -> Iterator[tuple[KeySet, FakeProvider]]:
    with serving(KeySet(SigningKey("k1"))) as keys:
        yield keys, FakeProvider(keys.keys[0])


def _settings(keys: KeySet, **overrides: Any) -> Settings:
    base: dict[str, Any] = {"database_url": "sqlite://", "environment": "production",
                            "jwt_secret": "", "oidc_issuer": ISSUER,
                            "oidc_jwks_url": keys.url}
    return Settings.for_service("console", **{**base, **overrides})


def _console(settings: Settings, fake: FakeProvider) -> Any:
    identity = identities.OidcIdentity(settings, "paincare-console", http=fake)
    return create_app(settings, upstreams=UPSTREAMS, identity=identity).test_client()


def test_the_page_learns_the_providers_authorization_endpoint_and_pkce(provider) -> None:
    keys, fake = provider
    config = _console(_settings(keys), fake).get("/auth/config").get_json()
    assert config["kind"] == "oidc"
    assert config["oidc"] == {
        "authorization_endpoint": f"{ISSUER}/protocol/openid-connect/auth",
        "end_session_endpoint": f"{ISSUER}/protocol/openid-connect/logout",
        "client_id": "paincare-console", "scope": "openid", "code_challenge_method": "S256"}


def test_a_code_and_its_verifier_buy_the_token_and_who_it_names(provider) -> None:
    keys, fake = provider
    client = _console(_settings(keys), fake)
    resp = client.post("/auth/oidc/token", json={"code": "abc", "code_verifier": VERIFIER,
                                                 "redirect_uri": REDIRECT})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["who"] == {"sub": "kc-ingrid", "name": "Ingrid Lind", "role": "specialist",
                           "roles": ["specialist"], "discipline": "psychology",
                           "provider_id": "prov-lind"}
    [post] = fake.posts
    assert post["url"] == f"{ISSUER}/protocol/openid-connect/token"
    assert post["data"] == {"grant_type": "authorization_code", "code": "abc",
                            "redirect_uri": REDIRECT, "client_id": "paincare-console",
                            "code_verifier": VERIFIER}
    # the token it got works on the console's own API, as on every service's
    who = client.get("/api/unknown/x", headers={"Authorization": f"Bearer {body['token']}"})
    assert who.status_code != 401


def test_a_refused_or_malformed_exchange_is_problem_json_naming_the_field(provider) -> None:
    keys, fake = provider
    client = _console(_settings(keys), fake)
    resp = client.post("/auth/oidc/token", json={"code": "abc", "code_verifier": "short",
                                                 "redirect_uri": "not a url"})
    assert resp.status_code == 422 and resp.mimetype == "application/problem+json"
    assert set(resp.get_json()["errors"]) == {"code_verifier", "redirect_uri"}
    assert fake.posts == []
    fake.token_answer = Answer(400, {"error": "invalid_grant",
                                     "error_description": "Code not valid"})
    resp = client.post("/auth/oidc/token", json={"code": "used", "code_verifier": VERIFIER,
                                                 "redirect_uri": REDIRECT})
    assert resp.status_code == 401 and "Code not valid" in resp.get_json()["detail"]
    # a token the services would refuse (another audience) is refused here too
    fake.token_answer = Answer(200, {"access_token": keys.keys[0].sign(claims(
        issuer=ISSUER, audience="another-app", roles=["scheduler"]))})
    resp = client.post("/auth/oidc/token", json={"code": "abc", "code_verifier": VERIFIER,
                                                 "redirect_uri": REDIRECT})
    assert resp.status_code == 401 and "audience" in resp.get_json()["detail"].lower()


def test_local_sign_in_is_offered_beside_the_provider_only_in_development(
        provider, monkeypatch) -> None:
    keys, fake = provider
    monkeypatch.setenv("CONSOLE_LOCAL_SIGNIN", "true")
    dev = _settings(keys, environment="development", jwt_secret="d" * 40)
    both = identities.from_environment(dev, "http://sched.test")
    assert isinstance(both, identities.LocalIdentity) and both.oidc is not None
    prod = identities.from_environment(_settings(keys), "http://sched.test")
    assert isinstance(prod, identities.OidcIdentity)
    client = _console(_settings(keys), fake)
    assert client.post("/auth/local", json={"user_id": "local-admin"}).status_code == 403


def test_the_page_never_puts_a_token_in_a_url() -> None:
    """The page's code flow: S256 challenge, the code back in the query, exchanged by POST."""
    from services.console.page import STATIC

    page = (STATIC / "app.js").read_text()
    assert 'code_challenge_method: "S256"' in page and 'response_type: "code"' in page
    assert "response_type=token" not in page and "#token=" not in page
    assert json.dumps("/auth/oidc/token") in page
