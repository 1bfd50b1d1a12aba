"""The referrals service's public intake API, as the gateway calls it: POST /referrals
with an Idempotency-Key, on behalf of the caller (their bearer token is passed on, so
referrals authorises and records the real person or system)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import requests

from shared.errors import ClinicError


class ReferralsUnavailable(ClinicError):
    status = 503
    title = "Service unavailable"


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]


class ReferralsIntake(Protocol):
    def create(self, body: dict[str, Any], *, idempotency_key: str | None,
               authorization: str) -> Answer: ...


class HttpReferrals:
    """Referrals over HTTP (production, e2e)."""

    def __init__(self, base_url: str, *, timeout: float = 15.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.http = requests.Session()

    def create(self, body: dict[str, Any], *, idempotency_key: str | None,
               authorization: str) -> Answer:
        headers = {"Authorization": authorization, "Content-Type": "application/json"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        try:
            resp = self.http.post(f"{self.base_url}/referrals", json=body, headers=headers,
                                  timeout=self.timeout)
        except requests.RequestException as exc:
            raise ReferralsUnavailable("the referrals service cannot be reached just now; "
                                       "nothing was created. Try again shortly.") from exc
        try:
            data = resp.json()
        except ValueError:
            data = {}
        return Answer(resp.status_code, data if isinstance(data, dict) else {})
