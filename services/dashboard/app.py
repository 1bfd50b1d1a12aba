"""App factory for the ops dashboard: its page at `/` and its admin-only JSON API."""

from flask import Flask

from services.dashboard import api, page
from services.dashboard.probe import PlatformProbe
from services.dashboard.wiring import build_runtime
from shared import ops
from shared.config import Settings
from shared.runtime import Runtime
from shared.web import create_service_app, serve_page


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None,
               probe: PlatformProbe | None = None) -> Flask:
    runtime = runtime or build_runtime(settings)
    runtime.create_schema()
    app = create_service_app(
        runtime.settings,
        title="PainCare ops dashboard",
        description="Service health, Kafka, dead letters, outboxes and the clinic's "
                    "figures, for administrators.",
        blueprints=[ops.blp, api.blp],
        ready_checks=runtime.ready_checks(),
        extensions={"paincare.runtime": runtime,
                    "dashboard.probe": probe or PlatformProbe(runtime)},
    )
    serve_page(app, "dashboard", page.STATIC)
    return app
