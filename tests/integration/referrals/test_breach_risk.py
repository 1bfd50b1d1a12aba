"""Breach risk at the referral desk, on a real database (SQLite and PostgreSQL): the
requested urgency travels in referral.received; an itinerary whose first visit falls
after the due date raises `referral.breach_risk` once per itinerary, shown on the work
queue (marked, filterable) and the referral's page, and lifted by a booking within the
due date; the worker's sweep warns once about referrals still unscheduled near due,
however many workers sweep at once."""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select

from services.referrals import use_cases
from services.referrals.db import BreachRiskRow
from services.referrals.worker import breach_sweep
from shared.events import Envelope, new_event
from tests.integration.referrals.conftest import Desk
from tests.integration.referrals.test_events import accepted_referral, handle


def events(desk: Desk, event_type: str) -> list[dict[str, Any]]:
    outbox = desk.runtime.tables.outbox
    with desk.runtime.db.transaction() as s:
        rows = s.execute(select(outbox.c.body).order_by(outbox.c.seq)).scalars().all()
    found = [json.loads(bytes(r)) for r in rows]
    return [e["payload"] for e in found if e["type"] == event_type]


def itinerary(event_type: str, referral_id: str, itinerary_id: str, first: datetime
              ) -> Envelope:
    visits = [{"discipline": d, "provider_id": p, "start": (first + timedelta(hours=h))
               .isoformat(), "end": (first + timedelta(hours=h, minutes=45)).isoformat()}
              for d, p, h in (("physical_therapy", "pt-lee", 1), ("pain_medicine", "dr-o", 0))]
    payload: dict[str, Any] = {"itinerary_id": itinerary_id, "referral_id": referral_id,
                               "patient_id": "pat-ann", "visits": visits}
    if event_type == "itinerary.proposed":
        payload["hold_expires_at"] = (first - timedelta(days=1)).isoformat()
    return new_event(event_type, payload, producer="scheduling")


def detail(desk: Desk, referral_id: str) -> dict[str, Any]:
    return desk.client.get(f"/referrals/{referral_id}", headers=desk.scheduler).get_json()


def listed(desk: Desk, **params: str) -> list[str]:
    resp = desk.client.get("/referrals", query_string=params, headers=desk.scheduler)
    assert resp.status_code == 200, resp.get_json()
    return [r["id"] for r in resp.get_json()["items"]]


def on(day: date, hour: int = 10) -> datetime:
    """A time on that date in the clinic (London is on GMT in winter, BST in summer)."""
    from zoneinfo import ZoneInfo
    return datetime.combine(day, time(hour), ZoneInfo("Europe/London")).astimezone(UTC)


def test_the_requested_urgency_and_provisional_due_date_travel_in_referral_received(
        desk: Desk) -> None:
    made = desk.refer(urgency_requested="urgent")
    [received] = events(desk, "referral.received")
    assert received["urgency_requested"] == "urgent"
    assert received["due_by"] == made["due_by"]
    assert date.fromisoformat(made["due_by"]) - date.fromisoformat(made["received_at"][:10]) \
        == timedelta(days=7)


def test_a_late_first_visit_is_a_breach_risk_once_per_itinerary_until_one_is_in_time(
        desk: Desk) -> None:
    rid = accepted_referral(desk)
    on_time = accepted_referral_other(desk)
    due = date.fromisoformat(detail(desk, rid)["due_by"])
    late = on(due + timedelta(days=1), 9)

    handle(desk, itinerary("itinerary.proposed", rid, "it-late", late))
    handle(desk, itinerary("itinerary.proposed", rid, "it-late", late))  # the same again
    handle(desk, itinerary("itinerary.proposed", on_time, "it-ok", on(due, 17)))
    [risk] = events(desk, "referral.breach_risk")
    patient_id = detail(desk, rid)["patient"]["id"]  # PainCare's own id
    assert risk == {"referral_id": rid, "patient_id": patient_id, "priority": "soon",
                    "due_by": due.isoformat(), "reason": "first_visit_after_due",
                    "first_visit_at": late.isoformat(), "detected_at": risk["detected_at"]}

    shown = detail(desk, rid)
    assert shown["at_breach_risk"] is True and shown["status"] == "accepted"
    assert shown["breach_risk"]["reason"] == "first_visit_after_due"
    assert shown["breach_risk"]["first_visit_at"].startswith(late.isoformat()[:16])
    assert [h["action"] for h in shown["history"]][-1] == "breach_risk"
    assert "it-late" in shown["history"][-1]["reason"]
    assert detail(desk, on_time)["at_breach_risk"] is False
    assert listed(desk, breach_risk="true") == [rid]
    assert set(listed(desk, breach_risk="false")) == {on_time}

    # the scheduler confirms the late one: scheduled, still at risk, not told twice
    handle(desk, itinerary("itinerary.booked", rid, "it-late", late))
    assert detail(desk, rid)["status"] == "scheduled"
    assert detail(desk, rid)["at_breach_risk"] is True
    assert len(events(desk, "referral.breach_risk")) == 1
    # another itinerary, late too: a new risk
    handle(desk, itinerary("itinerary.proposed", rid, "it-later", late + timedelta(days=3)))
    assert len(events(desk, "referral.breach_risk")) == 2

    # a rebooking whose first visit is on the due date lifts it; the history keeps it
    handle(desk, itinerary("itinerary.booked", rid, "it-better", on(due, 23)))
    shown = detail(desk, rid)
    assert shown["at_breach_risk"] is False and shown["breach_risk"] is None
    assert [h["action"] for h in shown["history"]].count("breach_risk") == 2
    assert shown["history"][-1]["action"] == "breach_cleared"
    assert listed(desk, breach_risk="true") == []
    with desk.runtime.db.transaction() as s:
        rows = s.execute(select(BreachRiskRow.occasion, BreachRiskRow.cleared_at)).all()
        audit = desk.runtime.tables.audit
        audited = s.execute(select(audit.c.action, audit.c.actor).where(
            audit.c.resource_id == rid, audit.c.action.like("breach%"))).all()
    assert sorted(o for o, _ in rows) == ["it-late", "it-later"]
    assert all(cleared is not None for _, cleared in rows)
    assert sorted(audited) == [("breach_cleared", "scheduling"), ("breach_risk", "scheduling"),
                               ("breach_risk", "scheduling")]


