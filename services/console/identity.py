"""Who may sign in to the console, and how: the one place the clinic's identity provider
plugs in.

The console never stores users. An identity provider answers the sign-in page's
questions: how to sign in (`describe`), for the local one which users exist and a token
for one of them (`users`, `sign_in`), and for the clinic's OpenID Connect provider the
exchange of an authorization code for an access token (`exchange`). Every service
verifies the token it is given (shared.auth), so the console only carries it.

- `OidcIdentity` (OIDC_ISSUER set; CONSOLE_OIDC_CLIENT_ID, a public client): the
  authorization-code flow with PKCE (S256). The page makes the verifier and the state,
  sends the person to the provider's authorization endpoint (from its discovery
  document), gets the code back in the query of `/` (never a token in a URL), and posts
  code and verifier to `/auth/oidc/token`; the console exchanges them at the provider's
  token endpoint (server to server: the page's CSP allows no other origin) and answers
  the access token with who it names (the services' own claim mapping), which the page
  keeps in sessionStorage like a local token.
- `LocalIdentity` (CONSOLE_LOCAL_SIGNIN=true, development only): the users of
  scripts/mint_token.py, a scheduler, an admin and one specialist per provider of the
  scheduling service, each signed with the local JWT secret; offered beside the
  provider's button when both are configured (`make up` with Keycloak).
- Neither: the page asks for a bearer token to be pasted.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import requests

from shared.auth import DISCIPLINES, Principal, ProviderUnavailable, mint_token, verifier_for
from shared.config import Settings
from shared.errors import Forbidden, NotFound, Unauthorized

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LocalUser:
    """One person the local sign-in offers."""

    id: str
    role: str
    name: str
    discipline: str | None = None
    provider_id: str | None = None
    also: tuple[str, ...] = ()  # roles beside `role`: a pain-medicine lead triages

    def as_dict(self) -> dict[str, str | None]:
        return asdict(self)


class IdentityProvider(Protocol):
    """What the sign-in page needs from an identity provider."""

    def describe(self) -> dict[str, object]:
        """`kind` (local, oidc, token) and what the page needs to start a sign-in."""
        ...

    def users(self) -> list[LocalUser]:
        """The users a person may pick (local sign-in only; others answer [])."""
        ...

    def sign_in(self, user_id: str) -> str:
        """A bearer token for the user (local sign-in only; others refuse)."""
        ...

    def exchange(self, code: str, verifier: str, redirect_uri: str) -> tuple[str, Principal]:
        """The access token an authorization code (and its PKCE verifier) buys, and who
        it names (OpenID Connect only; others refuse)."""
        ...


BASE_USERS = (
    LocalUser("local-scheduler", "scheduler", "Scheduler (local)"),
    LocalUser("local-admin", "admin", "Administrator (local)"),
)


class LocalIdentity:
    """The token script's users, for one machine: a scheduler, an admin, and one
    specialist per provider of the scheduling service (subject and provider_id are the
    provider's id, so the care team and the diary recognise them)."""

    def __init__(self, settings: Settings, scheduling_url: str, *, timeout: float = 3.0,
                 http: Any = requests, oidc: OidcIdentity | None = None) -> None:
        self.settings = settings
        self.scheduling_url = scheduling_url.rstrip("/")
        self.timeout = timeout
        self.http = http  # requests, or a session; tests pass a fake
        self.oidc = oidc  # the clinic's provider, offered beside the local users

    def describe(self) -> dict[str, object]:
        if self.oidc is None:
            return {"kind": "local"}
        return {**self.oidc.describe(), "kind": "local"}

    def exchange(self, code: str, verifier: str, redirect_uri: str) -> tuple[str, Principal]:
        if self.oidc is None:
            raise Forbidden("this console has no identity provider; pick a local user")
        return self.oidc.exchange(code, verifier, redirect_uri)

    def _token(self, user: LocalUser) -> str:
        s = self.settings
        return mint_token(s.jwt_secret, subject=user.id, role=user.role, name=user.name,
                          discipline=user.discipline, provider_id=user.provider_id,
                          issuer=s.jwt_issuer, audience=s.jwt_audience, also=user.also)

    def _providers(self) -> list[dict]:
        service = self._token(LocalUser("console-signin", "service", "Console sign-in"))
        try:
            resp = self.http.get(f"{self.scheduling_url}/providers", timeout=self.timeout,
                                headers={"Authorization": f"Bearer {service}"})
            resp.raise_for_status()
            return list(resp.json())
        except (requests.RequestException, ValueError) as exc:
            log.warning("could not list providers for the local sign-in",
                        extra={"error": str(exc)[:200]})
            return []

    def users(self) -> list[LocalUser]:
        # on one machine each pain-medicine specialist is also the triage lead
        specialists = [LocalUser(p["id"], "specialist", p["name"], p["discipline"], p["id"],
                                 ("triage_lead",) if p["discipline"] == "pain_medicine"
                                 else ())
                       for p in self._providers() if p.get("discipline") in DISCIPLINES]
        if not specialists:  # no scheduling service yet: one specialist per discipline
            specialists = [LocalUser(f"local-{d}", "specialist",
                                     f"{d.replace('_', ' ').capitalize()} specialist (local)",
                                     d, None, ("triage_lead",) if d == "pain_medicine"
                                     else ()) for d in DISCIPLINES]
        specialists.sort(key=lambda u: (DISCIPLINES.index(u.discipline or ""), u.name))
        return [*BASE_USERS, *specialists]

    def sign_in(self, user_id: str) -> str:
        for user in self.users():
            if user.id == user_id:
                return self._token(user)
        raise NotFound(f"no local user {user_id!r}")


class OidcIdentity:
    """The clinic's OpenID Connect provider, a public client with the code flow and PKCE:
    its endpoints come from the issuer's discovery document, read when first needed (so
    the console starts while the provider is still starting) and then kept."""

    def __init__(self, settings: Settings, client_id: str, *, timeout: float = 5.0,
                 http: Any = requests) -> None:
        self.settings = settings
        self.issuer = settings.oidc_issuer
        self.client_id = client_id
        self.timeout = timeout
        self.http = http
        self.verifier = verifier_for(settings)
        self._endpoints: dict[str, str] | None = None

    def endpoints(self) -> dict[str, str]:
        if self._endpoints is None:
            url = f"{self.issuer}/.well-known/openid-configuration"
            try:
                resp = self.http.get(url, timeout=self.timeout)
                resp.raise_for_status()
                doc = resp.json()
                found = {k: str(doc[k]) for k in ("authorization_endpoint", "token_endpoint")}
            except (requests.RequestException, ValueError, KeyError) as exc:
                log.warning("the identity provider's discovery document could not be read",
                            extra={"error": str(exc)[:200]})
                raise ProviderUnavailable("the clinic's identity provider does not answer; "
                                          "try again shortly") from None
            found["end_session_endpoint"] = str(doc.get("end_session_endpoint") or "")
            self._endpoints = found
        return self._endpoints

    def describe(self) -> dict[str, object]:
        try:
            ends = self.endpoints()
        except ProviderUnavailable:
            return {"kind": "oidc", "oidc": None}
        return {"kind": "oidc", "oidc": {
            "authorization_endpoint": ends["authorization_endpoint"],
            "end_session_endpoint": ends["end_session_endpoint"],
            "client_id": self.client_id, "scope": "openid",
            "code_challenge_method": "S256"}}

    def users(self) -> list[LocalUser]:
        return []

    def sign_in(self, user_id: str) -> str:
        raise Forbidden("sign in with the clinic's identity provider")

    def exchange(self, code: str, verifier: str, redirect_uri: str) -> tuple[str, Principal]:
        try:
            resp = self.http.post(self.endpoints()["token_endpoint"], timeout=self.timeout,
                                  data={"grant_type": "authorization_code", "code": code,
                                        "redirect_uri": redirect_uri,
                                        "client_id": self.client_id,
                                        "code_verifier": verifier})
        except requests.RequestException as exc:
            log.warning("the identity provider's token endpoint did not answer",
                        extra={"error": str(exc)[:200]})
            raise ProviderUnavailable("the clinic's identity provider does not answer; "
                                      "try again shortly") from None
        try:
            body = resp.json()
        except ValueError:
            body = {}
        if resp.status_code != 200 or not body.get("access_token"):
            # the provider's reason (e.g. invalid_grant: a used or expired code) in its words
            reason = str(body.get("error_description") or body.get("error") or resp.status_code)
            raise Unauthorized(f"the identity provider refused the sign-in: {reason[:200]}")
        token = str(body["access_token"])
        return token, self.verifier.verify(token)  # the services' own check and mapping


class PastedToken:
    """No provider configured: a person pastes a token (scripts/mint_token.py)."""

    def describe(self) -> dict[str, object]:
        return {"kind": "token"}

    def users(self) -> list[LocalUser]:
        return []

    def sign_in(self, user_id: str) -> str:
        raise Forbidden("paste a bearer token to sign in")

    def exchange(self, code: str, verifier: str, redirect_uri: str) -> tuple[str, Principal]:
        raise Forbidden("this console has no identity provider")


def from_environment(settings: Settings, scheduling_url: str) -> IdentityProvider:
    """The provider this deployment uses (see the module's docstring)."""
    oidc = None
    if settings.oidc_issuer:
        oidc = OidcIdentity(settings, os.environ.get("CONSOLE_OIDC_CLIENT_ID",
                                                     "paincare-console"))
    local = os.environ.get("CONSOLE_LOCAL_SIGNIN", "true").lower() in ("1", "true", "yes")
    if local and settings.is_development and settings.jwt_secret:
        return LocalIdentity(settings, scheduling_url, oidc=oidc)
    if local and not settings.is_development:
        log.warning("CONSOLE_LOCAL_SIGNIN is ignored outside development")
    return oidc or PastedToken()
