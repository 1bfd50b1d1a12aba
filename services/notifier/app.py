"""App factory for the notifier service's HTTP API, served by gunicorn."""

from flask import Flask

from services.notifier.api import blp
from services.notifier.wiring import build_runtime
from shared import ops
from shared.config import Settings
from shared.runtime import Runtime
from shared.web import create_service_app


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None) -> Flask:
    runtime = runtime or build_runtime(settings)
    runtime.create_schema()
    return create_service_app(
        runtime.settings,
        title="PainCare notifier",
        description="Confirmations, reminders and care-team alerts.",
        blueprints=[ops.blp, blp],
        ready_checks=runtime.ready_checks(),
        extensions={"paincare.runtime": runtime},
    )
