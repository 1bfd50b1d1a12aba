"""Through the real broker: a provider joins the patient's care team when their
appointment.booked arrives, and their signed note goes out as note.signed."""

from datetime import UTC, datetime, timedelta

import pytest

from services.notes.app import create_app
from services.notes.wiring import build_runtime
from services.notes.worker import subscriptions
from shared import topics
from shared.events import new_event
from shared.kafka import make_producer
from shared.worker import Worker
from tests.support.clinic import bearer, read_topic, wait_for

pytestmark = pytest.mark.kafka

TEXT = "Allodynia over the left T5 dermatome, light touch provokes 8/10 pain."


def test_a_provider_joins_the_care_team_when_their_booking_arrives_through_the_broker(
        settings_for, topic_prefix, kafka_bootstrap):
    settings = settings_for("notes", topic_prefix=topic_prefix, kafka_enabled=True,
                            kafka_bootstrap=kafka_bootstrap)
    runtime = build_runtime(settings)
    client = create_app(runtime=runtime).test_client()
    physio = bearer(settings, "specialist", "pt-7", discipline="physical_therapy",
                    provider_id="prov-pt-7")
    timeline = "/patients/pat-kafka/timeline"
    assert client.get(timeline, headers=physio).status_code == 403

    start = datetime(2026, 12, 2, 10, tzinfo=UTC)
    booked = new_event("appointment.booked", {
        "appointment_id": "apt-1", "patient_id": "pat-kafka", "provider_id": "prov-pt-7",
        "discipline": "physical_therapy", "start": start.isoformat(),
        "end": (start + timedelta(minutes=45)).isoformat(), "referral_id": "ref-kafka"},
        producer="scheduling")
    producer = make_producer(settings)
    try:
        producer.send(settings.topic(topics.SCHEDULING), key=b"pat-kafka",
                      value=booked.to_bytes()).get(timeout=30)
    finally:
        producer.close()

    with Worker(runtime, subscriptions(runtime)):
        wait_for(lambda: client.get(timeline, headers=physio).status_code == 200,
                 timeout=60, what="the physiotherapist to join the care team")
        team = client.get("/patients/pat-kafka/care-team", headers=physio).get_json()
        assert [(m["member_id"], m["source"]) for m in team] == [
            ("prov-pt-7", "appointment.booked")]

        made = client.post("/patients/pat-kafka/notes", headers=physio, json={
            "kind": "treatment_record", "sections": {"treatment": TEXT},
            "measures": {"nrs": {"current": 5}},
            "treatment": {"physical_therapy": {"exercises": [
                {"name": "Graded motor imagery", "sets": 3, "reps": 10}]}}})
        assert made.status_code == 201, made.get_json()
        assert client.post(f"/notes/{made.get_json()['id']}/sign",
                           headers=physio).status_code == 200

        def signed_on_topic():
            return [v for _k, _h, v in read_topic(settings, topics.NOTES)
                    if isinstance(v, dict) and v.get("type") == "note.signed"]

        [event] = wait_for(signed_on_topic, timeout=30, what="note.signed on notes.events")
    assert event["payload"]["note_id"] == made.get_json()["id"]
    assert event["payload"]["measures"] == {"nrs_current": 5.0}
    assert TEXT not in str(event)
    with runtime.db.transaction() as s:
        handled = s.execute(runtime.tables.inbox.select()).mappings().all()
    assert [(h["consumer"], h["event_id"]) for h in handled] == [
        ("notes.care_team", booked.id)]
    runtime.db.dispose()