def accepted_referral_other(desk: Desk) -> str:
    made = desk.client.post("/referrals", headers=desk.scheduler, json={
        **_body(), "patient": {**_body()["patient"], "id": "pat-bo", "name": "Bo Reyes"}})
    assert made.status_code == 201, made.get_json()
    rid = made.get_json()["id"]
    assert desk.triage(rid).status_code == 200
    assert desk.client.post(f"/referrals/{rid}/accept", json={},
                            headers=desk.lead).status_code == 200
    return rid


def _body() -> dict[str, Any]:
    from tests.integration.referrals.conftest import referral_body
    return referral_body()


def test_the_sweep_warns_once_about_unscheduled_referrals_near_due(desk: Desk) -> None:
    rid = accepted_referral(desk)
    due = date.fromisoformat(detail(desk, rid)["due_by"])

    def sweep(today: date) -> list[str]:
        with desk.runtime.db.transaction() as s:
            return use_cases.sweep_near_due(desk.runtime, s, now=on(today, 8),
                                            warning_days=2)

    assert sweep(due - timedelta(days=3)) == []
    assert sweep(due - timedelta(days=2)) == [rid]
    assert sweep(due - timedelta(days=1)) == []  # once per referral
    assert sweep(due + timedelta(days=4)) == []
    [risk] = events(desk, "referral.breach_risk")
    assert risk["reason"] == "unscheduled_near_due" and risk["first_visit_at"] is None
    assert detail(desk, rid)["breach_risk"]["reason"] == "unscheduled_near_due"
    assert desk.client.get("/referrals/queue", query_string={"breach_risk": "true"},
                           headers=desk.scheduler).get_json()["total"] == 0  # accepted

    # booked within the due date after all: the warning is lifted
    handle(desk, itinerary("itinerary.booked", rid, "it-1", on(due, 9)))
    assert detail(desk, rid)["at_breach_risk"] is False


def test_several_workers_sweeping_at_once_warn_once(desk: Desk) -> None:
    ids = {accepted_referral(desk), accepted_referral_other(desk)}
    due = max(date.fromisoformat(detail(desk, r)["due_by"]) for r in ids)
    start = threading.Barrier(3)
    warned: list[str] = []

    def worker() -> None:
        start.wait()
        with desk.runtime.db.transaction() as s:
            warned.extend(use_cases.sweep_near_due(desk.runtime, s, now=on(due, 8),
                                                   warning_days=2))

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(warned) == sorted(ids)
    assert sorted(e["referral_id"] for e in events(desk, "referral.breach_risk")) == sorted(ids)


def test_the_worker_loop_sweeps_with_its_clock(desk: Desk) -> None:
    rid = accepted_referral(desk)
    due = date.fromisoformat(detail(desk, rid)["due_by"])
    stop = threading.Event()

    def clock() -> datetime:  # one round, then the loop ends
        stop.set()
        return on(due, 8)

    breach_sweep(desk.runtime, clock=clock)(stop)
    assert detail(desk, rid)["breach_risk"]["reason"] == "unscheduled_near_due"


def test_a_bad_breach_risk_filter_is_a_problem_naming_the_field(desk: Desk) -> None:
    for path in ("/referrals", "/referrals/queue"):
        resp = desk.client.get(path, query_string={"breach_risk": "maybe"},
                               headers=desk.scheduler)
        assert resp.status_code == 422
        assert resp.mimetype == "application/problem+json"
        assert "query.breach_risk" in resp.get_json()["errors"]
