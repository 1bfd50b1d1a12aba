"""Bearer JWTs: who is asking, with which role, and (for specialists) which discipline.

Roles (ROLES below): scheduler, specialist (with a discipline), admin (operations), service
accounts, triage_lead, privacy_officer and referrer (a referring system). Every
request but health, metrics and the API docs needs a valid token (401); a route names
the roles it allows (403 otherwise).

Two kinds of token, each verified only with its own algorithms (no alg confusion):
- the clinic's OpenID Connect provider's access tokens (RS256/ES256), verified against
  its JWKS (`OidcVerifier`): issuer, audience and expiry checked; roles, discipline and
  provider id read from the claims a `ClaimMapping` names (Keycloak: realm roles in
  `realm_access.roles`, user attributes mapped to `discipline` and `provider_id`);
- local HS256 tokens (`mint_token`, scripts/mint_token.py) for development only: a
  service outside development refuses to start without a provider (shared.config).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from shared.errors import ClinicError, Forbidden, Unauthorized

log = logging.getLogger(__name__)

# The order is the precedence of a token's main role (`Principal.role`); a token may carry
# several (`Principal.roles`): a pain-medicine specialist who is also the triage lead.
# admin is the operations role (health, lag, dead letters, users, the duty rota): it reads
# no clinical content but through break-glass. triage_lead sees the referrals waiting for
# triage and decides on referrals; privacy_officer hears of break-glass and reads the
# audit; referrer is a referring system: it sends referrals and reads the status of its own.
ROLES = ("scheduler", "specialist", "admin", "service", "triage_lead", "privacy_officer",
         "referrer")
DISCIPLINES = ("pain_medicine", "physical_therapy", "psychology", "acupuncture")
PROVIDER_ALGORITHMS = ("RS256", "ES256")
LOCAL_ALGORITHM = "HS256"


@dataclass(frozen=True)
class Principal:
    subject: str
    role: str
    name: str = ""
    discipline: str | None = None
    provider_id: str | None = None
    roles: tuple[str, ...] = ()  # every PainCare role the token carries; `role` is the first

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def has(self, role: str) -> bool:
        """Whether the token carries this role, as its main role or beside it."""
        return role == self.role or role in self.roles

    def require(self, *roles: str) -> None:
        if not any(self.has(r) for r in roles):
            raise Forbidden(f"role {self.role!r} may not do this; needs one of {sorted(roles)}")


@dataclass(frozen=True)
class ClaimMapping:
    """Where a token keeps what PainCare reads, so a clinic's provider is mapped by
    configuration, not code.

    `roles_claim` is a dotted path to a string or a list of strings. A provider's role
    named in `role_aliases` is renamed (e.g. `clinic-scheduler` → `scheduler`); the
    token's PainCare role is the first of `known_roles` it carries, so the order is the
    precedence. A role PainCare has not been told of (e.g. `triage_lead` before its
    routes exist) is ignored until it is added to `known_roles`.
    """

    roles_claim: str = "realm_access.roles"
    known_roles: tuple[str, ...] = ROLES
    role_aliases: Mapping[str, str] = field(default_factory=dict)
    discipline_claim: str = "discipline"
    provider_id_claim: str = "provider_id"
    name_claims: tuple[str, ...] = ("name", "preferred_username")
    also_roles_claim: str | None = None  # local tokens: roles beside the main `role`

    @classmethod
    def local(cls) -> ClaimMapping:
        """The claims of tokens minted here (`mint_token`)."""
        return cls(roles_claim="role", name_claims=("name",), also_roles_claim="roles")

    def principal(self, claims: Mapping[str, Any]) -> Principal:
        named = _strings(_path(claims, self.roles_claim))
        if self.also_roles_claim:
            named += _strings(_path(claims, self.also_roles_claim))
        roles = [self.role_aliases.get(r, r) for r in named]
        mine = tuple(r for r in self.known_roles if r in roles)
        if not mine:
            raise Unauthorized("the token carries no known role")
        role = mine[0]
        discipline = _first(_path(claims, self.discipline_claim))
        if "specialist" in mine and discipline not in DISCIPLINES:
            raise Unauthorized("a specialist's token must name a discipline")
        name = next((str(claims[c]) for c in self.name_claims if claims.get(c)), "")
        return Principal(subject=str(claims["sub"]), role=role, name=name,
                         discipline=discipline if discipline in DISCIPLINES else None,
                         provider_id=_first(_path(claims, self.provider_id_claim)), roles=mine)


def _path(claims: Mapping[str, Any], dotted: str) -> Any:
    value: Any = claims
    for part in dotted.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [v for v in value if isinstance(v, str)]
    return []


def _first(value: Any) -> str | None:
    found = _strings(value)
    return found[0] if found else None


def mint_token(secret: str, *, subject: str, role: str, name: str = "",
               discipline: str | None = None, provider_id: str | None = None,
               issuer: str = "paincare-local", audience: str = "paincare",
               ttl: timedelta = timedelta(hours=12), now: datetime | None = None,
               also: tuple[str, ...] = ()) -> str:
    """A local development token (HS256), as the services accept only in development;
    `also` names roles the token carries beside `role` (e.g. triage_lead)."""
    if not secret:
        raise ValueError("no local JWT secret: local tokens are for development only")
    for r in (role, *also):
        if r not in ROLES:
            raise ValueError(f"unknown role {r!r}")
    if role == "specialist" and discipline not in DISCIPLINES:
        raise ValueError("a specialist's token names one of " + ", ".join(DISCIPLINES))
    issued = now or datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": subject, "role": role, "name": name or subject, "iss": issuer,
              "aud": audience, "iat": issued, "exp": issued + ttl}
    if also:
        claims["roles"] = [role, *also]
    if discipline:
        claims["discipline"] = discipline
    if provider_id:
        claims["provider_id"] = provider_id
    return jwt.encode(claims, secret, algorithm=LOCAL_ALGORITHM)


CLOCK_SKEW_SECONDS = 30  # the provider's clock and ours may differ a little (iat, exp)


def _decode(token: str, key: Any, algorithms: list[str], *, issuer: str,
            audience: str) -> dict[str, Any]:
    try:
        return jwt.decode(token, key, algorithms=algorithms, issuer=issuer, audience=audience,
                          leeway=CLOCK_SKEW_SECONDS,
                          options={"require": ["exp", "sub", "iss", "aud"]})
    except jwt.ExpiredSignatureError:
        raise Unauthorized("the token has expired") from None
    except jwt.InvalidTokenError as exc:
        raise Unauthorized(f"the token is not valid: {exc}") from None


def verify_token(token: str, secret: str, *, issuer: str, audience: str) -> Principal:
    """A local development token (HS256 with the shared secret)."""
    if not secret:
        raise Unauthorized("local tokens are not accepted here")
    claims = _decode(token, secret, [LOCAL_ALGORITHM], issuer=issuer, audience=audience)
    return ClaimMapping.local().principal(claims)


class ProviderUnavailable(ClinicError):
    """The provider's keys could not be fetched, so no token can be checked now."""

    status = 503
    title = "Service unavailable"


