"""Events in and out of the referral desk: scheduling's events move the referral on, and
the real broker carries the referral's events in order, once each."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kafka import KafkaProducer

from services.referrals.handlers import handlers
from services.referrals.worker import subscriptions
from shared import topics
from shared.errors import Conflict
from shared.events import Envelope, new_event
from shared.kafka import PermanentFailure
from shared.worker import Worker
from tests.integration.referrals.conftest import Desk, make_desk
from tests.support.clinic import read_topic, wait_for


def _visit(discipline: str, provider: str, start: datetime) -> dict[str, Any]:
    return {"discipline": discipline, "provider_id": provider, "start": start.isoformat(),
            "end": (start + timedelta(minutes=45)).isoformat()}


def itinerary_booked(referral_id: str | None, patient_id: str = "pat-ann") -> Envelope:
    first = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    return new_event("itinerary.booked", {
        "itinerary_id": "it-77", "referral_id": referral_id, "patient_id": patient_id,
        "visits": [_visit("physical_therapy", "pt-lee", first + timedelta(hours=1)),
                   _visit("pain_medicine", "dr-okafor", first)]}, producer="scheduling")


def appointment_completed(referral_id: str | None, appointment_id: str) -> Envelope:
    start = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    return new_event("appointment.completed", {
        "appointment_id": appointment_id, "patient_id": "pat-ann", "provider_id": "dr-okafor",
        "discipline": "pain_medicine", "start": start.isoformat(),
        "end": (start + timedelta(minutes=45)).isoformat(), "referral_id": referral_id},
        producer="scheduling")


def accepted_referral(desk: Desk) -> str:
    referral = desk.refer()
    assert desk.triage(referral["id"]).status_code == 200
    assert desk.client.post(f"/referrals/{referral['id']}/accept", json={},
                            headers=desk.lead).status_code == 200
    return referral["id"]


def handle(desk: Desk, envelope: Envelope) -> None:
    with desk.runtime.db.transaction() as s:
        handlers(desk.runtime)[envelope.type](s, envelope)


def status(desk: Desk, referral_id: str) -> dict[str, Any]:
    return desk.client.get(f"/referrals/{referral_id}", headers=desk.scheduler).get_json()


def test_scheduling_events_move_the_referral_once_each(desk: Desk):
    referral_id = accepted_referral(desk)
    handle(desk, itinerary_booked(referral_id))
    got = status(desk, referral_id)
    assert got["status"] == "scheduled"
    assert got["first_visit_at"].startswith("2026-12-01T09:00")
    handle(desk, itinerary_booked(referral_id))  # a rebooking: nothing moves
    handle(desk, appointment_completed(referral_id, "apt-1"))
    handle(desk, appointment_completed(referral_id, "apt-2"))  # not the first: no move
    history = status(desk, referral_id)["history"]
    assert [(h["to_status"], h["by"], h["by_role"]) for h in history[-2:]] == [
        ("scheduled", "scheduling", "service"), ("in_care", "scheduling", "service")]
    assert history[-1]["reason"] == "first appointment apt-1 completed"
    assert history[-1]["event_id"]
    assert desk.outbox_types().count("referral.status_changed") == 5


def test_events_the_desk_cannot_apply_are_refused_or_ignored(desk: Desk):
    before = desk.counts()
    handle(desk, itinerary_booked(None))  # a booking for no referral: not ours
    assert desk.counts() == before
    with pytest.raises(PermanentFailure):
        handle(desk, itinerary_booked("no-such-referral"))
    received = desk.refer()["id"]
    with pytest.raises(Conflict):  # booked before it was accepted: dead-letter, look at it
        handle(desk, itinerary_booked(received))
    assert status(desk, received)["status"] == "received"


@pytest.mark.kafka
def test_a_referral_from_received_to_scheduled_through_the_real_broker(
        settings_for, topic_prefix, kafka_bootstrap):
    settings = settings_for("referrals", topic_prefix=topic_prefix, kafka_enabled=True,
                            kafka_bootstrap=kafka_bootstrap, outbox_poll_seconds=0.1)
    desk = make_desk(settings)
    worker = Worker(desk.runtime, subscriptions(desk.runtime)).start()
    try:
        referral_id = accepted_referral(desk)
        patient_id = status(desk, referral_id)["patient"]["id"]
        booked = itinerary_booked(referral_id)
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        for _ in range(2):  # the same event delivered twice
            producer.send(settings.topic(topics.SCHEDULING), key=b"pat-ann",
                          value=booked.to_bytes()).get(10)
        producer.close()
        wait_for(lambda: status(desk, referral_id)["status"] == "scheduled", timeout=60,
                 what="the referral to be scheduled")

        def ours() -> list[dict[str, Any]]:
            return [v for k, _h, v in read_topic(settings, topics.REFERRALS)
                    if k == referral_id]

        events = wait_for(lambda: len(ours()) >= 7 and ours(), timeout=30,
                          what="seven referral events on the topic")
        history = status(desk, referral_id)["history"]
    finally:
        worker.stop()
        desk.runtime.db.dispose()
    assert [(e["type"], e["payload"].get("to_status")) for e in events] == [
        ("referral.received", None), ("referral.status_changed", "received"),
        ("referral.triaged", None), ("referral.status_changed", "triaged"),
        ("referral.accepted", None), ("referral.status_changed", "accepted"),
        ("referral.status_changed", "scheduled")]
    assert len({e["id"] for e in events}) == 7
    accepted = events[4]["payload"]
    assert [s["discipline"] for s in accepted["pathway"]] == [
        "pain_medicine", "physical_therapy", "psychology"]
    assert accepted["due_by"] and accepted["patient_id"] == patient_id  # PainCare's own
    assert events[0]["version"] == 2 and "patient" not in events[0]["payload"]
    assert events[6]["causation_id"] == booked.id
    assert events[6]["correlation_id"] == booked.correlation_id
    assert [h["to_status"] for h in history] == ["received", "triaged", "accepted",
                                                 "scheduled"]
