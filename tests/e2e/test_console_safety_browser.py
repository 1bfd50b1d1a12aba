"""Safety alerts in the clinic console, in headless Chromium against scheduling, notes and
the notifier running as in production on real Kafka: an admin puts a clinician on today's
duty rota, a care-team psychologist sees the PHQ-9's question texts, records item 9 = 2
and sees the red banner; the duty clinician sees it on their home page with the urgent
message at the top of their feed; the psychologist acknowledges it (the error beside its
field first) and the banner goes; then closes it."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests

from services.scheduling import demo as scheduling_demo
from shared.config import Settings
from tests.e2e.test_console_browser import _console_over, shot, sign_in
from tests.support.browser import launch_chromium, needs_chromium
from tests.support.clinic import bearer, wait_for
from tests.unit.dashboard.stories import publish, visit

pytestmark = [pytest.mark.kafka, needs_chromium]
PATIENT = "pat-safety-1"


@pytest.mark.journey(short="postgres")
def test_a_positive_item_9_is_a_red_banner_until_acknowledged(
        new_database_url, topic_prefix, kafka_bootstrap, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    settings = Settings.for_service("tests", topic_prefix=topic_prefix,
                                    kafka_bootstrap=kafka_bootstrap)
    with _console_over(["scheduling", "notes", "notifier"], new_database_url, topic_prefix,
                       tmp_path / "logs") as (clinic, url), sync_playwright() as p:
        scheduling, notes = clinic["scheduling"].url, clinic["notes"].url
        scheduling_demo.seed(scheduling, bearer(settings, "admin"))
        providers = requests.get(f"{scheduling}/providers", timeout=10,
                                 headers=bearer(settings, "admin")).json()
        psychologist = next(x for x in providers if x["discipline"] == "psychology")
        duty = next(x for x in providers if x["discipline"] == "acupuncture")
        # the psychologist joins the patient's care team as a booking would make them
        start = datetime.now(UTC) + timedelta(days=1)
        publish(settings, [visit("appointment.booked", "appt-safety-1",
                                 provider_id=psychologist["id"], discipline="psychology",
                                 start=start, patient_id=PATIENT)])
        as_psychologist = bearer(settings, "specialist", psychologist["id"],
                                 discipline="psychology", provider_id=psychologist["id"])
        # 403 until the booking makes them a member (admins read no care team)
        wait_for(lambda: (r := requests.get(f"{notes}/patients/{PATIENT}/care-team",
                                            timeout=10, headers=as_psychologist)).ok
                 and any(m["member_id"] == psychologist["id"] for m in r.json()),
                 timeout=60, what="care team")

        browser = launch_chromium(p)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 900})

            # The admin puts the acupuncturist on duty today through the rota page.
            sign_in(page, url, "Administrator")
            page.goto(f"{url}/#/rota")
            today = datetime.now(ZoneInfo(settings.clinic_timezone)).date().isoformat()
            row = page.locator(f'#rota tr[data-day="{today}"]')
            expect(row).to_contain_text("no one")
            expect(page.locator("#rota tbody tr")).to_have_count(28)
            row.locator("button", has_text="Set").click()  # nobody chosen: said beside it
            expect(row.locator('[data-error-for="clinician_id"]')).to_contain_text("Choose")
            row.locator("select").select_option(duty["id"])
            row.locator("button", has_text="Set").click()
            expect(page.locator("#notice")).to_contain_text(f"{duty['name']} is on duty")
            expect(page.locator(f'#rota tr[data-day="{today}"] .on-duty')).to_contain_text(
                duty["name"])
            shot(page, "rota")
            on_duty = requests.get(f"{notes}/duty-rota/today", timeout=10,
                                   headers=bearer(settings, "admin")).json()
            assert on_duty["clinician_id"] == duty["id"]

            # The psychologist: the PHQ-9 form asks its nine questions, item 9 marked.
            sign_in(page, url, psychologist["name"])
            page.goto(f"{url}/#/patient/{PATIENT}")
            expect(page.locator("#note-form")).to_be_visible(timeout=15000)
            expect(page.locator("#patient-safety .safety-banner")).to_have_count(0)
            items = page.locator(".phq9-set li")
            expect(items).to_have_count(9)
            expect(items.first.locator("label")).to_contain_text("Little interest or pleasure")
            expect(items.last.locator("label")).to_contain_text("better off dead")
            expect(items.last).to_have_class("field safety-item")
            expect(items.last.locator(".badge.warning")).to_contain_text("self-harm item")
            expect(page.locator("#m-pgic option")).to_have_count(8)
            shot(page, "phq9-form")
            page.fill("#s-subjective", "Low mood; sleeping badly.")
            for i in range(8):
                page.fill(f"#m-phq9-{i}", "1")
            page.fill("#m-phq9-8", "2")
            page.click("#save-sign")
            expect(page.locator("#notice")).to_contain_text("safety alert is raised")
            banner = page.locator("#patient-safety .safety-banner[role=alert]")
            expect(banner).to_have_count(1, timeout=15000)
            expect(banner).to_contain_text("Severity 2 of 3")
            expect(banner).to_contain_text(psychologist["name"])
            expect(banner).to_contain_text("not escalated yet")
            chip = page.locator("#timeline .badge.safety-item")
            expect(chip).to_contain_text("self-harm item")
            shot(page, "safety-banner")

            # The duty clinician sees the banner on their home page.
            sign_in(page, url, duty["name"])
            home = page.locator("#home-safety .safety-banner[role=alert]")
            expect(home).to_have_count(1, timeout=15000)
            expect(home.get_by_role("link")).to_contain_text("timeline")
            # ...and the notifier's in-app message of it at the top of their feed, urgent
            urgent = page.locator("#feed .feed-item.urgent")
            deadline = time.monotonic() + 60
            while not urgent.count() and time.monotonic() < deadline:
                page.wait_for_timeout(1500)
                page.reload()
                page.locator("#home-safety .safety-banner").wait_for()
            expect(urgent.first).to_be_visible()
            expect(page.locator("#feed .feed-item").first).to_have_class("feed-item urgent")
            shot(page, "safety-duty-home")

            # Back to the psychologist: 'other' needs its text, then the acknowledgement.
            sign_in(page, url, psychologist["name"])
            page.goto(f"{url}/#/patient/{PATIENT}")
            form = page.locator("#patient-safety form.ack-form")
            expect(form).to_be_visible(timeout=15000)
            form.locator("select").select_option("other")
            form.locator("button").click()
            detail_error = form.locator('[data-error-for="detail"]')
            expect(detail_error).to_contain_text("needs a description")
            expect(form.locator('input[name="detail"]')).to_have_attribute("aria-invalid", "true")
            shot(page, "safety-ack-error")
            form.locator("select").select_option("risk_assessment")
            form.locator("button").click()
            expect(page.locator("#notice")).to_contain_text("acknowledged")
            expect(page.locator("#patient-safety .safety-banner")).to_have_count(0)
            expect(page.locator("#patient-safety .safety-acknowledged")).to_contain_text(
                "Risk assessment")
            expect(page.locator("#timeline .note .badge.warning").filter(
                has_text="safety alert")).to_contain_text("acknowledged")
            shot(page, "safety-acknowledged")
            # then closed with a reason: nothing of it is left on the page
            close = page.locator("#patient-safety form.close-form")
            close.locator("select").select_option("risk_managed")
            close.locator("button").click()
            expect(page.locator("#notice")).to_have_text("Safety alert closed.")
            expect(page.locator("#patient-safety section")).to_have_count(0)
            alerts = requests.get(f"{notes}/safety-alerts?patient_id={PATIENT}", timeout=10,
                                  headers=bearer(settings, "specialist", psychologist["id"],
                                                 provider_id=psychologist["id"],
                                                 discipline="psychology")).json()
            assert [a["status"] for a in alerts] == ["closed"]
            assert alerts[0]["closed_reason"] == "risk_managed"
            assert alerts[0]["acknowledged_action"] == "risk_assessment"
        finally:
            browser.close()


@pytest.mark.journey(short="sqlite")
def test_a_referral_at_breach_risk_is_marked_on_the_queue_and_its_page(
        new_database_url, topic_prefix, kafka_bootstrap, tmp_path):
    """The referrals worker warns of a triaged referral due soon (a warning window wide
    enough to cover the demo's due dates); the scheduler's queue marks it, the filter
    shows it alone, and its page says why, the due date and that no first visit is booked."""
    from playwright.sync_api import expect, sync_playwright

    from services.referrals import demo as referrals_demo
    from tests.support.processes import running_services

    settings = Settings.for_service("tests", topic_prefix=topic_prefix,
                                    kafka_bootstrap=kafka_bootstrap)
    logs = tmp_path / "logs"
    with running_services(["referrals"], database_url=new_database_url,
                          topic_prefix=topic_prefix, log_dir=logs, web_workers=1,
                          extra_env={"REFERRAL_BREACH_WARNING_DAYS": "3650",
                                     "REFERRAL_BREACH_SWEEP_SECONDS": "0.5"}) as clinic, \
            running_services(["console"], database_url=new_database_url,
                             topic_prefix=topic_prefix, log_dir=logs, web_workers=1,
                             extra_env={"REFERRALS_URL": clinic["referrals"].url,
                                        "CONSOLE_LOCAL_SIGNIN": "true"}) as front, \
            sync_playwright() as p:
        referrals, url = clinic["referrals"].url, front["console"].url
        scheduler = bearer(settings, "scheduler")
        referral_id = referrals_demo.seed(referrals, scheduler)[0]
        lead = bearer(settings, "specialist", "pm-lead", discipline="pain_medicine",
                      also=("triage_lead",))
        triaged = requests.post(f"{referrals}/referrals/{referral_id}/triage", headers=lead,
                                timeout=10, json={"priority": "soon", "pathway": [
                                    {"discipline": "pain_medicine", "visit_minutes": 60,
                                     "sessions": 1, "interval_days": 0}]})
        assert triaged.status_code == 200, triaged.text
        seen = wait_for(lambda: (r := requests.get(f"{referrals}/referrals/{referral_id}",
                                                   headers=scheduler, timeout=10).json())
                        ["at_breach_risk"] and r, timeout=60, what="the breach-risk warning")
        name = seen["patient"]["name"]

        browser = launch_chromium(p)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            sign_in(page, url, "Scheduler (local)")
            rows = page.locator("#queue tbody tr")
            expect(rows).to_have_count(7, timeout=15000)
            marked = page.locator("#queue tbody tr.at-breach-risk")
            expect(marked).to_have_count(1)
            expect(marked).to_contain_text(name)
            expect(marked.locator(".badge.breach")).to_have_text("breach risk")
            shot(page, "queue-breach-risk")
            page.check("#only-at-risk")
            expect(page).to_have_url(re.compile(r"#/queue/at-risk$"))
            expect(rows).to_have_count(1)
            expect(rows.first).to_contain_text(name)
            rows.first.get_by_role("link", name=name).click()
            risk = page.locator("dd.breach-risk")
            expect(risk).to_contain_text("not yet scheduled")
            expect(risk).to_contain_text("first visit not booked yet")
            expect(page.get_by_role("heading", name=re.compile(name))).to_contain_text(
                "breach risk")
            shot(page, "referral-breach-risk")
        finally:
            browser.close()
