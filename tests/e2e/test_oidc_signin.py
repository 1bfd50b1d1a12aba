"""Sign-in through the clinic's real OpenID Connect provider: Keycloak (scripts/keycloak.sh,
the realm of deploy/keycloak/paincare-realm.json) in front of the console and referrals
running as in production (PAINCARE_ENV=production: only the provider's tokens count, no
local sign-in). In headless Chromium a scheduler and then a specialist sign in on
Keycloak's own login page by the code flow with PKCE, no token ever in a URL, and work
with the tokens they get: the queue shows the referrals the referrals service holds."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import requests

from services.referrals import demo as referrals_demo
from shared.auth import ServiceTokens
from shared.config import ROOT, Settings
from tests.support.browser import launch_chromium, needs_chromium
from tests.support.processes import running_services

KEYCLOAK = ROOT / "scripts" / "keycloak.sh"
ISSUER = "http://127.0.0.1:8180/realms/paincare"
PASSWORD = "paincare-demo"  # the development realm's demo users
SERVICES_SECRET = "paincare-services-development-secret"  # its confidential client's

pytestmark = [pytest.mark.kafka, needs_chromium]


@pytest.fixture(scope="session")
def keycloak() -> Iterator[str]:
    """Keycloak for the session, started by the project's script (left running if it was
    already). Skipped only where no Java 21+ exists, and said so loudly."""
    java = subprocess.run([KEYCLOAK, "java"], capture_output=True, text=True)
    if java.returncode == 3:
        message = ("KEYCLOAK NOT TESTED: Keycloak 26 needs Java 21 or newer and none is "
                   "installed (scripts/keycloak.sh java); the OpenID Connect sign-in e2e "
                   "test is SKIPPED")
        print(f"\n{'!' * 20} {message} {'!' * 20}", file=sys.stderr)
        pytest.skip(message)
    was_running = subprocess.run([KEYCLOAK, "status"], capture_output=True).returncode == 0
    started = time.monotonic()
    run = subprocess.run([KEYCLOAK, "start"], capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, f"scripts/keycloak.sh start failed:\n{run.stdout}\n{run.stderr}"
    print(f"\nkeycloak: ready in {time.monotonic() - started:.0f} s "
          f"({'already running' if was_running else 'started'})", file=sys.stderr)
    try:
        yield ISSUER
    finally:
        if not was_running:
            subprocess.run([KEYCLOAK, "stop"], capture_output=True, timeout=60)


def _claims(token: str) -> dict:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _sign_in_at_keycloak(page, console_url: str, username: str) -> None:
    """Through Keycloak's own login page (its form asks: no single sign-on left over)."""
    page.goto(console_url + "/#/signin")
    page.get_by_role("button", name="Sign in with the clinic's identity provider").click()
    page.wait_for_url(f"{ISSUER}/protocol/openid-connect/auth*")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("#kc-login")
    page.wait_for_url(f"{console_url}/#/*")


