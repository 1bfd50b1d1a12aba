"""Through the real broker: a referral.accepted on referrals.events reaches scheduling's
worker, which proposes and holds an itinerary by itself and publishes itinerary.proposed
on scheduling.events (its own topics for this test; SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from kafka import KafkaProducer

from services.scheduling.app import create_app
from services.scheduling.itineraries.handlers import subscription
from shared import topics
from shared.events import new_event
from shared.worker import Worker
from tests.support.clinic import bearer, read_topic, wait_for

pytestmark = pytest.mark.kafka


def test_an_accepted_referral_on_the_broker_comes_back_as_a_proposed_itinerary(
        settings_for, topic_prefix, kafka_bootstrap):
    settings = settings_for("scheduling", topic_prefix=topic_prefix, kafka_enabled=True,
                            kafka_bootstrap=kafka_bootstrap)
    app = create_app(settings)
    runtime = app.extensions["paincare.runtime"]
    client, admin = app.test_client(), bearer(settings, "admin")
    ids = {}
    for discipline in ("pain_medicine", "psychology"):
        made = client.post("/providers", json={"name": f"Dr {discipline}",
                                               "discipline": discipline}, headers=admin)
        ids[discipline] = made.json["id"]
        week = [{"weekday": d, "start": "09:00", "end": "17:00"} for d in range(5)]
        assert client.put(f"/providers/{made.json['id']}/template", json={"blocks": week},
                          headers=admin).status_code == 200
    due = (datetime.now(UTC) + timedelta(days=14)).date().isoformat()
    accepted = new_event("referral.accepted", {
        "referral_id": "ref-k1", "patient_id": "pat-k1", "priority": "urgent",
        "target_days": 14, "due_by": due, "accepted_by": "lead-1", "pathway": [
            {"discipline": "pain_medicine", "visit_minutes": 60, "sessions": 1,
             "interval_days": 0},
            {"discipline": "psychology", "visit_minutes": 45, "sessions": 1,
             "interval_days": 0, "after": ["pain_medicine"]}]}, producer="referrals")
    with Worker(runtime, [subscription(runtime)]):
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        producer.send(settings.topic(topics.REFERRALS), key=b"ref-k1",
                      value=accepted.to_bytes()).get(10)
        producer.close()

        def proposed() -> list:
            letters = read_topic(settings, topics.dead_letter("scheduling"))
            assert not letters, f"dead-lettered: {[h for _k, h, _v in letters]}"
            return [v for _k, _h, v in read_topic(settings, topics.SCHEDULING)
                    if isinstance(v, dict) and v.get("type") == "itinerary.proposed"]

        found = wait_for(proposed, timeout=90, what="itinerary.proposed on the broker")
    runtime.db.dispose()
    event = found[0]
    assert event["causation_id"] == accepted.id
    assert event["correlation_id"] == accepted.correlation_id
    payload = event["payload"]
    assert (payload["referral_id"], payload["patient_id"]) == ("ref-k1", "pat-k1")
    first, second = payload["visits"]
    assert (first["discipline"], first["provider_id"]) == ("pain_medicine", ids["pain_medicine"])
    assert (second["discipline"], second["provider_id"]) == ("psychology", ids["psychology"])
    assert first["end"] <= second["start"]  # clinical order: pain medicine first
