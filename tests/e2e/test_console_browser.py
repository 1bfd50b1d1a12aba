"""The clinic console in a real browser (headless Chromium) against referrals, scheduling
and notes running as in production (gunicorn + workers, real Kafka): a referral goes from
the queue to a confirmed itinerary and a signed note, and a service's refusal (a measure
out of range, a slot taken meanwhile) is shown in words with nothing half-done left."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from services.notes import demo as notes_demo
from services.referrals import demo as referrals_demo
from services.scheduling import demo as scheduling_demo
from shared.config import ROOT, Settings
from tests.support.browser import launch_chromium, needs_chromium
from tests.support.clinic import bearer, wait_for
from tests.support.processes import running_services

ARTIFACTS = ROOT / "artifacts"
PATIENT = "Sofia Marin"  # the demo's urgent chemotherapy-induced neuropathy referral

pytestmark = [pytest.mark.kafka, needs_chromium]


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"console-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 5_000


def sign_in(page, url: str, who: str) -> None:
    """Sign out if needed, then pick the local user whose button says `who`."""
    if page.locator("#signout").is_visible():
        page.click("#signout")
    else:
        page.goto(url + "/#/signin")
    page.get_by_role("listitem").filter(has_text=who).first.click()
    page.locator("#who").filter(has_text=who.split(" (")[0]).wait_for()


@pytest.mark.journey(short="postgres")
def test_a_referral_goes_from_the_queue_to_a_booked_itinerary_and_a_signed_note(
        new_database_url, topic_prefix, kafka_bootstrap, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    settings = Settings.for_service("tests", topic_prefix=topic_prefix,
                                    kafka_bootstrap=kafka_bootstrap)
    with _console_over(["referrals", "scheduling", "notes"], new_database_url, topic_prefix,
                       tmp_path / "logs") as (clinic, url), sync_playwright() as p:
        _walk_the_clinic(p, expect, settings, clinic, url)


def _walk_the_clinic(p, expect, settings, clinic, url: str) -> None:
    scheduling, notes = clinic["scheduling"].url, clinic["notes"].url
    ids = scheduling_demo.seed(scheduling, bearer(settings, "admin"))
    referrals_demo.seed(clinic["referrals"].url, bearer(settings, "scheduler"))

    browser = launch_chromium(p)
    try:
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        requested: list[str] = []
        page.on("request", lambda r: requested.append(r.url))

        # The scheduler's queue: urgent first, every demo referral waiting.
        page.goto(url + "/")
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        expect(page.get_by_role("listitem").filter(has_text="Dr Amara Okafor")).to_be_visible()
        shot(page, "signin")
        sign_in(page, url, "Scheduler (local)")
        rows = page.locator("#queue tbody tr")
        expect(rows).to_have_count(7, timeout=15000)
        expect(rows.first.locator("td").first).to_contain_text("urgent")
        shot(page, "queue")

        # The referral's page; the pain-medicine specialist triages and accepts it.
        page.get_by_role("link", name=PATIENT).click()
        expect(page.get_by_role("heading", name=re.compile(PATIENT))).to_be_visible()
        expect(page.locator("#triage")).to_have_count(0)  # a scheduler does not triage
        referral_id = page.url.rsplit("/", 1)[-1]
        sign_in(page, url, "Dr Amara Okafor")
        page.goto(f"{url}/#/referral/{referral_id}")
        expect(page.locator("#triage")).to_be_visible()
        page.select_option("#priority", "urgent")
        page.select_option("#tool", "dn4")
        page.fill("#score", "14")  # DN4 is 0-10: the service says so beside the field
        page.click("#triage-save")
        expect(page.locator('[data-error-for="screening.score"]')).to_contain_text("DN4")
        page.fill("#score", "6")
        page.click("#triage-save")
        expect(page.locator("#notice")).to_have_text("Triage saved.")
        expect(page.locator(".pathway tbody tr")).to_have_count(4)
        shot(page, "referral-triaged")
        page.click("#accept")
        expect(page.get_by_role("heading", name=re.compile("accepted"))).to_be_visible()

        # Scheduling answers referral.accepted with a held itinerary; the scheduler sees it.
        sign_in(page, url, "Scheduler (local)")
        page.goto(f"{url}/#/referral/{referral_id}")
        link = page.locator("#itineraries a[data-itinerary]")
        # the proposal arrives through the broker; like a person, look again until it is there
        deadline = time.monotonic() + 90
        while not link.is_visible() and time.monotonic() < deadline:
            page.wait_for_timeout(2000)
            if not link.is_visible():
                page.reload()
                page.wait_for_load_state("networkidle")
        expect(link).to_be_visible(timeout=5000)
        shot(page, "referral")
        link.click()
        expect(page.get_by_role("heading", name=re.compile("proposed"))).to_be_visible()
        visits = page.locator("#calendar .visit")
        assert visits.count() == 7  # 1 + 2 + 2 + 2 sessions
        shot(page, "itinerary-proposed")
        itinerary_id = page.url.rsplit("/", 1)[-1]

        # Move one visit: the slot offered is taken meanwhile -> said in words, unchanged.
        acupuncture = page.locator("#calendar .visit.acupuncture").last
        before = acupuncture.get_attribute("aria-label")
        acupuncture.click()
        first_slot = page.locator("#move-card .slots button").first
        expect(first_slot).to_be_visible(timeout=15000)
        shot(page, "itinerary-move")
        taken_at = first_slot.get_attribute("data-start")
        itinerary = requests.get(f"{scheduling}/itineraries/{itinerary_id}", timeout=10,
                                 headers=bearer(settings, "scheduler")).json()
        # Whoever the search booked for the first pain-medicine visit (it depends on the
        # hour the test runs) is the specialist whose diary and notes are checked below.
        lead = min((v for v in itinerary["visits"] if v["discipline"] == "pain_medicine"),
                   key=lambda v: v["start"])["provider_id"]
        lead_name = {pid: name for name, pid in ids["providers"].items()}[lead]
        moved = next(v for v in itinerary["visits"] if v["discipline"] == "acupuncture"
                     and v["session_index"] == max(x["session_index"] for x in itinerary["visits"]
                                                   if x["discipline"] == "acupuncture"))
        other_patient = requests.post(f"{scheduling}/appointments", timeout=10,
                                      headers=bearer(settings, "scheduler"), json={
                                          "patient_id": "demo-pat-999",
                                          "provider_id": moved["provider_id"],
                                          "start": taken_at, "minutes": 30})
        assert other_patient.status_code == 201, other_patient.text
        first_slot.click()
        expect(page.locator("#notice")).to_contain_text("The visit was not moved")
        expect(page.locator("#calendar .visit.acupuncture").last).to_have_attribute(
            "aria-label", before)
        shot(page, "itinerary-slot-taken")

        # Another offered slot moves it; then one action books the whole itinerary.
        page.locator("#calendar .visit.acupuncture").last.click()
        second = page.locator("#move-card .slots button").nth(1)
        expect(second).to_be_visible(timeout=15000)
        second.click()
        expect(page.locator("#notice")).to_contain_text("Moved to")
        page.click("#confirm")
        expect(page.locator("#notice")).to_have_text(
            "Booked: every visit of the itinerary is confirmed.", timeout=20000)
        expect(page.get_by_role("heading", name=re.compile("booked"))).to_be_visible()
        expect(page.locator("#confirm")).to_have_count(0)
        shot(page, "itinerary-booked")

        # Diaries, one column per provider, and the waitlist.
        first_day = page.locator("#visits tbody tr").first.inner_text()
        day = itinerary_day(itinerary)
        page.goto(f"{url}/#/diary/{day}")
        expect(page.locator(f'.day[data-provider="{lead}"] .visit').first).to_be_visible(
            timeout=10000)
        shot(page, "diaries")
        wish = requests.post(f"{scheduling}/waitlist", timeout=10,
                             headers=bearer(settings, "scheduler"), json={
                                 "patient_id": "demo-pat-004", "discipline": "physical_therapy",
                                 "visit_minutes": 45, "priority": "urgent"})
        assert wish.status_code == 201, wish.text
        page.goto(f"{url}/#/waitlist")
        expect(page.locator("#waitlist tbody tr").filter(has_text="demo-pat-004")).to_contain_text(
            "Physical therapy")
        shot(page, "waitlist")
        assert first_day

        # The specialist: their diary, the patient's timeline, a note with measures.
        sign_in(page, url, lead_name)
        page.goto(f"{url}/#/diary/{day}")
        expect(page.locator(".day .visit").first).to_be_visible(timeout=10000)
        assert page.locator(".day").count() == 1  # their own diary only
        shot(page, "my-diary")
        patient_id = itinerary["patient_id"]
        # the care team hears of the booking through Kafka
        # (read as the lead: admin is operations and reads no care team; until the
        # lead is on it, the care team answers them 403)
        as_lead = bearer(settings, "specialist", lead, discipline="pain_medicine",
                         provider_id=lead)

        def care_team() -> list[dict]:
            resp = requests.get(f"{notes}/patients/{patient_id}/care-team", timeout=10,
                                headers=as_lead)
            return resp.json() if resp.status_code == 200 else []

        wait_for(lambda: any(m["member_id"] == lead for m in care_team()), timeout=30,
                 what="care team")
        # six weeks of the other disciplines' signed notes, written by the booked team
        team = {v["discipline"]: v["provider_id"] for v in itinerary["visits"]}
        wait_for(lambda: set(team.values()) <= {m["member_id"] for m in care_team()},
                 timeout=30, what="whole care team")
        notes_demo.seed(notes, lambda d: bearer(settings, "specialist", team[d],
                                                discipline=d, provider_id=team[d]),
                        patient_id)
        before_notes = requests.get(f"{notes}/patients/{patient_id}/timeline", timeout=10,
                                    headers=as_lead).json()["total"]
        page.goto(f"{url}/#/patient/{patient_id}")
        form = page.locator("#note-form")
        expect(form).to_be_visible(timeout=10000)
        page.select_option("#kind", "intake_assessment")
        page.fill("#s-presenting_complaint", "Painful numbness in hands and feet.")
        page.fill("#s-plan", "Duloxetine review; graded activity.")
        page.fill('[name="nrs.current"]', "7")
        page.fill('[name="nrs.average"]', "6")
        page.fill('[name="nrs.worst"]', "14")  # out of range
        for i, v in enumerate([2, 2, 1, 1, 1, 1, 1, 0, 0]):
            page.fill(f'[name="phq9.{i}"]', str(v))
        page.click("#save-sign")
        error = page.locator('[data-error-for="measures.nrs.worst"]')
        expect(error).to_contain_text("NRS worst pain must be between 0 and 10, got 14")
        expect(page.locator("#note-errors")).to_contain_text("Nothing was saved")
        shot(page, "note-error")
        timeline = requests.get(f"{notes}/patients/{patient_id}/timeline", timeout=10,
                                headers=as_lead).json()
        assert timeline["total"] == before_notes, "a refused note leaves nothing behind"

        page.fill('[name="nrs.worst"]', "9")
        page.click("#save-sign")
        expect(page.locator("#notice")).to_have_text("Note signed; the care team is told.")
        note = page.locator("#timeline .note").filter(has_text="Painful numbness")
        expect(note).to_contain_text("signed")
        expect(note).to_contain_text("NRS worst pain 9")
        for discipline in ("pain_medicine", "physical_therapy", "psychology", "acupuncture"):
            expect(page.locator(f"#timeline .note.{discipline}").first).to_be_visible()
        expect(page.locator("#chart-nrs circle")).to_have_count(3)  # 7, 4, then today's 6
        expect(page.locator("#chart-phq9 circle")).to_have_count(4)

        # A correction is an addendum, signed at once.
        note = page.locator("#timeline .note").filter(has_text="Painful numbness")
        note.locator(".add-addendum").click()
        page.locator(".addendum-new textarea").fill("Correction: worst pain is at night.")
        page.locator(".addendum-new button").click()
        expect(page.locator("#notice")).to_have_text("Addendum signed.")
        expect(page.locator("#timeline .note").filter(has_text="Painful numbness")
               .locator(".addendum")).to_contain_text("worst pain is at night")
        shot(page, "patient")

        # The same pages on a tablet, reached by keyboard.
        page.set_viewport_size({"width": 820, "height": 1180})
        page.goto(f"{url}/#/queue")
        expect(page.locator("#queue tbody tr")).to_have_count(6)  # Sofia Marin is booked
        shot(page, "queue-tablet")
        page.keyboard.press("Tab")  # the page moves focus to its content on every route
        expect(page.locator("#only-at-risk")).to_be_focused()  # the breach-risk filter
        page.keyboard.press("Tab")
        expect(page.locator("#queue a").first).to_be_focused()
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name=re.compile("Daniel Brooks"))).to_be_visible()
        assert all(r.startswith(url) for r in requested), "no external assets or calls"
    finally:
        browser.close()


def itinerary_day(itinerary: dict) -> str:
    """The local date of the first visit (the clinic is in Europe/London)."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    first = min(v["start"] for v in itinerary["visits"])
    return datetime.fromisoformat(first).astimezone(ZoneInfo("Europe/London")).date().isoformat()


