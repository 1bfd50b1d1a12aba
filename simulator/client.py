"""The simulated staff's way into PainCare: the public HTTP APIs with a signed token per
role, and a stopwatch on every call (latency per endpoint for the load proof)."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from shared.auth import mint_token
from shared.config import Settings

# Answers that say "not now", not "no": the request may be sent again.
TRANSIENT = frozenset({502, 503, 504})


class Unanswered(Exception):
    """No answer (connection refused or reset, timeout, 5xx during a fault): the action
    may or may not have happened."""


def percentile(values: list[float], p: float) -> float:
    """Nearest rank; NaN for no values (a column with nothing measured, not a zero)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


@dataclass
class Timings:
    """Seconds per endpoint ("POST /referrals/{id}/accept") and the status codes seen."""

    seconds: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, dict[int | str, int]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(int)))

    def __post_init__(self) -> None:
        self.lock = threading.Lock()

    def add(self, endpoint: str, status: int | str, seconds: float) -> None:
        with self.lock:
            self.seconds[endpoint].append(seconds)
            self.statuses[endpoint][status] += 1

    def rows(self) -> list[tuple[str, int, float, float, float, float, str]]:
        """(endpoint, calls, p50, p95, p99, max in ms, statuses) per endpoint."""
        out = []
        with self.lock:
            for endpoint, values in sorted(self.seconds.items()):
                codes = " ".join(f"{k}:{v}" for k, v in sorted(
                    self.statuses[endpoint].items(), key=lambda kv: str(kv[0])))
                out.append((endpoint, len(values), *(1000 * percentile(values, p)
                                                     for p in (50, 95, 99)),
                            1000 * max(values), codes))
        return out


class ClinicClient:
    """One simulated person's session: `as_(role, ...)` picks whose token a call carries."""

    def __init__(self, urls: dict[str, str], settings: Settings, timings: Timings | None = None,
                 *, timeout: float = 15.0) -> None:
        self.urls = urls
        self.settings = settings
        self.timings = timings or Timings()
        self.timeout = timeout
        self.http = requests.Session()
        self._tokens: dict[tuple, str] = {}

    def headers(self, role: str, subject: str, *, also: tuple[str, ...] = (),
                **claims: str) -> dict[str, str]:
        key = (role, subject, also, tuple(sorted(claims.items())))
        if key not in self._tokens:
            self._tokens[key] = mint_token(
                self.settings.jwt_secret, subject=subject, role=role, name=subject,
                issuer=self.settings.jwt_issuer, audience=self.settings.jwt_audience,
                also=also, **claims)
        return {"Authorization": f"Bearer {self._tokens[key]}"}

    def call(self, method: str, service: str, path: str, endpoint: str, auth: dict[str, str],
             *, json: Any = None, params: dict | None = None,
             extra_headers: dict[str, str] | None = None) -> requests.Response:
        """One request. Raises Unanswered when the outcome is unknown; any other answer
        (2xx or 4xx) is returned for the caller to judge."""
        started = time.perf_counter()
        try:
            resp = self.http.request(method, self.urls[service] + path, json=json,
                                     params=params, timeout=self.timeout,
                                     headers={**auth, **(extra_headers or {})})
        except requests.RequestException as exc:
            self.timings.add(f"{method} {endpoint}", "error", time.perf_counter() - started)
            raise Unanswered(f"{method} {path}: {exc.__class__.__name__}") from exc
        self.timings.add(f"{method} {endpoint}", resp.status_code,
                         time.perf_counter() - started)
        if resp.status_code in TRANSIENT or resp.status_code >= 500:
            raise Unanswered(f"{method} {path}: {resp.status_code}")
        return resp

    def retrying(self, method: str, service: str, path: str, endpoint: str,
                 auth: dict[str, str], *, patience: float = 90.0, **kwargs: Any
                 ) -> requests.Response:
        """For requests that are safe to repeat (reads, idempotent writes): try again
        through a fault for up to `patience` seconds."""
        deadline = time.monotonic() + patience
        pause = 0.2
        while True:
            try:
                return self.call(method, service, path, endpoint, auth, **kwargs)
            except Unanswered:
                if time.monotonic() > deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 3.0)


def act_once(send: Callable[[], requests.Response], happened: Callable[[], bool], *,
             patience: float) -> requests.Response | None:
    """Send an action that must not be done twice. Without an answer, look whether it
    happened and send again only if it did not. Returns the answer, or None when the
    look found it done; raises Unanswered when `patience` runs out."""
    deadline = time.monotonic() + patience
    while True:
        try:
            return send()
        except Unanswered:
            try:
                if happened():
                    return None
            except Unanswered:
                pass
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
