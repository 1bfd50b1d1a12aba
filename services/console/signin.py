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


class CodeIn(ma.Schema):
    """What the page brings back from the provider: the code (from the query), the PKCE
    verifier it made before leaving, and the redirect URI it used."""

    code = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=4096))
    code_verifier = ma.fields.String(required=True, validate=[
        ma.validate.Length(min=43, max=128),
        ma.validate.Regexp(r"^[A-Za-z0-9._~-]+$", error="is not a PKCE verifier (RFC 7636)")])
    redirect_uri = ma.fields.Url(required=True, require_tld=False,
                                 validate=ma.validate.Length(max=2048))


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

    @app.post("/oidc/token")
    def oidc_token() -> Response:
        """The code flow's last step: code and verifier for the access token, and who it
        names as the services see it (the page shows the name, role and discipline)."""
        try:
            body = CodeIn().load(request.get_json(silent=True) or {})
            token, who = identity.exchange(body["code"], body["code_verifier"],
                                           body["redirect_uri"])
        except ma.ValidationError as exc:
            return problem(422, "Unprocessable content", "the sign-in could not be completed",
                           errors=exc.messages)  # type: ignore[arg-type]
        except ClinicError as exc:
            return problem(exc.status, exc.title, exc.detail)
        return jsonify({"token": token, "who": {
            "sub": who.subject, "name": who.name, "role": who.role, "roles": list(who.roles),
            "discipline": who.discipline, "provider_id": who.provider_id}})

    return app
