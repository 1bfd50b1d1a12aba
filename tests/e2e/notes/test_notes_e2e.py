"""The notes service as in production (gunicorn web, worker process) on the real broker:
a booking puts the provider on the care team, their signed note goes out as note.signed,
and the note's words are in neither the logs nor the topic."""

from datetime import UTC, datetime, timedelta

import pytest
import requests

from shared import topics
from shared.config import Settings
from shared.events import new_event
from shared.kafka import make_producer
from tests.support.clinic import bearer, read_topic, wait_for
from tests.support.processes import running_services

pytestmark = pytest.mark.kafka

TEXT = "Hyperalgesia to cold over the left foot; fears losing her job qp4w"


@pytest.mark.journey(short="postgres")
def test_a_booked_provider_writes_and_signs_a_note_end_to_end(new_database_url, topic_prefix,
                                                              kafka_bootstrap, tmp_path):
    settings = Settings.for_service("tests", topic_prefix=topic_prefix,
                                    kafka_bootstrap=kafka_bootstrap, database_url="sqlite://")
    physio = bearer(settings, "specialist", "pt-9", discipline="physical_therapy",
                    provider_id="prov-pt-9")
    with running_services(["notes"], database_url=new_database_url, topic_prefix=topic_prefix,
                          log_dir=tmp_path / "logs", web_workers=1) as clinic:
        url = clinic["notes"].url
        assert requests.get(f"{url}/patients/pat-e2e/timeline", headers=physio,
                            timeout=10).status_code == 403
        start = datetime(2026, 12, 3, 10, tzinfo=UTC)
        booked = new_event("appointment.booked", {
            "appointment_id": "apt-e2e", "patient_id": "pat-e2e", "provider_id": "prov-pt-9",
            "discipline": "physical_therapy", "start": start.isoformat(),
            "end": (start + timedelta(minutes=45)).isoformat()}, producer="scheduling")
        producer = make_producer(settings)
        try:
            producer.send(settings.topic(topics.SCHEDULING), key=b"pat-e2e",
                          value=booked.to_bytes()).get(timeout=30)
        finally:
            producer.close()
        wait_for(lambda: requests.get(f"{url}/patients/pat-e2e/timeline", headers=physio,
                                      timeout=10).status_code == 200,
                 timeout=60, what="the physiotherapist to join the care team")
        made = requests.post(f"{url}/patients/pat-e2e/notes", headers=physio, timeout=10, json={
            "kind": "progress", "sections": {"subjective": TEXT},
            "measures": {"nrs": {"current": 6}, "pseq": 31}})
        assert made.status_code == 201, made.text
        note_id = made.json()["id"]
        assert requests.post(f"{url}/notes/{note_id}/sign", headers=physio,
                             timeout=10).status_code == 200

        def signed():
            return [v for _k, _h, v in read_topic(settings, topics.NOTES)
                    if isinstance(v, dict) and v.get("type") == "note.signed"]

        [event] = wait_for(signed, timeout=60, what="note.signed on the topic")
        assert event["payload"]["note_id"] == note_id
        assert event["payload"]["measures"] == {"nrs_current": 6.0, "pseq": 31.0}
        assert TEXT not in str(event)
    logs = "".join(p.read_text(errors="replace") for p in (tmp_path / "logs").glob("*.log"))
    assert '"route": "/notes/<note_id>/sign"' in logs
    assert "qp4w" not in logs
