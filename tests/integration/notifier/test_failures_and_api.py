"""A channel that never recovers, through the real broker: the notification is marked
failed, notification.failed goes out, the original event is dead-lettered with the
reason, and a scheduler can retry it from the API once the gateway is fixed. The same
event delivered twice through the broker gives one message. The delivery log API."""

from __future__ import annotations

import pytest
from kafka import KafkaProducer

from services.notifier import db
from services.notifier.app import create_app
from services.notifier.delivery import wait_idle
from shared import metrics, topics
from shared.events import new_event
from tests.integration.notifier.clinic_events import (
    itinerary_booked,
    referral_received,
    visit,
)
from tests.integration.notifier.conftest import make_notifier
from tests.support.clinic import bearer, read_topic, wait_for


@pytest.fixture
def kafka_notifier(settings_for, smtp, sms, topic_prefix, kafka_bootstrap):
    n = make_notifier(settings_for, smtp, sms, topic_prefix=topic_prefix, kafka_enabled=True,
                      kafka_bootstrap=kafka_bootstrap)
    yield n
    n.consumer.close()
    n.runtime.db.dispose()


def _book_by_sms(notifier):
    notifier.receive(referral_received("pat-1", phone="+447700900001", channel="sms"),
                     topic=topics.REFERRALS)
    start = notifier.clock().replace(hour=10)
    booked = itinerary_booked("pat-1", [visit(0, start.replace(day=20))])
    notifier.receive(booked)
    return booked


@pytest.mark.kafka
def test_a_gateway_answering_500_forever_fails_dead_letters_and_loses_nothing(kafka_notifier):
    notifier = kafka_notifier
    notifier.sms.status = 500
    parked_before = metrics.DEAD_LETTERS.labels("notifier")._value.get()
    booked = _book_by_sms(notifier)
    deliverer = notifier.deliverer()
    for _ in range(3):  # NOTIFIER_MAX_ATTEMPTS=3, backoff 60 s, 120 s
        wait_idle(deliverer)
        notifier.clock.advance(seconds=200)
    (row,) = notifier.rows(event_id=booked.id, template="itinerary_booked")
    assert (row.status, row.attempts) == ("failed", 3)
    assert "answered 500" in row.last_error and row.dead_lettered_at is not None
    assert len(notifier.sms.received) == 3
    assert "notification.failed" in notifier.outbox_types()
    letters = wait_for(lambda: read_topic(notifier.runtime.settings,
                                          topics.dead_letter("notifier")), what="dead letter")
    assert len(letters) == 1
    key, headers, value = letters[0]
    assert value["id"] == booked.id and key == "pat-1"
    assert "500" in headers["dlq.reason"] and headers["dlq.attempts"] == "3"
    assert headers["dlq.notification_id"] == row.id
    assert headers["dlq.source.topic"] == notifier.runtime.settings.topic(topics.SCHEDULING)
    assert metrics.DEAD_LETTERS.labels("notifier")._value.get() == parked_before + 1
    deliverer.close()

    notifier.sms.status = 200  # the gateway is fixed; a scheduler retries from the API
    client = create_app(runtime=notifier.runtime).test_client()
    scheduler = bearer(notifier.runtime.settings, "scheduler")
    failed = client.get("/notifications?status=failed", headers=scheduler).get_json()
    assert [n["id"] for n in failed["items"]] == [row.id]
    retried = client.post(f"/notifications/{row.id}/retry", headers=scheduler)
    assert retried.status_code == 202 and retried.get_json()["status"] == "pending"
    again = client.post(f"/notifications/{row.id}/retry", headers=scheduler)
    assert again.status_code == 409 and again.mimetype == "application/problem+json"
    notifier.clock.advance(seconds=1)
    wait_idle(notifier.deliverer())
    assert notifier.rows(id=row.id)[0].status == "sent"
    assert len(notifier.sms.received) == 4


