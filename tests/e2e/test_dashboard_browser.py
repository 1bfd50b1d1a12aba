"""The ops dashboard in a real browser (headless Chromium), against the dashboard and
referrals services running as in production: it signs in with an admin token, shows
live figures, and they change when the clinic's events arrive."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared import topics
from shared.config import ROOT, Settings
from tests.support.browser import launch_chromium, needs_chromium
from tests.support.clinic import token
from tests.support.processes import free_port, running_services
from tests.unit.dashboard.stories import (
    a_clinic_week,
    alert_acknowledged,
    alert_raised,
    notified,
    publish,
    received,
)

ARTIFACTS = ROOT / "artifacts"

pytestmark = [pytest.mark.kafka, needs_chromium]


@pytest.mark.journey(short="postgres")
def test_an_admin_watches_the_clinic_live(new_database_url, topic_prefix, kafka_bootstrap,
                                          tmp_path):
    from playwright.sync_api import expect, sync_playwright

    settings = Settings.for_service("tests", topic_prefix=topic_prefix,
                                    kafka_bootstrap=kafka_bootstrap)
    now = datetime.now(UTC)
    publish(settings, [*a_clinic_week(now),
                       # notes' safety alerts: one waiting 45 minutes, one acknowledged
                       alert_raised("sa-1", at=now - timedelta(minutes=45)),
                       alert_raised("sa-2", at=now - timedelta(minutes=90)),
                       alert_acknowledged("sa-2", at=now - timedelta(minutes=80))])
    logs = tmp_path / "logs"
    with running_services(["referrals"], database_url=new_database_url,
                          topic_prefix=topic_prefix, log_dir=logs, web_workers=1) as first, \
            running_services(["dashboard"], database_url=new_database_url,
                             topic_prefix=topic_prefix, log_dir=logs, web_workers=1,
                             extra_env={"REFERRALS_URL": first["referrals"].url,
                                        # services this test does not start: nothing answers
                                        **{f"{name}_URL": f"http://127.0.0.1:{free_port()}"
                                           for name in ("SCHEDULING", "NOTES", "NOTIFIER")}}
                             ) as clinic, \
            sync_playwright() as p:
        url = clinic["dashboard"].url
        browser = launch_chromium(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            requested: list[str] = []
            page.on("request", lambda r: requested.append(r.url))

            page.goto(url + "/")
            expect(page.locator("#signin")).to_be_visible()

            page.goto(f"{url}/?token={token(settings, 'admin')}")
            expect(page.locator("#kpi-referrals-open")).to_have_text("2", timeout=30000)
            expect(page.locator("#kpi-notifications")).to_have_text("2 / 1")
            expect(page.locator("#kpi-past-target")).to_have_text("1")
            expect(page.locator("#kpi-breach-risk")).to_have_text("1")  # r2, near due
            expect(page.locator("#breach-risks tr.breach")).to_have_count(1)
            expect(page.locator("#breach-risks tr.breach")).to_contain_text(
                "not scheduled, due soon")
            expect(page.locator("#kpi-safety-open")).to_have_text("1")
            expect(page.locator("#kpi-safety-oldest")).to_contain_text("min")
            expect(page.locator("#kpi-alerts-box")).to_have_class("kpi alarm")
            expect(page.locator("#safety-note")).to_contain_text("1 acknowledged")
            assert "p-sa-1" not in page.content()  # no patient on the ops page
            assert "token=" not in page.url  # kept in sessionStorage, not in history
            expect(page.locator('.svc[data-service="referrals"]')).to_have_class(
                "svc ready", timeout=15000)
            expect(page.locator('.svc[data-service="dashboard"]')).to_have_class("svc ready")
            expect(page.locator('.svc[data-service="notes"] .state')).to_have_text("down")
            assert page.locator("#chart-status svg rect.bar").count() > 0

            publish(settings, [received("r-new", at=now), notified("n-new", failed=True)],
                    raw=[(topics.NOTIFICATIONS, b"not an event")])
            expect(page.locator("#kpi-referrals-open")).to_have_text("3", timeout=20000)
            expect(page.locator("#kpi-notifications")).to_have_text("2 / 2", timeout=10000)
            expect(page.locator("#failures")).to_contain_text("mailbox unavailable")
            expect(page.locator("#status")).to_contain_text("Live")
            expect(page.locator("#chart-throughput polyline")).to_have_count(1, timeout=15000)
            parked = page.locator('tr[data-dlq="dashboard"]')
            expect(parked).to_contain_text("not JSON", timeout=15000)

            ARTIFACTS.mkdir(exist_ok=True)
            shot = ARTIFACTS / "dashboard.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            assert all(r.startswith(url) for r in requested), "no external assets"

            parked.locator("button.replay").click()
            expect(page.locator("#notice")).to_have_text("Replayed 1 from dashboard",
                                                     timeout=15000)

            page.on("dialog", lambda dialog: dialog.accept())
            page.locator("#rebuild").click()
            expect(page.locator("#generation")).to_have_text("2", timeout=15000)
            expect(page.locator("#kpi-referrals-open")).to_have_text("3", timeout=30000)
            expect(page.locator("#kpi-notifications")).to_have_text("2 / 2")

            page.evaluate("sessionStorage.setItem('paincare.token', 'not-a-token')")
            page.reload()
            expect(page.locator("#signin")).to_be_visible(timeout=10000)
        finally:
            browser.close()
