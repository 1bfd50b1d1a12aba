"""App factory for the clinic console: its pages at `/`, the sign-in door at `/auth`,
and `/api/<service>/...`, a thin proxy to the services' APIs. No database, no worker."""

from __future__ import annotations

import requests
from flask import Flask
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from services.console import identity as identities
from services.console import page, proxy
from services.console.signin import create_signin_app
from shared.config import Settings
from shared.web import create_service_app, serve_page


def create_app(settings: Settings | None = None, *, upstreams: proxy.Upstreams | None = None,
               identity: identities.IdentityProvider | None = None) -> Flask:
    settings = settings or Settings.for_service("console")
    upstreams = upstreams or proxy.Upstreams.from_environment()
    identity = identity or identities.from_environment(settings, upstreams.urls["scheduling"])

    def pages_installed() -> None:
        """Ready once the pages are there to serve; the services' own state is shown on
        the pages (a console that is up says which service is not)."""
        if not (page.STATIC / "index.html").exists():
            raise RuntimeError("the console's pages are missing")

    app = create_service_app(
        settings,
        title="PainCare clinic console",
        description="Pages for schedulers and specialists; /api/<service>/... forwards to "
                    "the services' APIs with the caller's own token.",
        blueprints=[],
        ready_checks=[pages_installed],
        extensions={"console.upstreams": upstreams, "console.http": requests.Session(),
                    "console.identity": identity},
    )
    app.register_blueprint(proxy.bp)
    signin = create_signin_app(settings, identity)
    app.wsgi_app = DispatcherMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, {"/auth": signin.wsgi_app})
    serve_page(app, "console", page.STATIC)
    return app