@pytest.mark.kafka
def test_the_same_event_delivered_twice_through_the_broker_sends_one_message(kafka_notifier):
    notifier = kafka_notifier
    settings = notifier.runtime.settings
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    referral = referral_received("pat-1", email="ana@example.org")
    booked = itinerary_booked("pat-1", [visit(0, notifier.clock().replace(day=20))])
    producer.send(settings.topic(topics.REFERRALS), key=b"pat-1",
                  value=referral.to_bytes()).get(10)

    def known() -> bool:  # the directory first: two topics have no common order
        notifier.consumer.poll_once(timeout_ms=300)
        with notifier.runtime.db.transaction() as s:
            return db.lookup(s, "pat-1") is not None

    wait_for(known, what="the patient's contact")
    for _ in range(2):
        producer.send(settings.topic(topics.SCHEDULING), key=b"pat-1",
                      value=booked.to_bytes()).get(10)
    producer.close()

    def drained() -> bool:
        notifier.consumer.poll_once(timeout_ms=300)
        return bool(notifier.rows(event_id=booked.id))

    wait_for(drained, what="the booking to be planned")
    notifier.consumer.poll_once(timeout_ms=1000)  # let the duplicate arrive
    wait_idle(notifier.deliverer())
    assert len(notifier.smtp.to("ana@example.org")) == 1


def test_the_delivery_log_filters_and_the_feed_and_preferences(notifier):
    notifier.receive(referral_received("pat-1", email="ana@example.org"), topic=topics.REFERRALS)
    notifier.receive(referral_received("pat-2", email="bo@example.org"), topic=topics.REFERRALS)
    wait_idle(notifier.deliverer())
    settings = notifier.runtime.settings
    client = create_app(runtime=notifier.runtime).test_client()
    scheduler = bearer(settings, "scheduler")
    log = client.get("/notifications?recipient_id=role:triage_lead&channel=email",
                     headers=scheduler).get_json()
    assert log["total"] == 2 and {n["status"] for n in log["items"]} == {"sent"}
    assert log["counts"] == {"sent": 4}  # two referrals, each by email and feed
    assert "body" not in log["items"][0]
    one_event = log["items"][0]["event_id"]
    assert client.get(f"/notifications?event_id={one_event}",
                      headers=scheduler).get_json()["total"] == 2
    assert client.get("/notifications?status=bogus", headers=scheduler).status_code == 422
    assert client.get("/notifications").status_code == 401
    specialist = bearer(settings, "specialist", discipline="psychology", provider_id="prov-9")
    assert client.get("/notifications", headers=specialist).status_code == 403
    feed = client.get("/feed/role:triage_lead", headers=scheduler).get_json()
    assert len(feed) == 2 and "waiting for triage" in feed[0]["body"]
    assert client.get("/feed/role:triage_lead", headers=specialist).status_code == 403
    assert client.get("/my/feed", headers=specialist).get_json() == []
    notifier.receive(new_event("note.signed", {
        "note_id": "note-1", "patient_id": "pat-1", "author_id": "prov-1",
        "discipline": "psychology", "kind": "progress", "signed_at": "2026-03-02T09:00:00Z",
        "notify": ["prov-1", "prov-9"]}, producer="notes"), topic=topics.NOTES)
    notifier.clock.advance(minutes=1)  # prov-9 is not in the directory: a grace first
    wait_idle(notifier.deliverer())
    (item,) = client.get("/my/feed", headers=specialist).get_json()
    assert item["event_type"] == "note.signed" and "note-1" in item["body"]
    assert client.get("/my/feed", headers=scheduler).get_json() == []  # role:schedulers

    changed = client.put("/recipients/pat-1/preferences", headers=scheduler,
                         json={"preferred_channel": "sms", "opted_out": ["email"],
                               "language": "fr"})
    assert changed.status_code == 200
    assert changed.get_json()["opted_out"] == ["email"]
    assert client.put("/recipients/nobody/preferences", headers=scheduler,
                      json={"language": "fr"}).status_code == 404
    # a later referral for the same patient keeps the preferences set over the API
    notifier.receive(referral_received("pat-1", email="ana@new.example.org"),
                     topic=topics.REFERRALS)
    got = client.get("/recipients/pat-1", headers=scheduler).get_json()
    assert (got["preferred_channel"], got["language"]) == ("sms", "fr")
