"""The dashboard's read model as clinic stories: events in, the figures an admin sees."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from services.dashboard import domain
from services.dashboard.domain import Snapshot, clinic_figures
from tests.unit.dashboard.stories import (
    NOW,
    a_clinic_week,
    breach,
    moved,
    notified,
    received,
    visit,
)

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
    r2_due = (NOW - 13 * DAY).date().isoformat()
    assert f["breach_risk"] == {"count": 1, "referrals": [{
        "referral_id": "r2", "due_by": r2_due, "reason": "unscheduled_near_due",
        "priority": "soon", "first_visit_at": None,
        "detected_at": (NOW - 15 * DAY).isoformat()}]}


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


def test_referrals_at_breach_risk_until_what_resolves_each():
    """Raised by referral.breach_risk; resolved by a first visit booked on or before the
    due date (clinic dates), by scheduling for a near-due warning, by closing or care.
    Ids, dates and reasons only: never a name."""
    t0 = NOW - 10 * DAY
    due = (NOW + 3 * DAY).date()
    summer_due = domain.as_date("2026-07-10")
    late = NOW + 9 * DAY

    def opened(rid: str, status: str = "accepted", due_by=due):  # type: ignore[no-untyped-def]
        return [received(rid, at=t0),
                moved(rid, status, received_at=t0, at=t0 + DAY, priority="soon",
                      due_by=due_by, frm="triaged")]

    events = [
        *opened("still"), breach("still", reason="unscheduled_near_due", due_by=due, at=NOW),
        # a late proposal, then a booking within the due date
        *opened("rebooked"),
        breach("rebooked", reason="first_visit_after_due", due_by=due, at=t0 + 2 * DAY,
               first_visit_at=late),
        visit("appointment.booked", "x1", provider_id="pm1", discipline="pain_medicine",
              start=NOW + 2 * DAY, referral_id="rebooked", at=t0 + 3 * DAY),
        # warned as near due, then scheduled (on time)
        *opened("scheduled"),
        breach("scheduled", reason="unscheduled_near_due", due_by=due, at=t0 + 2 * DAY),
        moved("scheduled", "scheduled", received_at=t0, at=t0 + 3 * DAY, frm="accepted"),
        # booked late: scheduled, and the late first visit keeps it at risk
        *opened("late"),
        moved("late", "scheduled", received_at=t0, at=t0 + 3 * DAY, frm="accepted"),
        breach("late", reason="first_visit_after_due", due_by=due, at=t0 + 3 * DAY,
               first_visit_at=late),
        visit("appointment.booked", "x2", provider_id="pm1", discipline="pain_medicine",
              start=late, referral_id="late", at=t0 + 3 * DAY),
        # cancelled: no longer the clinic's risk
        *opened("cancelled"),
        breach("cancelled", reason="unscheduled_near_due", due_by=due, at=t0 + 2 * DAY),
        moved("cancelled", "cancelled", received_at=t0, at=t0 + 4 * DAY, frm="accepted"),
        # 23:30 UTC on a summer due date is 00:30 the next day in London: late
        *opened("midnight", "scheduled", due_by=summer_due),
        breach("midnight", reason="first_visit_after_due", due_by=summer_due,
               at=t0 + 3 * DAY, first_visit_at=NOW),
        visit("appointment.booked", "x3", provider_id="pm1", discipline="pain_medicine",
              start=domain.as_utc("2026-07-10T23:30:00+00:00"), referral_id="midnight",
              at=t0 + 3 * DAY),
    ]
    risk = figures(events)["breach_risk"]
    assert risk["count"] == 3
    assert [(r["referral_id"], r["reason"]) for r in risk["referrals"]] == [
        ("midnight", "first_visit_after_due"),  # soonest due first, then first seen
        ("late", "first_visit_after_due"), ("still", "unscheduled_near_due")]
    assert all(set(r) == {"referral_id", "due_by", "reason", "priority", "first_visit_at",
                          "detected_at"} for r in risk["referrals"])
    # a visit at 22:59 UTC is still on the due date in London: resolved
    events[-1] = visit("appointment.booked", "x3", provider_id="pm1",
                       discipline="pain_medicine", referral_id="midnight", at=t0 + 3 * DAY,
                       start=domain.as_utc("2026-07-10T22:59:00+00:00"))
    assert figures(events)["breach_risk"]["count"] == 2
    # replayed in any order of its own events, the last word about a referral wins
    assert figures(list(reversed(events)))["breach_risk"]["count"] == 2


def test_recent_break_glass_is_listed_newest_first_once_each_without_a_reason():
    from shared.events import new_event

    def opened(access_id: str, hours_ago: int):
        at = NOW - timedelta(hours=hours_ago)
        return new_event("patient.break_glass", {
            "access_id": access_id, "patient_id": "pat-1", "actor_id": "prov-out",
            "discipline": "physical_therapy", "opened_at": at.isoformat(),
            "expires_at": (at + timedelta(hours=4)).isoformat()}, producer="notes")

    first, second = opened("bg-1", 5), opened("bg-2", 1)
    listed = figures([first, second, first])["break_glass"]  # the first one redelivered
    assert [b["access_id"] for b in listed] == ["bg-2", "bg-1"]
    assert listed[0]["by"] == "prov-out" and listed[0]["patient_id"] == "pat-1"
    assert set(listed[0]) == {"access_id", "patient_id", "by", "discipline", "opened_at",
                              "expires_at"}
    assert figures([])["break_glass"] == []
