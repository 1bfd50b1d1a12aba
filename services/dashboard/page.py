"""The dashboard page: one HTML file with its own script and styles, no CDN (a clinic may
have no internet). The page carries no data and is public; it signs in with an admin's
token and asks the JSON API, which is not."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, send_from_directory

STATIC = Path(__file__).resolve().parent / "static"
URL = "/static/dashboard"

bp = Blueprint("dashboard_page", __name__)


@bp.get(URL + "/<path:filename>")
def asset(filename: str) -> Response:
    response = send_from_directory(STATIC, filename, max_age=0)
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'")
    return response


class PageAtRoot:
    """WSGI middleware: `/` is the page. Every other path is the app's, under its
    authentication (the shared web layer lets `/static/` through, nothing else)."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        if environ.get("PATH_INFO") in ("/", "", "/index.html"):
            environ["PATH_INFO"] = URL + "/index.html"
        return self.app(environ, start_response)
