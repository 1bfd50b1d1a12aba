"""Bearer JWTs: who is asking, with which role, and (for specialists) which discipline.

Roles: scheduler, specialist (with a discipline), admin, and service accounts. Every
request but health, metrics and the API docs needs a valid token (401); a route names
the roles it allows (403 otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from shared.errors import Forbidden, Unauthorized

ROLES = ("scheduler", "specialist", "admin", "service")
DISCIPLINES = ("pain_medicine", "physical_therapy", "psychology", "acupuncture")


@dataclass(frozen=True)
class Principal:
    subject: str
    role: str
    name: str = ""
    discipline: str | None = None
    provider_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def require(self, *roles: str) -> None:
        if self.role not in roles:
            raise Forbidden(f"role {self.role!r} may not do this; needs one of {sorted(roles)}")


def mint_token(secret: str, *, subject: str, role: str, name: str = "",
               discipline: str | None = None, provider_id: str | None = None,
               issuer: str = "paincare-local", audience: str = "paincare",
               ttl: timedelta = timedelta(hours=12), now: datetime | None = None) -> str:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    if role == "specialist" and discipline not in DISCIPLINES:
        raise ValueError("a specialist's token names one of " + ", ".join(DISCIPLINES))
    issued = now or datetime.now(UTC)
    claims = {"sub": subject, "role": role, "name": name or subject, "iss": issuer,
              "aud": audience, "iat": issued, "exp": issued + ttl}
    if discipline:
        claims["discipline"] = discipline
    if provider_id:
        claims["provider_id"] = provider_id
    return jwt.encode(claims, secret, algorithm="HS256")


def verify_token(token: str, secret: str, *, issuer: str, audience: str) -> Principal:
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], issuer=issuer,
                            audience=audience, options={"require": ["exp", "sub", "iss"]})
    except jwt.ExpiredSignatureError:
        raise Unauthorized("the token has expired") from None
    except jwt.InvalidTokenError as exc:
        raise Unauthorized(f"the token is not valid: {exc}") from None
    role = claims.get("role")
    if role not in ROLES:
        raise Unauthorized("the token carries no known role")
    discipline = claims.get("discipline")
    if role == "specialist" and discipline not in DISCIPLINES:
        raise Unauthorized("a specialist's token must name a discipline")
    return Principal(subject=str(claims["sub"]), role=role, name=str(claims.get("name", "")),
                     discipline=discipline, provider_id=claims.get("provider_id"))