class OidcVerifier:
    """The clinic's provider's access tokens, checked against its JWKS.

    PyJWT's PyJWKClient keeps the key set for `cache_seconds`; a token signed with a
    `kid` the cached set lacks (the provider rotated its keys) refetches the set once,
    at most once per `refresh_cooldown_seconds`, so a flood of made-up kids cannot make
    every request hit the provider.
    """

    def __init__(self, jwks_url: str, *, issuer: str, audience: str,
                 mapping: ClaimMapping | None = None, cache_seconds: float = 300,
                 refresh_cooldown_seconds: float = 30, timeout: float = 5) -> None:
        self.issuer = issuer
        self.audience = audience
        self.mapping = mapping or ClaimMapping()
        self.jwks = jwt.PyJWKClient(jwks_url, cache_jwk_set=True, lifespan=cache_seconds,
                                    timeout=timeout,
                                    cooldown_duration=refresh_cooldown_seconds)

    def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"the token is not valid: {exc}") from None
        if header.get("alg") not in PROVIDER_ALGORITHMS:
            raise Unauthorized("the token is not signed with the provider's algorithms "
                               f"({', '.join(PROVIDER_ALGORITHMS)})")
        if not header.get("kid"):
            raise Unauthorized("the token names no signing key (kid)")
        try:
            key = self.jwks.get_signing_key(str(header["kid"]))
        except jwt.PyJWKClientConnectionError as exc:
            log.warning("the identity provider's keys could not be fetched",
                        extra={"error": str(exc)[:200]})
            raise ProviderUnavailable("the identity provider's signing keys could not be "
                                      "fetched; try again shortly") from None
        except jwt.PyJWKClientError:
            raise Unauthorized("the token is signed with a key the identity provider "
                               "does not publish") from None
        claims = _decode(token, key, list(PROVIDER_ALGORITHMS), issuer=self.issuer,
                         audience=self.audience)
        return self.mapping.principal(claims)


class TokenVerifier:
    """What a service accepts: the provider's tokens, and local tokens where a local
    secret is set (development only; shared.config decides)."""

    def __init__(self, *, provider: OidcVerifier | Any | None, local_secret: str,
                 local_issuer: str, audience: str) -> None:
        self.provider = provider
        self.local_secret = local_secret
        self.local_issuer = local_issuer
        self.audience = audience

    def verify(self, token: str) -> Principal:
        try:
            alg = jwt.get_unverified_header(token).get("alg")
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"the token is not valid: {exc}") from None
        if alg == LOCAL_ALGORITHM and self.local_secret:
            return verify_token(token, self.local_secret, issuer=self.local_issuer,
                                audience=self.audience)
        if self.provider is not None:
            return self.provider.verify(token)
        if alg in PROVIDER_ALGORITHMS:
            raise Unauthorized("no identity provider is configured for this token")
        raise Unauthorized(f"the token is not valid: algorithm {alg!r} is not accepted")


