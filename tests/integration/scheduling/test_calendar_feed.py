"""A provider's private iCal feed on a real database (SQLite and PostgreSQL): made by the
provider or a scheduler, read by a calendar program with no bearer token, revoked to a
404; it shows the provider's booked visits with their stable UIDs, never a patient."""

from __future__ import annotations

from datetime import timedelta

from icalendar import Calendar
from sqlalchemy import select

from services.scheduling.diary.db import calendar_feeds
from tests.support.clinic import bearer

MON_10 = "2026-03-23T10:00:00+00:00"
PROBLEM = "application/problem+json"


def _settings(clinic):  # type: ignore[no-untyped-def]
    return clinic.app.extensions["paincare.settings"]


def _specialist(clinic, key: str):  # type: ignore[no-untyped-def]
    return bearer(_settings(clinic), "specialist", f"dr-{key}",
                  discipline={"pain": "pain_medicine", "pt": "physical_therapy"}[key],
                  provider_id=clinic.ids[key])


def _path(url: str) -> str:
    return url[url.index("/calendar/"):]


def _audit(clinic) -> list[tuple]:  # type: ignore[no-untyped-def]
    runtime = clinic.app.extensions["paincare.runtime"]
    audit = runtime.tables.audit
    with runtime.db.transaction() as s:
        return [tuple(r) for r in s.execute(
            select(audit.c.actor_role, audit.c.action, audit.c.resource_id, audit.c.outcome)
            .where(audit.c.resource == "calendar_feed").order_by(audit.c.id))]


def test_a_provider_subscribes_to_their_diary_and_revokes_it(clinic):
    kept = clinic.book("pt", MON_10, patient="p-1", room_id=clinic.ids["gym"]).json
    moved = clinic.book("pt", "2026-03-24T10:00:00+00:00", patient="p-2").json
    gone = clinic.book("pt", "2026-03-25T10:00:00+00:00", patient="p-3").json
    clinic.book("pain", MON_10, patient="p-4")  # another provider's diary
    far = clinic.book("pt", "2026-12-01T10:00:00+00:00", patient="p-5")  # beyond 180 days
    assert far.status_code == 201, far.get_json()
    assert clinic.post(f"/appointments/{gone['id']}/cancel",
                       {"reason": "patient has a flare of burning pain"}).status_code == 200
    assert clinic.post(f"/appointments/{moved['id']}/reschedule",
                       {"start": "2026-03-26T14:00:00+00:00"}).status_code == 200

    made = clinic.client.post(f"/providers/{clinic.ids['pt']}/calendar-feed",
                              headers=_specialist(clinic, "pt"))
    assert made.status_code == 201, made.get_json()
    url = made.json["url"]
    assert url.startswith("http://localhost/calendar/") and url.endswith(".ics")
    token = url.rsplit("/", 1)[1][:-4]
    runtime = clinic.app.extensions["paincare.runtime"]
    with runtime.db.transaction() as s:  # only a hash is kept
        stored = s.execute(select(calendar_feeds.c.token_hash)).scalars().all()
    assert len(stored) == 1 and token not in stored[0] and len(stored[0]) == 64

    feed = clinic.client.get(_path(url))  # no Authorization header at all
    assert feed.status_code == 200
    assert feed.mimetype == "text/calendar"
    cal = Calendar.from_ical(feed.data)
    events = {str(e["uid"]): e for e in cal.walk("VEVENT")}
    assert set(events) == {f"{kept['id']}@paincare", f"{moved['id']}@paincare"}
    visit = events[f"{kept['id']}@paincare"]
    assert str(visit["summary"]) == "Physical therapy visit"
    assert "PT gym" in str(visit["location"])
    assert visit.decoded("dtstart").isoformat() == MON_10
    assert events[f"{moved['id']}@paincare"].decoded("dtstart").isoformat() \
        == "2026-03-26T14:00:00+00:00"
    text = feed.data.decode()
    for secret in ("p-1", "p-2", "burning", "Patient"):
        assert secret not in text

    assert clinic.client.delete(f"/providers/{clinic.ids['pt']}/calendar-feed",
                                headers=clinic.scheduler).status_code == 204
    revoked = clinic.client.get(_path(url))
    assert revoked.status_code == 404 and revoked.mimetype == PROBLEM
    again = clinic.client.delete(f"/providers/{clinic.ids['pt']}/calendar-feed",
                                 headers=clinic.scheduler)
    assert again.status_code == 404 and again.mimetype == PROBLEM
    assert _audit(clinic) == [
        ("specialist", "create", clinic.ids["pt"], "allowed"),
        ("calendar_feed", "read", clinic.ids["pt"], "allowed"),
        ("scheduler", "revoke", clinic.ids["pt"], "allowed"),
        ("calendar_feed", "read", None, "denied")]


