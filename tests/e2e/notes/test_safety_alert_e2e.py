"""A safety alert through the notes service as in production (gunicorn web, worker with
its escalation loop) on the real broker: item 9 scored 2 is on the topic as v2 with its
recipients, the worker escalates it while nobody acknowledges (an interval of about a
second here), and the acknowledgement reaches the topic with everyone who was told."""

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


@pytest.mark.journey(short="postgres")
def test_an_unacknowledged_alert_escalates_until_acknowledged(new_database_url, topic_prefix,
                                                              kafka_bootstrap, tmp_path):
    settings = Settings.for_service("tests", topic_prefix=topic_prefix,
                                    kafka_bootstrap=kafka_bootstrap, database_url="sqlite://")
    psych = bearer(settings, "specialist", "psy-9", discipline="psychology",
                   provider_id="prov-psy-9")
    env = {"SAFETY_ACK_MINUTES": "0.02", "SAFETY_ESCALATION_POLL_SECONDS": "0.2"}
    with running_services(["notes"], database_url=new_database_url, topic_prefix=topic_prefix,
                          log_dir=tmp_path / "logs", extra_env=env, web_workers=1) as clinic:
        url = clinic["notes"].url
        start = datetime(2026, 12, 3, 10, tzinfo=UTC)
        booked = new_event("appointment.booked", {
            "appointment_id": "apt-psy", "patient_id": "pat-risk", "provider_id": "prov-psy-9",
            "discipline": "psychology", "start": start.isoformat(),
            "end": (start + timedelta(minutes=50)).isoformat()}, producer="scheduling")
        producer = make_producer(settings)
        try:
            producer.send(settings.topic(topics.SCHEDULING), key=b"pat-risk",
                          value=booked.to_bytes()).get(timeout=30)
        finally:
            producer.close()
        wait_for(lambda: requests.get(f"{url}/patients/pat-risk/timeline", headers=psych,
                                      timeout=10).status_code == 200,
                 timeout=60, what="the psychologist to join the care team")
        made = requests.post(f"{url}/patients/pat-risk/notes", headers=psych, timeout=10, json={
            "kind": "intake_assessment", "sections": {"history": "Low mood."},
            "measures": {"phq9": {"items": [1, 1, 1, 1, 1, 1, 1, 1, 2]}}})
        assert made.status_code == 201, made.text
        alert_id = made.json()["safety_alert_id"]

        def of(kind: str) -> list[dict]:
            return [v["payload"] for _k, _h, v in read_topic(settings, topics.NOTES)
                    if isinstance(v, dict) and v.get("type") == kind]

        [alert] = wait_for(lambda: of("patient.safety_alert"), timeout=60,
                           what="the alert on the topic")
        assert (alert["alert_id"], alert["severity"]) == (alert_id, 2)
        assert {"recipient_id": "prov-psy-9", "role": "psychologist"} in alert["recipients"]
        first = wait_for(lambda: of("patient.safety_alert_escalated"), timeout=60,
                         what="the worker's escalation")[0]
        assert first["escalation"] == 1
        assert first["recipients"][0] == {"recipient_id": "role:clinical_lead",
                                          "role": "clinical_lead"}
        acked = requests.post(f"{url}/safety-alerts/{alert_id}/acknowledge", headers=psych,
                              timeout=10, json={"action": "crisis_plan"})
        assert acked.status_code == 200, acked.text
        escalations = acked.json()["escalations"]
        wait_for(lambda: of("patient.safety_alert_acknowledged"), timeout=60,
                 what="the acknowledgement on the topic")
        # one event per escalation counted, and none after the acknowledgement
        sent = of("patient.safety_alert_escalated")
        assert [e["escalation"] for e in sent] == list(range(1, escalations + 1))
