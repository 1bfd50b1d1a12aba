"""The console's own behaviour without the services: the proxy forwards a person's call
with their own token and answers as the service did; the pages are public and carry no
external asset; the local sign-in mints tokens the services accept, and only when on."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from services.console import identity as identities
from services.console.app import create_app
from services.console.page import STATIC
from services.console.proxy import Upstreams
from shared.auth import verify_token
from shared.config import Settings
from tests.support.clinic import bearer

SETTINGS = Settings.for_service("console", database_url="sqlite://")
UPSTREAMS = Upstreams({"referrals": "http://referrals.test", "scheduling": "http://sched.test",
                       "notes": "http://notes.test", "notifier": "http://notifier.test"})
PROVIDERS = [{"id": "prov-okafor", "name": "Dr Amara Okafor", "discipline": "pain_medicine"},
             {"id": "prov-reid", "name": "Sam Reid", "discipline": "physical_therapy"}]


class FakeAnswer:
    def __init__(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.status_code, self.content, self.headers = status, body, headers

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise requests.HTTPError(str(self.status_code))

    def json(self) -> Any:
        import json

        return json.loads(self.content)


@dataclass
class FakeService:
    """Stands in for the services behind the proxy: records calls, answers as told."""

    answer: FakeAnswer | Exception = field(default_factory=lambda: FakeAnswer(
        200, b'{"ok": true}', {"Content-Type": "application/json"}))
    calls: list[dict[str, Any]] = field(default_factory=list)

    def request(self, method: str, url: str, **kw: Any) -> FakeAnswer:
        self.calls.append({"method": method, "url": url, **kw})
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    def get(self, url: str, **kw: Any) -> FakeAnswer:
        return self.request("GET", url, **kw)


def console(fake: FakeService, identity: Any = None) -> Any:
    identity = identity or identities.LocalIdentity(SETTINGS, "http://sched.test", http=fake)
    app = create_app(SETTINGS, upstreams=UPSTREAMS, identity=identity)
    app.extensions["console.http"] = fake
    return app.test_client()


# --- the proxy ------------------------------------------------------------------------------

def test_a_call_goes_to_its_service_with_the_persons_own_token_and_comes_back_as_is():
    fake = FakeService(FakeAnswer(422, b'{"errors": {"measures.nrs.worst": ["x"]}}',
                                  {"Content-Type": "application/problem+json"}))
    headers = {**bearer(SETTINGS, "specialist", discipline="psychology"),
               "Idempotency-Key": "k-1"}
    resp = console(fake).post("/api/notes/patients/p-1/notes?x=1", json={"kind": "progress"},
                              headers=headers)
    assert resp.status_code == 422
    assert resp.mimetype == "application/problem+json"
    assert resp.get_json() == {"errors": {"measures.nrs.worst": ["x"]}}
    assert resp.headers["Cache-Control"] == "no-store"
    [call] = fake.calls
    assert (call["method"], call["url"]) == ("POST", "http://notes.test/patients/p-1/notes")
    assert call["params"].to_dict() == {"x": "1"}
    assert call["data"] == b'{"kind": "progress"}'
    assert call["headers"]["Authorization"] == headers["Authorization"]
    assert call["headers"]["Idempotency-Key"] == "k-1"
    assert call["headers"]["X-Request-ID"]


def test_without_a_token_nothing_is_forwarded():
    fake = FakeService()
    resp = console(fake).get("/api/referrals/referrals/queue")
    assert resp.status_code == 401
    assert fake.calls == []


def test_a_forged_token_is_refused_before_any_service_sees_it():
    fake = FakeService()
    resp = console(fake).get("/api/referrals/referrals",
                             headers={"Authorization": "Bearer not.a.token"})
    assert resp.status_code == 401
    assert fake.calls == []


def test_only_the_clinics_services_are_reachable():
    fake = FakeService()
    resp = console(fake).get("/api/elsewhere/anything", headers=bearer(SETTINGS, "scheduler"))
    assert resp.status_code == 404
    assert "elsewhere" in resp.get_json()["detail"]
    assert fake.calls == []


@pytest.mark.parametrize(("failure", "status", "words"), [
    (requests.ConnectionError("refused"), 502, "cannot be reached just now; nothing was sent"),
    (requests.Timeout("slow"), 504, "reload the page to see whether it was saved"),
])
def test_a_service_that_does_not_answer_is_said_in_words(failure, status, words):
    resp = console(FakeService(failure)).post(
        "/api/scheduling/itineraries/i-1/confirm", headers=bearer(SETTINGS, "scheduler"))
    assert resp.status_code == status
    body = resp.get_json()
    assert resp.mimetype == "application/problem+json"
    assert words in body["detail"] and "scheduling" in body["detail"]


# --- the pages ------------------------------------------------------------------------------

def test_the_pages_are_public_and_locked_to_this_origin():
    client = console(FakeService())
    page = client.get("/")
    assert page.status_code == 200 and b'id="main"' in page.data
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    for asset in ("app.js", "app.css"):
        assert client.get(f"/static/console/{asset}").status_code == 200
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").get_json()["status"] == "ready"


def test_no_page_asset_comes_from_another_origin():
    for path in STATIC.iterdir():
        text = path.read_text()
        assert not re.search(r"""(src|href)\s*=\s*["']https?://""", text), path.name
        assert not re.search(r"""(import|fetch)\(?\s*["'`]https?://""", text), path.name


