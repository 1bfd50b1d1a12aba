"""The dashboard's read model as clinic stories: events in, the figures an admin sees."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from services.dashboard import domain
from services.dashboard.domain import Snapshot, clinic_figures
from tests.unit.dashboard.stories import NOW, a_clinic_week, moved, notified, received, visit

LONDON = ZoneInfo("Europe/London")
DAY = timedelta(days=1)


def fold(events) -> Snapshot:
    snap = Snapshot()
    for env in events:
        snap.apply(env.type, env.payload, env.occurred_at)
    return snap


def figures(events, now=NOW):
    return clinic_figures(fold(events), now=now, tz=LONDON, weekly_hours=10)


def test_a_clinic_week_gives_the_figures_an_admin_expects():
    f = figures(a_clinic_week())
    refs = f["referrals"]
    assert refs["total"] == 3
    assert {k: v for k, v in refs["by_status"].items() if v} == {
        "scheduled": 1, "accepted": 1, "rejected": 1}
    assert refs["open_by_priority"] == {"urgent": 1, "soon": 1, "routine": 0, "untriaged": 0}
    assert refs["past_target"] == 1  # r2: accepted, due a week ago, no visit
    assert refs["median_days_to_first_visit"] == 8.0
    assert f["appointments_today"] == {"total": 2, "by_discipline": {
        "pain_medicine": 1, "physical_therapy": 1, "psychology": 0, "acupuncture": 0}}
    util = {d["discipline"]: d for d in f["utilisation"]["by_discipline"]}
    assert util["pain_medicine"]["booked_hours"] == 1.5
    # pm1: 1.5 h of the 32 h its template gives minus Thursday's leave
    assert util["pain_medicine"]["capacity_hours"] == 32.0
    assert util["pain_medicine"]["utilisation"] == round(1.5 / 32, 4)
    assert util["pain_medicine"]["capacity_unknown"] == 0
    # pt1's capacity never arrived: the fallback (10 h here), marked unknown
    assert util["physical_therapy"]["utilisation"] == 0.075
    assert util["physical_therapy"]["capacity_unknown"] == 1
    assert {p["provider_id"]: p["capacity_known"]
            for p in f["utilisation"]["by_provider"]} == {"pm1": True, "pt1": False}
    assert f["utilisation"]["capacity_unknown"] == 1
    assert util["psychology"]["utilisation"] is None  # no providers, no capacity
    assert [p["provider_id"] for p in f["utilisation"]["by_provider"]] == ["pm1", "pt1"]
    assert f["utilisation"]["week_start"] == "2026-11-23"
    assert f["no_show"]["rate"] == 0.5
    notes = f["notifications"]
    assert (notes["sent"], notes["failed"]) == (2, 1)
    assert notes["by_channel"]["sms"] == {"sent": 1, "failed": 0}
    assert notes["latest_failures"][0]["reason"] == "mailbox unavailable"


def test_a_referral_seen_before_its_target_is_not_late_but_an_unseen_one_is():
    r = NOW - 30 * DAY
    events = [
        moved("seen", "scheduled", received_at=r, at=r, priority="urgent",
              due_by=(r + 5 * DAY).date()),
        visit("appointment.booked", "v", provider_id="pm1", discipline="pain_medicine",
              start=r + 4 * DAY, referral_id="seen"),
        moved("late-visit", "scheduled", received_at=r, at=r, priority="soon",
              due_by=(r + 5 * DAY).date()),
        visit("appointment.booked", "w", provider_id="pm1", discipline="pain_medicine",
              start=r + 9 * DAY, referral_id="late-visit"),
        moved("waiting", "triaged", received_at=r, at=r, priority="routine",
              due_by=(NOW - DAY).date()),
        moved("not-yet-due", "accepted", received_at=r, at=r, priority="routine",
              due_by=NOW.date()),
        moved("closed", "cancelled", received_at=r, at=r, priority="routine",
              due_by=(r + DAY).date()),
    ]
    assert figures(events)["referrals"]["past_target"] == 2  # late-visit and waiting


def test_a_cancelled_visit_is_neither_today_nor_a_first_visit():
    r = NOW - 10 * DAY
    events = [
        received("r", at=r),
        visit("appointment.booked", "a", provider_id="pm1", discipline="pain_medicine",
              start=NOW + timedelta(hours=1), referral_id="r"),
        visit("appointment.cancelled", "a", provider_id="pm1", discipline="pain_medicine",
              start=NOW + timedelta(hours=1), referral_id="r"),
    ]
    f = figures(events)
    assert f["appointments_today"]["total"] == 0
    assert f["referrals"]["median_days_to_first_visit"] is None
    assert f["referrals"]["open_by_priority"]["untriaged"] == 1


def test_a_rescheduled_visit_moves_to_its_new_day():
    booked = visit("appointment.booked", "a", provider_id="pt1",
                   discipline="physical_therapy", start=NOW + timedelta(hours=1))
    moved_on = visit("appointment.rescheduled", "a", provider_id="pt1",
                     discipline="physical_therapy", start=NOW + 2 * DAY,
                     previous_start=(NOW + timedelta(hours=1)).isoformat(),
                     previous_end=(NOW + timedelta(hours=2)).isoformat(), by="s-1")
    assert figures([booked])["appointments_today"]["total"] == 1
    assert figures([booked, moved_on])["appointments_today"]["total"] == 0


def test_an_older_event_arriving_late_changes_nothing():
    r = NOW - 5 * DAY
    newer = moved("r", "accepted", received_at=r, at=r + 2 * DAY, priority="urgent")
    older = moved("r", "triaged", received_at=r, at=r + DAY, priority="soon")
    snap = fold([newer, older, received("r", at=r)])
    assert snap.referrals["r"].status == "accepted"
    assert snap.referrals["r"].priority == "urgent"


def test_a_failed_notification_later_sent_counts_as_sent_and_a_redelivery_is_harmless():
    failed = notified("n", failed=True, at=NOW - DAY)
    sent = notified("n", at=NOW)
    f = figures([failed, sent, sent, failed])
    assert (f["notifications"]["sent"], f["notifications"]["failed"]) == (1, 0)


def test_events_the_read_model_does_not_follow_change_nothing():
    assert domain.changes("note.signed", {}, NOW, lambda *_: None) == []


def test_lag_throughput_and_group_names():
    assert domain.group_lag({"p0": 10, "p1": 5, "p2": 0}, {"p0": 7}) == 8
    assert domain.throughput(None, (1.0, 10)) is None
    assert domain.throughput((1.0, 10), (3.0, 30)) == 10.0
    services = ("referrals", "dashboard")
    assert domain.service_of_group("t1.dashboard.readmodel-g2", "t1.", services) == "dashboard"
    assert domain.service_of_group("t2.dashboard.readmodel-g2", "t1.", services) is None
    assert domain.service_of_group("tabc.referrals.pings", "", services) is None
