"""The walking skeleton: every service runs as in production (gunicorn web, worker
process), and an event goes from one service's outbox through the real broker into
another service's consumer."""

import pytest
import requests

from shared.config import Settings
from tests.support.clinic import bearer, wait_for
from tests.support.processes import running_services

pytestmark = pytest.mark.kafka


@pytest.mark.journey(short="postgres")
def test_a_ping_from_referrals_reaches_every_other_service(new_database_url, topic_prefix,
                                                           tmp_path):
    # the four named, never the ones that happen to exist (a missing one fails the start)
    services = ["referrals", "scheduling", "notes", "notifier"]
    admin = bearer(Settings.for_service("tests"), "admin")
    with running_services(services, database_url=new_database_url, topic_prefix=topic_prefix,
                          log_dir=tmp_path / "logs") as clinic:
        for procs in clinic.values():
            assert requests.get(procs.url + "/healthz", timeout=5).json()["status"] == "alive"
            assert b"paincare_http_requests_total" in requests.get(procs.url + "/metrics").content
        sent = requests.post(clinic["referrals"].url + "/ops/pings", json={"message": "hello"},
                             headers=admin, timeout=10)
        assert sent.status_code == 202, sent.text
        event_id = sent.json()["event_id"]
        for service in services:
            url = f"{clinic[service].url}/ops/handled/{event_id}"
            handled = wait_for(
                lambda url=url: requests.get(url, headers=admin, timeout=5).status_code == 200
                and requests.get(url, headers=admin, timeout=5).json(),
                timeout=60, what=f"{service} to handle the ping")
            assert handled[0]["event_type"] == "system.ping"
        bad = requests.post(clinic["referrals"].url + "/ops/pings", json={"message": 5},
                            headers=admin, timeout=10)
        assert bad.status_code == 422
        assert bad.headers["Content-Type"] == "application/problem+json"
        assert "message" in bad.json()["errors"]
        assert requests.post(clinic["referrals"].url + "/ops/pings", json={}).status_code == 401