# --- signing in -----------------------------------------------------------------------------

def test_local_users_are_the_scheduler_the_admin_and_each_provider():
    fake = FakeService(FakeAnswer(200, __import__("json").dumps(PROVIDERS).encode(), {}))
    client = console(fake)
    users = client.get("/auth/users").get_json()
    assert [u["id"] for u in users] == ["local-scheduler", "local-admin", "prov-okafor",
                                        "prov-reid"]
    okafor = next(u for u in users if u["id"] == "prov-okafor")
    assert okafor == {"id": "prov-okafor", "role": "specialist", "name": "Dr Amara Okafor",
                      "discipline": "pain_medicine", "provider_id": "prov-okafor",
                      "also": ["triage_lead"]}  # on one machine, pain medicine triages
    # the provider list was asked for with a service token, not anonymously
    assert fake.calls[0]["headers"]["Authorization"].startswith("Bearer ")


def test_a_local_sign_in_mints_a_token_every_service_accepts():
    fake = FakeService(FakeAnswer(200, __import__("json").dumps(PROVIDERS).encode(), {}))
    resp = console(fake).post("/auth/local", json={"user_id": "prov-okafor"})
    assert resp.status_code == 200
    who = verify_token(resp.get_json()["token"], SETTINGS.jwt_secret,
                       issuer=SETTINGS.jwt_issuer, audience=SETTINGS.jwt_audience)
    # sub and provider_id are the provider's id: the care team and the diary know them
    assert (who.role, who.discipline, who.provider_id, who.subject) == \
        ("specialist", "pain_medicine", "prov-okafor", "prov-okafor")
    assert who.roles == ("specialist", "triage_lead")


def test_no_token_for_someone_who_is_not_a_local_user():
    fake = FakeService(FakeAnswer(200, b"[]", {}))
    client = console(fake)
    assert client.post("/auth/local", json={"user_id": "mallory"}).status_code == 404
    missing = client.post("/auth/local", json={})
    assert missing.status_code == 422
    assert missing.mimetype == "application/problem+json"
    assert list(missing.json["errors"]) == ["user_id"]


def test_without_scheduling_there_is_one_specialist_per_discipline():
    users = identities.LocalIdentity(SETTINGS, "http://sched.test",
                                     http=FakeService(requests.ConnectionError())).users()
    assert [u.discipline for u in users if u.role == "specialist"] == [
        "pain_medicine", "physical_therapy", "psychology", "acupuncture"]


def test_with_local_sign_in_off_the_console_mints_nothing(monkeypatch):
    monkeypatch.setenv("CONSOLE_LOCAL_SIGNIN", "false")
    pasted = identities.from_environment(SETTINGS, "http://sched.test")
    client = console(FakeService(), identity=pasted)
    assert client.get("/auth/config").get_json()["kind"] == "token"
    assert client.get("/auth/users").get_json() == []
    assert client.post("/auth/local", json={"user_id": "local-admin"}).status_code == 403


# --- the intake form and cancelling ------------------------------------------------------------

def test_a_resent_referral_comes_back_as_the_service_said_so_the_page_can_tell_a_repeat():
    """201 is a new referral, 200 the one the same Idempotency-Key already made: the page
    says which, so the proxy must pass the key on and the status back untouched."""
    fake = FakeService(FakeAnswer(200, b'{"id": "ref-1"}', {"Content-Type": "application/json"}))
    headers = {**bearer(SETTINGS, "scheduler"), "Idempotency-Key": "form-key-1"}
    resp = console(fake).post("/api/referrals/referrals", json={"patient": {}}, headers=headers)
    assert (resp.status_code, resp.get_json()) == (200, {"id": "ref-1"})
    [call] = fake.calls
    assert call["url"] == "http://referrals.test/referrals"
    assert call["headers"]["Idempotency-Key"] == "form-key-1"


def test_the_intake_form_offers_exactly_the_clinics_conditions_channels_and_urgencies():
    """The form's lists are the referrals API's own (a condition it does not know would be
    refused; one it lacks could not be recorded)."""
    from shared.events.vocabulary import CHANNELS, CONDITIONS, PRIORITIES

    script = (STATIC / "app.js").read_text()
    listed = re.search(r"const CONDITIONS = \[([^\]]*)\]", script)
    assert listed, "app.js names the conditions"
    assert tuple(re.findall(r'"(\w+)"', listed.group(1))) == CONDITIONS
    form = script[script.index("function intakeForm()"):script.index("function readIntake(")]
    for value in (*CHANNELS, *PRIORITIES):
        assert f'"{value}"' in form, value
    for name in ("patient.contact.email", "patient.contact.phone", "patient.date_of_birth",
                 "referrer.organisation", "condition_detail", "pain_duration.value",
                 "urgency_requested"):
        assert f'"{name}"' in form, f"{name} has a field and an error slot"
