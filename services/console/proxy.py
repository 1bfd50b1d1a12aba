"""The console's same-origin door to the services: `/api/<service>/<path>` is forwarded to
that service with the signed-in person's own bearer token, so every service still decides
what this person may see and do (the console holds no rights of its own) and the browser
talks to one origin (no CORS, one place for the clinic's firewall rules)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import requests
from flask import Blueprint, Response, current_app, request

from shared import correlation
from shared.web import problem

UPSTREAM_DEFAULTS = {"referrals": "http://127.0.0.1:8001", "scheduling": "http://127.0.0.1:8002",
                     "notes": "http://127.0.0.1:8003", "notifier": "http://127.0.0.1:8004"}
# What the browser may send on, and what comes back to it.
FORWARDED_REQUEST = ("Authorization", "Content-Type", "Accept", "Idempotency-Key")
FORWARDED_RESPONSE = ("Content-Type", "Location", "Retry-After")
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]

bp = Blueprint("console_proxy", __name__)


@dataclass(frozen=True)
class Upstreams:
    """Where each service's API is, from REFERRALS_URL, SCHEDULING_URL, NOTES_URL and
    NOTIFIER_URL (one machine's ports by default)."""

    urls: dict[str, str]
    timeout: float = 15.0

    @classmethod
    def from_environment(cls) -> Upstreams:
        return cls({
            "referrals": os.environ.get("REFERRALS_URL", UPSTREAM_DEFAULTS["referrals"]),
            "scheduling": os.environ.get("SCHEDULING_URL", UPSTREAM_DEFAULTS["scheduling"]),
            "notes": os.environ.get("NOTES_URL", UPSTREAM_DEFAULTS["notes"]),
            "notifier": os.environ.get("NOTIFIER_URL", UPSTREAM_DEFAULTS["notifier"]),
        })

    def url(self, service: str, path: str) -> str | None:
        base = self.urls.get(service)
        return f"{base.rstrip('/')}/{path.lstrip('/')}" if base else None


def _upstreams() -> Upstreams:
    return current_app.extensions["console.upstreams"]


def _http() -> requests.Session:
    return current_app.extensions["console.http"]


@bp.route("/api/<service>/<path:path>", methods=METHODS)
def forward(service: str, path: str) -> Response:
    """One call to one service, answered as that service answered (status, body, type).
    The shared web layer has already checked the bearer token before this runs."""
    upstreams = _upstreams()
    target = upstreams.url(service, path)
    if target is None:
        return problem(404, "Not found", f"the console knows no service {service!r}")
    headers = {k: request.headers[k] for k in FORWARDED_REQUEST if k in request.headers}
    headers["X-Request-ID"] = correlation.request_id() or ""
    headers["X-Correlation-ID"] = correlation.correlation_id() or ""
    try:
        answer = _http().request(request.method, target, params=request.args,
                                 data=request.get_data(), headers=headers,
                                 timeout=upstreams.timeout, allow_redirects=False)
    except requests.Timeout:
        return problem(504, "Gateway timeout",
                       f"The {service} service did not answer in time. If you were saving "
                       "something, reload the page to see whether it was saved.",
                       service=service)
    except requests.RequestException:
        return problem(502, "Bad gateway",
                       f"The {service} service cannot be reached just now; nothing was "
                       "sent to it. Try again in a moment.", service=service)
    response = Response(answer.content, status=answer.status_code)
    for name in FORWARDED_RESPONSE:
        if name in answer.headers:
            response.headers[name] = answer.headers[name]
    response.headers["Cache-Control"] = "no-store"  # patient data stays out of caches
    return response
