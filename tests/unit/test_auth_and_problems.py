"""Tokens, roles and problem documents, through a bare service app (no broker)."""

from datetime import UTC, datetime, timedelta

import marshmallow as ma
import pytest
from flask_smorest import Blueprint
from sqlalchemy.exc import OperationalError

from shared.auth import mint_token, verify_token
from shared.config import Settings
from shared.errors import Conflict, Unauthorized
from shared.web import create_service_app, roles
from tests.support.clinic import bearer

SECRET = "a-test-secret-that-is-long-enough-for-hs256"


def test_a_specialist_token_carries_the_discipline():
    token = mint_token(SECRET, subject="dr-a", role="specialist", discipline="psychology")
    p = verify_token(token, SECRET, issuer="paincare-local", audience="paincare")
    assert (p.subject, p.role, p.discipline) == ("dr-a", "specialist", "psychology")


@pytest.mark.parametrize("make, message", [
    (lambda: mint_token(SECRET, subject="x", role="admin",
                        now=datetime.now(UTC) - timedelta(days=2)), "expired"),
    (lambda: mint_token("another-secret-long-enough-for-hs256-sha", subject="x",
                        role="admin"), "not valid"),
    (lambda: mint_token(SECRET, subject="x", role="admin", audience="elsewhere"), "not valid"),
])
def test_bad_tokens_are_refused(make, message):
    with pytest.raises(Unauthorized, match=message):
        verify_token(make(), SECRET, issuer="paincare-local", audience="paincare")


def test_a_specialist_without_discipline_cannot_be_minted():
    with pytest.raises(ValueError):
        mint_token(SECRET, subject="x", role="specialist")


class PatientIn(ma.Schema):
    name = ma.fields.String(required=True)
    born = ma.fields.Date(required=True)


blp = Blueprint("things", __name__)


@blp.post("/patients")
@blp.arguments(PatientIn)
@roles("scheduler")
def _create(body):
    raise Conflict("that patient is already waiting")


@blp.get("/patients/database-away")
@roles("scheduler")
def _database_away():
    raise OperationalError("select 1", {}, ConnectionRefusedError("connection refused"))


@pytest.fixture
def client():
    settings = Settings.for_service("tests", database_url="sqlite://", kafka_enabled=False)
    app = create_service_app(settings, title="t", description="t", blueprints=[blp])
    return app.test_client(), settings


def test_no_token_is_401_problem_json(client):
    c, _ = client
    resp = c.post("/patients", json={"name": "A", "born": "1960-01-02"})
    assert resp.status_code == 401
    assert resp.mimetype == "application/problem+json"
    assert resp.json["title"] == "Unauthorized"


def test_a_bad_body_is_422_naming_each_field(client):
    c, settings = client
    resp = c.post("/patients", json={"born": "yesterday"}, headers=bearer(settings, "scheduler"))
    assert resp.status_code == 422
    assert resp.mimetype == "application/problem+json"
    assert set(resp.json["errors"]) == {"name", "born"}
    assert {p["name"] for p in resp.json["invalid_params"]} == {"name", "born"}


def test_the_wrong_role_is_403(client):
    c, settings = client
    resp = c.post("/patients", json={"name": "A", "born": "1960-01-02"},
                  headers=bearer(settings, "specialist", discipline="acupuncture"))
    assert resp.status_code == 403
    assert resp.mimetype == "application/problem+json"


def test_a_domain_conflict_is_409_in_words(client):
    c, settings = client
    resp = c.post("/patients", json={"name": "A", "born": "1960-01-02"},
                  headers=bearer(settings, "scheduler"))
    assert resp.status_code == 409
    assert resp.json["detail"] == "that patient is already waiting"


def test_health_needs_no_token_and_metrics_are_prometheus(client):
    c, _ = client
    assert c.get("/healthz").json["status"] == "alive"
    c.get("/patients")
    assert b"paincare_http_requests_total" in c.get("/metrics").data




@pytest.mark.parametrize(("body", "field"), [
    ({"name": "Ann\x00", "born": "1960-01-02"}, "name"),
    ({"name": "Ann", "born": "1960-01-02", "extra": [{"note": "x\ud800"}]}, "extra.0.note"),
])
def test_text_no_database_can_store_is_a_422_naming_the_field(client, body, field):
    c, settings = client
    resp = c.post("/patients", json=body, headers=bearer(settings, "scheduler"))
    assert resp.status_code == 422
    assert list(resp.json["errors"]) == [field]


def test_control_characters_in_the_url_are_refused_at_the_door(client):
    c, settings = client
    assert c.get("/patients/%00", headers=bearer(settings, "scheduler")).status_code == 400
    resp = c.get("/patients?name=a%00b", headers=bearer(settings, "scheduler"))
    assert resp.status_code == 422
    assert list(resp.json["errors"]) == ["query.name"]


def test_a_database_that_is_away_is_a_503_to_try_again_not_a_500(client):
    c, settings = client
    resp = c.get("/patients/database-away", headers=bearer(settings, "scheduler"))
    assert resp.status_code == 503
    assert resp.mimetype == "application/problem+json"
    assert resp.headers["Retry-After"] == "5"
