"""The referrals service as in production (gunicorn web, worker process, real broker):
the demo referrals go in over HTTP, their events reach the topic, and a booking from
scheduling moves a referral on."""

from __future__ import annotations

import pytest
import requests
from kafka import KafkaProducer

from services.referrals.demo import DEMO_REFERRALS, seed
from shared import topics
from shared.config import Settings
from tests.integration.referrals.conftest import triage_body
from tests.integration.referrals.test_events import itinerary_booked
from tests.support.clinic import bearer, read_topic, wait_for
from tests.support.processes import running_services

pytestmark = pytest.mark.kafka


@pytest.mark.journey(short="sqlite")
def test_demo_referrals_are_triaged_accepted_and_booked_across_processes(
        new_database_url, topic_prefix, kafka_bootstrap, tmp_path):
    settings = Settings.for_service("tests", topic_prefix=topic_prefix,
                                    kafka_bootstrap=kafka_bootstrap)
    scheduler = bearer(settings, "scheduler", "sam-scheduler")
    lead = bearer(settings, "specialist", "dr-okafor", discipline="pain_medicine",
                  also=("triage_lead",))
    with running_services(["referrals"], database_url=new_database_url,
                          topic_prefix=topic_prefix, log_dir=tmp_path / "logs",
                          web_workers=1) as clinic:
        url = clinic["referrals"].url
        ids = seed(url, scheduler)
        assert len(set(ids)) == len(DEMO_REFERRALS)
        assert seed(url, scheduler) == ids  # loading the demo twice adds nothing
        listed = requests.get(f"{url}/referrals", headers=scheduler, timeout=10).json()
        assert listed["total"] == len(DEMO_REFERRALS)

        first = ids[0]
        assert requests.post(f"{url}/referrals/{first}/triage", json=triage_body(),
                             headers=lead, timeout=10).status_code == 200
        assert requests.post(f"{url}/referrals/{first}/accept", json={}, headers=lead,
                             timeout=10).status_code == 200
        booked = itinerary_booked(first, patient_id="demo-pat-001")
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        producer.send(settings.topic(topics.SCHEDULING), key=b"demo-pat-001",
                      value=booked.to_bytes()).get(10)
        producer.close()
        wait_for(lambda: requests.get(f"{url}/referrals/{first}", headers=scheduler,
                                      timeout=10).json()["status"] == "scheduled",
                 timeout=60, what="the worker to schedule the referral")
        events = wait_for(
            lambda: (found := read_topic(settings, topics.REFERRALS))
            and len(found) >= 2 * len(ids) + 5 and found,
            timeout=30, what="every referral event on the topic")
    received = [v["payload"]["referral_id"] for _k, _h, v in events
                if v["type"] == "referral.received"]
    assert sorted(received) == sorted(ids)
    assert [v["payload"].get("to_status") or v["type"] for k, _h, v in events if k == first] \
        == ["referral.received", "received", "referral.triaged", "triaged",
            "referral.accepted", "accepted", "scheduled"]
