"""Who may sign in to the console, and how: the one place the clinic's identity provider
plugs in.

The console never stores users. An identity provider answers two questions for the
sign-in page: how to sign in (`describe`) and, for the local one, which users exist and a
token for one of them (`users`, `sign_in`). Every service verifies the token it is given
(shared.auth.verify_token), so a provider's tokens must carry the claims PainCare reads:
`sub`, `role`, `name`, and for specialists `discipline` and `provider_id`.

- `LocalIdentity` (CONSOLE_LOCAL_SIGNIN=true, the default on one machine): the users of
  scripts/mint_token.py, a scheduler, an admin and one specialist per provider of the
  scheduling service, each signed with the local JWT secret.
- `OidcIdentity` (CONSOLE_LOCAL_SIGNIN=false and CONSOLE_OIDC_AUTHORIZE_URL set): the
  page sends the person to the clinic's provider; it comes back to `/#token=<jwt>` (an
  implicit or BFF flow issuing tokens for the `paincare` audience). The console mints
  nothing.
- Neither: the page asks for a bearer token to be pasted.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import requests

from shared.auth import DISCIPLINES, mint_token
from shared.config import Settings
from shared.errors import Forbidden, NotFound

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LocalUser:
    """One person the local sign-in offers."""

    id: str
    role: str
    name: str
    discipline: str | None = None
    provider_id: str | None = None

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


BASE_USERS = (
    LocalUser("local-scheduler", "scheduler", "Scheduler (local)"),
    LocalUser("local-admin", "admin", "Administrator (local)"),
)


class LocalIdentity:
    """The token script's users, for one machine: a scheduler, an admin, and one
    specialist per provider of the scheduling service (subject and provider_id are the
    provider's id, so the care team and the diary recognise them)."""

    def __init__(self, settings: Settings, scheduling_url: str, *, timeout: float = 3.0,
                 http: Any = requests) -> None:
        self.settings = settings
        self.scheduling_url = scheduling_url.rstrip("/")
        self.timeout = timeout
        self.http = http  # requests, or a session; tests pass a fake

    def describe(self) -> dict[str, object]:
        return {"kind": "local"}

    def _token(self, user: LocalUser) -> str:
        s = self.settings
        return mint_token(s.jwt_secret, subject=user.id, role=user.role, name=user.name,
                          discipline=user.discipline, provider_id=user.provider_id,
                          issuer=s.jwt_issuer, audience=s.jwt_audience)

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
        specialists = [LocalUser(p["id"], "specialist", p["name"], p["discipline"], p["id"])
                       for p in self._providers() if p.get("discipline") in DISCIPLINES]
        if not specialists:  # no scheduling service yet: one specialist per discipline
            specialists = [LocalUser(f"local-{d}", "specialist",
                                     f"{d.replace('_', ' ').capitalize()} specialist (local)",
                                     d) for d in DISCIPLINES]
        specialists.sort(key=lambda u: (DISCIPLINES.index(u.discipline or ""), u.name))
        return [*BASE_USERS, *specialists]

    def sign_in(self, user_id: str) -> str:
        for user in self.users():
            if user.id == user_id:
                return self._token(user)
        raise NotFound(f"no local user {user_id!r}")


class OidcIdentity:
    """The clinic's OpenID Connect provider: the console only says where it is."""

    def __init__(self, authorize_url: str, client_id: str) -> None:
        self.authorize_url = authorize_url
        self.client_id = client_id

    def describe(self) -> dict[str, object]:
        return {"kind": "oidc", "authorize_url": self.authorize_url,
                "client_id": self.client_id}

    def users(self) -> list[LocalUser]:
        return []

    def sign_in(self, user_id: str) -> str:
        raise Forbidden("sign in with the clinic's identity provider")


class PastedToken(OidcIdentity):
    """No provider configured: a person pastes a token (scripts/mint_token.py)."""

    def __init__(self) -> None:
        super().__init__("", "")

    def describe(self) -> dict[str, object]:
        return {"kind": "token"}


def from_environment(settings: Settings, scheduling_url: str) -> IdentityProvider:
    """The provider this deployment uses (see the module's docstring)."""
    if os.environ.get("CONSOLE_LOCAL_SIGNIN", "true").lower() in ("1", "true", "yes"):
        return LocalIdentity(settings, scheduling_url)
    authorize = os.environ.get("CONSOLE_OIDC_AUTHORIZE_URL", "")
    if authorize:
        return OidcIdentity(authorize, os.environ.get("CONSOLE_OIDC_CLIENT_ID", "paincare"))
    return PastedToken()
