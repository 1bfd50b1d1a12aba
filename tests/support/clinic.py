"""Small tools for clinic stories in tests: tokens for each role, waiting for an
asynchronous effect, reading a topic (the reconciliation's reader, one way)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from shared.auth import mint_token
from shared.config import Settings
from simulator.reconcile import read_topic

__all__ = ["bearer", "read_topic", "token", "wait_for"]

T = TypeVar("T")


def token(settings: Settings, role: str, subject: str | None = None, *,
          also: tuple[str, ...] = (), **claims: str) -> str:
    """A local token; `also` names roles beside `role` (e.g. ("triage_lead",))."""
    return mint_token(settings.jwt_secret, subject=subject or f"{role}-1", role=role,
                      issuer=settings.jwt_issuer, audience=settings.jwt_audience, also=also,
                      **claims)


def bearer(settings: Settings, role: str, subject: str | None = None, *,
           also: tuple[str, ...] = (), **claims: str) -> dict:
    return {"Authorization": f"Bearer {token(settings, role, subject, also=also, **claims)}"}


def wait_for(probe: Callable[[], T], *, timeout: float = 30.0, interval: float = 0.1,
             what: str = "condition") -> T:
    """Poll until `probe` returns something truthy; fail the test with `what` if not."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