# --- the scheduler's intake form and cancelling ---------------------------------------------

@contextmanager
def _console_over(services: list[str], database_url: str, topic_prefix: str,
                  logs: Path) -> Iterator[tuple[dict, str]]:
    """The given services as processes and the console in front of them (its users and
    proxy point at these, never at another clinic on this machine's default ports)."""
    with running_services(services, database_url=database_url, topic_prefix=topic_prefix,
                          log_dir=logs, web_workers=1) as clinic:
        urls = {f"{s.upper()}_URL": procs.url for s, procs in clinic.items()}
        with running_services(["console"], database_url=database_url,
                              topic_prefix=topic_prefix, log_dir=logs, web_workers=1,
                              extra_env={**urls, "CONSOLE_LOCAL_SIGNIN": "true"}) as front:
            yield clinic, front["console"].url


@pytest.mark.journey(short="sqlite")
def test_a_scheduler_files_a_referral_through_the_form_and_a_lost_answer_is_resent_once(
        new_database_url, topic_prefix, kafka_bootstrap, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    settings = Settings.for_service("tests", topic_prefix=topic_prefix,
                                    kafka_bootstrap=kafka_bootstrap)
    with _console_over(["referrals", "scheduling"], new_database_url, topic_prefix,
                       tmp_path / "logs") as (clinic, url), sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            sign_in(page, url, "Scheduler (local)")
            page.get_by_role("link", name="New referral").click()
            expect(page.get_by_role("heading", name="New referral")).to_be_visible()
            page.fill("#p-name", "Eleanor Whitfield")
            page.fill("#p-id", "pat-e2e-100")
            page.fill("#p-dob", "1961-07-30")
            page.fill("#p-email", "eleanor.whitfield(at)example.org")  # not an address
            page.fill("#p-phone", "+44 7700 900555")
            page.fill("#r-name", "Dr Hugh Barnes")
            page.fill("#r-org", "Riverside Medical Practice")
            page.select_option("#condition", "other")  # needs a description: left out at first
            expect(page.locator("#condition-detail")).to_be_visible()
            page.fill("#pain-value", "8")
            page.fill("#med-0-name", "amitriptyline")
            page.fill("#med-0-dose", "25 mg")
            page.fill("#med-0-frequency", "at night")
            page.click("#add-med")
            expect(page.locator("#intake tr[data-med]")).to_have_count(4)
            expect(page.locator("#med-3-name")).to_be_focused()
            page.fill("#med-3-name", "capsaicin 8% patch")  # rows between stay empty
            page.fill("#med-3-dose", "one patch")
            page.fill("#reason", "Burning pain along the left forearm since a wrist fracture; "
                                 "allodynia to light touch.")
            page.select_option("#urgency", "soon")
            shot(page, "intake")

            # The service refuses the address: said beside the email field, nothing recorded.
            page.click("#intake-save")
            beside = page.locator(".field", has=page.locator("#p-email")).locator(".error")
            expect(beside).to_contain_text("email")
            expect(page.locator('[data-error-for="patient.contact.email"]')).to_have_attribute(
                "id", "e-p-email")
            expect(page.locator("#p-email")).to_have_attribute("aria-invalid", "true")
            expect(page.locator("#p-email")).to_be_focused()
            expect(page.locator("#intake-errors")).to_contain_text("Nothing was recorded")
            shot(page, "intake-error")

            # The clinic's rule: 'other' needs its description, said beside that field.
            page.fill("#p-email", "eleanor.whitfield@example.org")
            page.click("#intake-save")
            expect(page.locator('[data-error-for="condition_detail"]')).to_contain_text(
                "needs a description")
            expect(page.locator('[data-error-for="patient.contact.email"]')).to_be_empty()
            page.fill("#condition-detail", "Complex regional pain after a distal radius fracture "
                                           "(not yet confirmed)")

            # The service records it but its answer is lost; sending again is the same referral.
            lost: list[int] = []

            def lose_the_answer(route) -> None:
                lost.append(route.fetch().status)
                route.abort()

            page.route("**/api/referrals/referrals", lose_the_answer)
            page.click("#intake-save")
            expect(page.locator("#intake-errors")).to_contain_text("cannot be reached")
            assert lost == [201]
            page.unroute("**/api/referrals/referrals")
            page.click("#intake-save")
            expect(page.locator("#notice")).to_contain_text("already recorded")
            heading = page.get_by_role("heading", name=re.compile("Eleanor Whitfield"))
            expect(heading).to_contain_text("received")
            # the scheduler who keyed it in sees no clinical text back (least privilege)
            facts = page.locator("dl.facts").first
            expect(facts).to_contain_text("For the care team only")
            expect(facts).not_to_contain_text("amitriptyline")
            shot(page, "intake-recorded")

            # the triage lead reads what was recorded
            lead = bearer(settings, "specialist", "pm-lead", discipline="pain_medicine",
                          also=("triage_lead",))
            found = requests.get(f"{clinic['referrals'].url}/referrals?patient_id=pat-e2e-100",
                                 headers=lead, timeout=10).json()
            assert found["total"] == 1, "the resend folded into the one referral"
            [made] = found["items"]
            assert made["condition_detail"].startswith("Complex regional pain after a distal")
            assert made["id"] == page.url.rsplit("/", 1)[-1]
            assert [m["name"] for m in made["medications"]] == ["amitriptyline",
                                                                 "capsaicin 8% patch"]
            assert made["urgency_requested"] == "soon"
            assert made["patient"]["contact"]["email"] == "eleanor.whitfield@example.org"

            # On a tablet, by keyboard: the form's fields in reading order.
            page.set_viewport_size({"width": 820, "height": 1180})
            page.goto(f"{url}/#/intake")
            expect(page.get_by_role("heading", name="New referral")).to_be_visible()
            page.keyboard.press("Tab")  # the back link, then the first field
            page.keyboard.press("Tab")
            expect(page.locator("#p-name")).to_be_focused()
            shot(page, "intake-tablet")
        finally:
            browser.close()


@pytest.mark.journey(short="sqlite")
def test_a_scheduler_cancels_one_visit_then_the_whole_itinerary(
        new_database_url, topic_prefix, kafka_bootstrap, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    settings = Settings.for_service("tests", topic_prefix=topic_prefix,
                                    kafka_bootstrap=kafka_bootstrap)
    with _console_over(["referrals", "scheduling"], new_database_url, topic_prefix,
                       tmp_path / "logs") as (clinic, url), sync_playwright() as p:
        scheduling, referrals = clinic["scheduling"].url, clinic["referrals"].url
        scheduler = bearer(settings, "scheduler")
        scheduling_demo.seed(scheduling, bearer(settings, "admin"))
        referral_id = referrals_demo.seed(referrals, scheduler)[0]
        lead = bearer(settings, "specialist", "pm-lead", discipline="pain_medicine",
                      also=("triage_lead",))
        triaged = requests.post(f"{referrals}/referrals/{referral_id}/triage", headers=lead,
                                timeout=10, json={"priority": "soon", "pathway": [
                                    {"discipline": "pain_medicine", "visit_minutes": 60,
                                     "sessions": 1, "interval_days": 0},
                                    {"discipline": "physical_therapy", "visit_minutes": 45,
                                     "sessions": 2, "interval_days": 7}]})
        assert triaged.status_code == 200, triaged.text
        accepted = requests.post(f"{referrals}/referrals/{referral_id}/accept", headers=lead,
                                 json={}, timeout=10)
        assert accepted.status_code == 200, accepted.text
        # scheduling proposes on referral.accepted (through Kafka); the scheduler books it
        [proposal] = wait_for(lambda: requests.get(
            f"{scheduling}/itineraries?referral_id={referral_id}", headers=scheduler,
            timeout=10).json(), timeout=90, what="the proposed itinerary")
        booked = requests.post(f"{scheduling}/itineraries/{proposal['id']}/confirm",
                               headers=scheduler, timeout=20)
        assert booked.status_code == 200, booked.text
        itinerary_id = proposal["id"]

        browser = launch_chromium(p)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            sign_in(page, url, "Scheduler (local)")
            page.goto(f"{url}/#/itinerary/{itinerary_id}")
            expect(page.get_by_role("heading", name=re.compile("booked"))).to_be_visible()
            cancel_buttons = page.locator("#visits .cancel-visit")
            expect(cancel_buttons).to_have_count(3)

            # One visit: the dialog asks why (a blank reason is said beside the field).
            row = page.locator("#visits tbody tr").last
            visit_id = row.get_attribute("data-visit")
            row.locator(".cancel-visit").click()
            dialog = page.get_by_role("dialog")
            expect(dialog).to_be_visible()
            expect(page.locator("#cancel-reason")).to_be_focused()
            page.click("#cancel-go")
            expect(page.locator('#cancel-dialog [data-error-for="reason"]')).to_contain_text(
                "Say why")
            shot(page, "cancel-visit-no-reason")
            page.fill("#cancel-reason", "The patient is away that week.")
            expect(page.locator('#cancel-dialog [data-error-for="reason"]')).to_be_empty()
            shot(page, "cancel-visit")
            page.click("#cancel-go")
            expect(page.locator("#notice")).to_contain_text("Visit cancelled")
            expect(dialog).to_have_count(0)
            expect(page.locator(f'#visits tr[data-visit="{visit_id}"]')).to_contain_text(
                "cancelled")
            expect(cancel_buttons).to_have_count(2)
            expect(page.get_by_role("heading", name=re.compile("booked"))).to_be_visible()
            shot(page, "visit-cancelled")
            visit = requests.get(f"{scheduling}/appointments/{visit_id}", headers=scheduler,
                                 timeout=10).json()
            assert (visit["status"], visit["cancel_reason"]) == (
                "cancelled", "The patient is away that week.")

            # The whole itinerary, by keyboard: Escape keeps it, then a reason cancels it.
            page.locator("#cancel-itinerary").focus()
            page.keyboard.press("Enter")
            expect(dialog).to_be_visible()
            page.keyboard.press("Escape")
            expect(dialog).to_have_count(0)
            expect(page.locator("#cancel-itinerary")).to_be_focused()
            page.keyboard.press("Enter")
            expect(dialog).to_contain_text("2 visits are cancelled")
            page.keyboard.type("The patient declined the offered visits.")
            shot(page, "cancel-itinerary")
            page.keyboard.press("Tab")
            expect(page.locator("#cancel-go")).to_be_focused()
            page.keyboard.press("Enter")
            expect(page.locator("#notice")).to_contain_text("Itinerary cancelled")
            expect(page.get_by_role("heading", name=re.compile("cancelled"))).to_be_visible()
            expect(page.locator("#cancel-itinerary")).to_have_count(0)
            expect(cancel_buttons).to_have_count(0)
            expect(page.locator("#visits tbody tr").filter(has_text="booked")).to_have_count(0)
            shot(page, "itinerary-cancelled")
            after = requests.get(f"{scheduling}/itineraries/{itinerary_id}", headers=scheduler,
                                 timeout=10).json()
            assert after["status"] == "cancelled"
            assert {v["status"] for v in after["visits"]} == {"cancelled"}
        finally:
            browser.close()
