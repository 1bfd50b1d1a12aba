"""The sign-in door, `/auth/...`: where bearer tokens come from, so it is the one part of
the console that takes no token. It is a small app of its own, mounted beside the main
one, so the shared web layer's rule (every path but probes and static assets needs a
token) stays whole for everything else."""

from __future__ import annotations

import marshmallow as ma
from flask import Flask, Response, jsonify, request

from services.console.identity import IdentityProvider
from shared.config import Settings
from shared.errors import ClinicError
from shared.web import problem


class SignInIn(ma.Schema):
    user_id = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=64))


def create_signin_app(settings: Settings, identity: IdentityProvider) -> Flask:
    app = Flask("console-signin")

    @app.after_request
    def _no_store(resp: Response) -> Response:
        resp.headers["Cache-Control"] = "no-store"
        return resp

    @app.get("/config")
    def config() -> Response:
        """How this console signs people in, and the clinic's time zone for the pages."""
        return jsonify({**identity.describe(), "clinic_timezone": settings.clinic_timezone})

    @app.get("/users")
    def users() -> Response:
        return jsonify([u.as_dict() for u in identity.users()])

    @app.post("/local")
    def local() -> Response:
        try:
            body = SignInIn().load(request.get_json(silent=True) or {})
            token = identity.sign_in(body["user_id"])
        except ma.ValidationError as exc:
            return problem(422, "Unprocessable content", "choose a user to sign in as",
                           errors=exc.messages)  # type: ignore[arg-type]
        except ClinicError as exc:
            return problem(exc.status, exc.title, exc.detail)
        return jsonify({"token": token})

    return app
