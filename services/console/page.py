"""The console's pages: one HTML file, its modules and styles, served from the console
itself (no CDN: a clinic may have no internet). They carry no patient data and are
public; everything they show comes from the services through the proxy, under the
signed-in person's token."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, send_from_directory

STATIC = Path(__file__).resolve().parent / "static"
URL = "/static/console"
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")

bp = Blueprint("console_page", __name__)


@bp.get(URL + "/<path:filename>")
def asset(filename: str) -> Response:
    response = send_from_directory(STATIC, filename, max_age=0)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


class PageAtRoot:
    """WSGI middleware: `/` is the page (the page routes itself by its #fragment).
    Every other path is the app's, under its authentication."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        if environ.get("PATH_INFO") in ("/", "", "/index.html"):
            environ["PATH_INFO"] = URL + "/index.html"
        return self.app(environ, start_response)