def discover_jwks_url(issuer: str, *, timeout: float = 5) -> str:
    """The JWKS URL the issuer's OpenID Connect discovery document names."""
    import requests

    url = f"{issuer.rstrip('/')}/.well-known/openid-configuration"
    try:
        resp = requests.get(url, timeout=timeout)
        resp.raise_for_status()
        doc = resp.json()
    except (requests.RequestException, ValueError) as exc:
        raise ProviderUnavailable(f"the identity provider's discovery document could not "
                                  f"be read ({type(exc).__name__})") from None
    if doc.get("issuer", "").rstrip("/") != issuer.rstrip("/") or not doc.get("jwks_uri"):
        raise ProviderUnavailable("the identity provider's discovery document names another "
                                  "issuer or no jwks_uri")
    return str(doc["jwks_uri"])


class _LazyJwks:
    """An OidcVerifier made on first use, so a service starts while its provider is still
    starting (the discovery document is read then, not at import)."""

    def __init__(self, make: Any) -> None:
        self._make = make
        self._verifier: OidcVerifier | None = None

    def verify(self, token: str) -> Principal:
        if self._verifier is None:
            self._verifier = self._make()
        return self._verifier.verify(token)


def verifier_for(settings: Any) -> TokenVerifier:
    """The token verifier a service's settings ask for (shared.config.Settings)."""
    provider: Any = None
    if settings.oidc_issuer:
        mapping = ClaimMapping(roles_claim=settings.oidc_roles_claim,
                               known_roles=tuple(settings.oidc_roles),
                               role_aliases=dict(settings.oidc_role_aliases),
                               discipline_claim=settings.oidc_discipline_claim,
                               provider_id_claim=settings.oidc_provider_id_claim)

        def make() -> OidcVerifier:
            jwks_url = settings.oidc_jwks_url or discover_jwks_url(settings.oidc_issuer)
            return OidcVerifier(
                jwks_url, issuer=settings.oidc_issuer, audience=settings.jwt_audience,
                mapping=mapping, cache_seconds=settings.oidc_jwks_cache_seconds,
                refresh_cooldown_seconds=settings.oidc_jwks_refresh_cooldown_seconds)

        provider = _LazyJwks(make)
    return TokenVerifier(provider=provider,
                         local_secret=settings.jwt_secret if settings.is_development else "",
                         local_issuer=settings.jwt_issuer, audience=settings.jwt_audience)


class ServiceTokens:
    """A service's own bearer token for calling another service (the dashboard's probe).

    With the provider's client credentials (OIDC_CLIENT_ID, OIDC_CLIENT_SECRET: a
    confidential client whose service account has the `service` role) the token comes
    from the provider's token endpoint by the client-credentials grant and is kept until
    a minute before it expires; otherwise, in development, it is minted locally.
    """

    def __init__(self, settings: Any, *, http: Any = None,
                 clock: Any = None) -> None:
        import time

        import requests

        self.settings = settings
        self.http = http or requests
        self.clock = clock or time.time
        self._cached: tuple[str, float] | None = None

    def token(self) -> str:
        s = self.settings
        if s.oidc_issuer and s.oidc_client_id and s.oidc_client_secret:
            now = self.clock()
            if self._cached is None or self._cached[1] - 60 <= now:
                self._cached = self._from_provider(now)
            return self._cached[0]
        if s.is_development and s.jwt_secret:
            return mint_token(s.jwt_secret, subject=s.service, role="service",
                              issuer=s.jwt_issuer, audience=s.jwt_audience)
        raise ProviderUnavailable(f"{s.service} has no way to a service token: set "
                                  "OIDC_CLIENT_ID and OIDC_CLIENT_SECRET (a confidential "
                                  "client of the identity provider with the service role)")

    def _from_provider(self, now: float) -> tuple[str, float]:
        s = self.settings
        try:
            doc = self.http.get(f"{s.oidc_issuer}/.well-known/openid-configuration",
                                timeout=5).json()
            resp = self.http.post(doc["token_endpoint"], timeout=5, data={
                "grant_type": "client_credentials", "client_id": s.oidc_client_id,
                "client_secret": s.oidc_client_secret})
            body = resp.json()
            token = str(body["access_token"])
        except Exception as exc:
            log.warning("no service token from the identity provider",
                        extra={"error": type(exc).__name__})
            raise ProviderUnavailable("the identity provider gave no service token") from None
        return token, now + float(body.get("expires_in", 60))
