"""A key set served over real HTTP, as an identity provider publishes its JWKS, and tokens
signed with its keys: for the services' token checks without a provider process."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm


class SigningKey:
    """One key pair of the provider, with its key id."""

    def __init__(self, kid: str, alg: str = "RS256") -> None:
        self.kid = kid
        self.alg = alg
        if alg == "ES256":
            self.private = ec.generate_private_key(ec.SECP256R1())
            self.jwk = json.loads(ECAlgorithm.to_jwk(self.private.public_key()))
        else:
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self.jwk = json.loads(RSAAlgorithm.to_jwk(self.private.public_key()))
        self.jwk.update({"kid": kid, "alg": alg, "use": "sig"})

    def sign(self, claims: dict[str, Any], *, kid: str | None = None) -> str:
        return jwt.encode(claims, self.private, algorithm=self.alg,
                          headers={"kid": kid or self.kid})


class KeySet:
    """The keys the provider publishes now, and how often its JWKS was fetched."""

    def __init__(self, *keys: SigningKey) -> None:
        self.keys = list(keys)
        self.fetches = 0
        self.url = ""

    def document(self) -> bytes:
        self.fetches += 1
        return json.dumps({"keys": [k.jwk for k in self.keys]}).encode()


@contextmanager
def serving(keyset: KeySet) -> Iterator[KeySet]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = keyset.document()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    keyset.url = f"http://127.0.0.1:{server.server_address[1]}/certs"
    try:
        yield keyset
    finally:
        server.shutdown()
        server.server_close()


def claims(*, issuer: str, audience: str | list[str], roles: list[str], subject: str = "u-1",
           now: datetime | None = None, ttl: timedelta = timedelta(minutes=5),
           **extra: Any) -> dict[str, Any]:
    """An access token's claims in Keycloak's shape (realm roles under realm_access)."""
    issued = now or datetime.now(UTC)
    return {"iss": issuer, "aud": audience, "sub": subject, "iat": issued,
            "exp": issued + ttl, "realm_access": {"roles": roles},
            "preferred_username": subject, **extra}
