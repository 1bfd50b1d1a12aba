"""A provider's diary feed, built purely and parsed back with the icalendar library."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from icalendar import Calendar

from services.scheduling.diary import calendar_feed

NOW = datetime(2026, 3, 20, 8, tzinfo=UTC)
START = datetime(2026, 3, 23, 10, tzinfo=UTC)


def visit(i: int, discipline: str = "psychology", room_id: str | None = "r-1") -> dict:
    return {"id": f"appt-{i}", "discipline": discipline, "room_id": room_id,
            "start_at": START + timedelta(days=i), "end_at": START + timedelta(days=i, hours=1),
            "updated_at": NOW - timedelta(days=1)}


def test_each_visit_keeps_its_uid_and_shows_discipline_and_room_only():
    text = calendar_feed.diary("Dr Lind", [visit(0), visit(1, "acupuncture", None)],
                               {"r-1": "Consulting room 1"}, NOW)
    cal = Calendar.from_ical(text)
    assert str(cal["method"]) == "PUBLISH"
    assert str(cal["x-wr-calname"]) == "PainCare: Dr Lind"
    first, second = cal.walk("VEVENT")
    assert [str(first["uid"]), str(second["uid"])] == ["appt-0@paincare", "appt-1@paincare"]
    assert str(first["summary"]) == "Psychology visit"
    assert str(first["location"]) == "Pain clinic, room Consulting room 1"
    assert str(second["summary"]) == "Acupuncture visit"
    assert str(second["location"]) == "Pain clinic"
    assert first.decoded("dtstart") == START and first.decoded("dtend") == START + timedelta(
        hours=1)
    assert str(first["class"]) == "PRIVATE"


def test_tokens_are_random_and_only_their_hash_is_kept():
    a, b = calendar_feed.new_token(), calendar_feed.new_token()
    assert a != b and len(a) >= 40
    assert calendar_feed.token_hash(a) == calendar_feed.token_hash(a)
    assert calendar_feed.token_hash(a) != calendar_feed.token_hash(b)
    assert a not in calendar_feed.token_hash(a) and len(calendar_feed.token_hash(a)) == 64


def test_the_window_is_a_month_back_to_six_months_ahead():
    start, end = calendar_feed.window(NOW)
    assert (NOW - start, end - NOW) == (timedelta(days=30), timedelta(days=180))