def test_a_new_feed_replaces_the_old_and_the_window_moves_with_the_clock(clinic):
    clinic.book("pain", MON_10, patient="p-1")
    first = clinic.post(f"/providers/{clinic.ids['pain']}/calendar-feed", {}).json["url"]
    second = clinic.post(f"/providers/{clinic.ids['pain']}/calendar-feed", {}).json["url"]
    assert first != second
    assert clinic.client.get(_path(first)).status_code == 404
    assert len(Calendar.from_ical(clinic.client.get(_path(second)).data).walk("VEVENT")) == 1
    clinic.clock.advance(days=35)  # the visit (Mon 23 Mar) is now more than 30 days past
    assert Calendar.from_ical(clinic.client.get(_path(second)).data).walk("VEVENT") == []


def test_a_specialist_manages_only_their_own_feed_and_tokens_do_not_cross(clinic):
    clinic.book("pain", MON_10, patient="p-1")
    pt_only = clinic.client.post(f"/providers/{clinic.ids['pain']}/calendar-feed",
                                 headers=_specialist(clinic, "pt"))
    assert pt_only.status_code == 403 and pt_only.mimetype == PROBLEM
    assert "own calendar feed" in pt_only.json["detail"]
    assert clinic.client.delete(f"/providers/{clinic.ids['pain']}/calendar-feed",
                                headers=_specialist(clinic, "pt")).status_code == 403
    pt_url = clinic.client.post(f"/providers/{clinic.ids['pt']}/calendar-feed",
                                headers=_specialist(clinic, "pt")).json["url"]
    pt_feed = Calendar.from_ical(clinic.client.get(_path(pt_url)).data)
    assert pt_feed.walk("VEVENT") == []  # Sam Reid's token shows Sam Reid's diary only
    assert "Sam Reid" in str(pt_feed["x-wr-calname"])
    assert clinic.client.get("/calendar/" + "x" * 43 + ".ics").status_code == 404
    assert clinic.client.get("/calendar/short.ics").status_code == 404
    missing = clinic.post("/providers/no-such-provider/calendar-feed", {})
    assert missing.status_code == 404 and missing.mimetype == PROBLEM
    assert clinic.client.post(f"/providers/{clinic.ids['pt']}/calendar-feed"
                              ).status_code == 401  # managing a feed needs a token
    service = clinic.client.post(f"/providers/{clinic.ids['pt']}/calendar-feed",
                                 headers=bearer(_settings(clinic), "service"))
    assert service.status_code == 403 and service.mimetype == PROBLEM


def test_the_feed_shows_no_visit_beyond_180_days_until_it_comes_within_them(clinic):
    start = clinic.clock.now + timedelta(days=181)
    assert clinic.book("pain", start.replace(hour=10).isoformat(), patient="p-9"
                       ).status_code == 201
    url = clinic.post(f"/providers/{clinic.ids['pain']}/calendar-feed", {}).json["url"]
    assert Calendar.from_ical(clinic.client.get(_path(url)).data).walk("VEVENT") == []
    clinic.clock.advance(days=2)  # now within 180 days
    assert len(Calendar.from_ical(clinic.client.get(_path(url)).data).walk("VEVENT")) == 1