def test_a_scheduler_and_a_specialist_sign_in_through_keycloak_and_work_with_their_tokens(
        keycloak, topic_prefix, tmp_path):
    """Once, on SQLite: sign-in does not touch the database, and both backends are run by
    every other referrals test (this one costs a minute and a half of the suite)."""
    from playwright.sync_api import expect, sync_playwright

    def new_database_url(service: str) -> str:
        return f"sqlite:///{tmp_path / (service + '.db')}"

    env = {"PAINCARE_ENV": "production", "OIDC_ISSUER": keycloak, "JWT_SECRET": "",
           "CONSOLE_LOCAL_SIGNIN": "true"}  # ignored outside development
    logs = tmp_path / "logs"
    with running_services(["referrals"], database_url=new_database_url,
                          topic_prefix=topic_prefix, log_dir=logs, web_workers=1,
                          extra_env=env) as clinic:
        referrals = clinic["referrals"].url
        with running_services(["console"], database_url=new_database_url,
                              topic_prefix=topic_prefix, log_dir=logs, web_workers=1,
                              extra_env={**env, "REFERRALS_URL": referrals}) as front, \
                sync_playwright() as p:
            console = front["console"].url
            config = requests.get(f"{console}/auth/config", timeout=10).json()
            assert config["kind"] == "oidc" and config["oidc"]["client_id"] == "paincare-console"
            assert requests.get(f"{console}/auth/users", timeout=10).json() == []
            browser = launch_chromium(p)
            try:
                seen: list[str] = []
                page = browser.new_page(viewport={"width": 1366, "height": 900})
                page.on("request", lambda r: seen.append(r.url))
                _sign_in_at_keycloak(page, console, "sam.scheduler")
                expect(page.locator("#who")).to_contain_text("Sam Scheduler · scheduler")
                token = page.evaluate("sessionStorage.getItem('paincare.console.token')")
                claims = _claims(token)
                assert claims["iss"] == keycloak and "paincare" in claims["aud"]
                assert "scheduler" in claims["realm_access"]["roles"]
                # the code flow: S256 challenge out, the code back in the query, no token in
                # any URL the browser asked for
                auth = next(u for u in seen if "/protocol/openid-connect/auth?" in u)
                assert "code_challenge_method=S256" in auth and "response_type=code" in auth
                back = [u for u in seen if u.startswith(f"{console}/?")]
                assert back and "code=" in back[0] and "state=" in back[0]
                assert not [u for u in seen if token in u or "access_token" in u]
                assert "code=" not in page.url

                # the scheduler's token works on the referrals service itself: file the demo
                # referrals with it, then the console's queue shows them
                headers = {"Authorization": f"Bearer {token}"}
                assert len(referrals_demo.seed(referrals, headers)) >= 5
                page.goto(console + "/#/queue")
                page.reload()  # the queue was drawn before the referrals were filed
                expect(page.locator("#queue")).to_contain_text("Margaret Ellison")
                # signing out ends the Keycloak session too (a shared workstation): the
                # provider asks to confirm and sends the person back to the console
                page.click("#signout")
                page.wait_for_url(f"{keycloak}/protocol/openid-connect/logout*")
                page.click("#kc-logout")
                expect(page.get_by_role("button", name="Sign in with the clinic's identity "
                                                       "provider")).to_be_visible()
                assert page.evaluate("sessionStorage.length") == 0

                # the next person on the same browser meets Keycloak's login form again
                _sign_in_at_keycloak(page, console, "amara.okafor")
                expect(page.locator("#who")).to_contain_text("Amara Okafor")
                expect(page.locator("#who")).to_contain_text("pain medicine")
                expect(page.locator("#queue")).to_contain_text("Margaret Ellison")
                specialist = page.evaluate("sessionStorage.getItem('paincare.console.token')")
                assert _claims(specialist)["discipline"] == "pain_medicine"
                # the specialist's token is theirs: reads allowed, a scheduler's write refused
                ok = requests.get(f"{referrals}/referrals", timeout=10,
                                  headers={"Authorization": f"Bearer {specialist}"})
                assert ok.status_code == 200 and ok.json()["items"]
                refused = requests.post(f"{referrals}/referrals", json={}, timeout=10,
                                        headers={"Authorization": f"Bearer {specialist}"})
                assert refused.status_code == 403
            finally:
                browser.close()

            # a service's own calls (the dashboard's probe): a client-credentials token of
            # the realm's confidential client, whose service account has the service role
            settings = Settings.for_service("dashboard", environment="production",
                                            oidc_issuer=keycloak,
                                            oidc_client_id="paincare-services",
                                            oidc_client_secret=SERVICES_SECRET)
            service = ServiceTokens(settings).token()
            assert "service" in _claims(service)["realm_access"]["roles"]
            backlog = requests.get(f"{referrals}/ops/outbox", timeout=10,
                                   headers={"Authorization": f"Bearer {service}"})
            assert backlog.status_code == 200 and "outbox_backlog" in backlog.json()
