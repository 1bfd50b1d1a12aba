"""The referrer hears back, through the real broker: a referring system's R4 Subscription
(rest-hook on its own Tasks); each change of its referral's Task goes out from the
gateway as fhir.task_changed and the notifier POSTs it to the system's endpoint, in
order. A second system's Subscription hears nothing of it."""

from __future__ import annotations

from typing import Any

import pytest

from services.notifier.wiring import build_runtime as notifier_runtime
from services.notifier.worker import deliverer, subscriptions
from shared.worker import Worker
from tests.integration.fhir.conftest import Gateway
from tests.support.clinic import bearer, wait_for
from tests.support.fhir import RestHookEndpoint as Endpoint
from tests.support.fhir import referral_bundle, subscription
from tests.support.fhir_validator import assert_valid

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(900)]
FHIR_JSON = "application/fhir+json"


def _subscribe(gw: Gateway, who: dict[str, str], body: dict[str, Any]) -> Any:
    return gw.fhir.post("/fhir/Subscription", json=body,
                        headers={**who, "Content-Type": FHIR_JSON})


def _subscription(endpoint: str, criteria: str = "Task?requester=gp-north") -> dict[str, Any]:
    return subscription(endpoint, criteria)


def test_a_referring_system_hears_of_each_change_of_its_task_in_order(
        kafka_gateway, new_database_url, settings_for, topic_prefix, kafka_bootstrap,
        fhir_validator):
    gw = kafka_gateway
    settings = gw.fhir_rt.settings
    north = bearer(settings, "referrer", "gp-north")
    south = bearer(settings, "referrer", "gp-south")
    endpoint, other = Endpoint(), Endpoint()
    try:
        made = _subscribe(gw, north, _subscription(endpoint.url("/fhir-hooks")))
        assert made.status_code == 201, made.get_json()
        sub = made.get_json()
        assert sub["status"] == "active"
        assert_valid(fhir_validator, sub)
        assert gw.get(f"/fhir/Subscription/{sub['id']}", north)["id"] == sub["id"]
        assert gw.fhir.get(f"/fhir/Subscription/{sub['id']}",
                           headers=south).status_code == 404
        assert _subscribe(gw, south, _subscription(
            other.url("/hooks"), "Task?requester=gp-south")).status_code == 201

        # what is not supported is refused, naming the element
        for change, element in (
                ({"criteria": "Observation?patient=1"}, "Subscription.criteria"),
                ({"criteria": "Task?requester=gp-south"}, "Subscription.criteria"),
                ({"channel": {"type": "email", "endpoint": "mailto:x@example.org"}},
                 "Subscription.channel.type"),
                ({"channel": {"type": "rest-hook", "endpoint": "ftp://example.org"}},
                 "Subscription.channel.endpoint"),
                ({"reason": ""}, "Subscription.reason")):
            bad = _subscribe(gw, north, {**_subscription(endpoint.url("/x")), **change})
            assert bad.status_code == 422, (change, bad.get_json())
            assert bad.get_json()["issue"][0]["expression"] == [element]
            assert_valid(fhir_validator, bad.get_json())
        # only a referring system subscribes
        assert _subscribe(gw, gw.scheduler, _subscription(
            endpoint.url("/x"))).status_code == 403

        notifier = notifier_runtime(settings_for(
            "notifier", database_url=new_database_url("notifier"), topic_prefix=topic_prefix,
            kafka_enabled=True, kafka_bootstrap=kafka_bootstrap,
            extra={"NOTIFIER_POLL_SECONDS": "0.1"}))
        notifier.create_schema()
        with Worker(gw.fhir_rt, []), \
                Worker(notifier, subscriptions(notifier),
                       extra_loops=[deliverer(notifier).run]):
            sent = gw.fhir.post("/fhir", json=referral_bundle(),
                                headers={**north, "Content-Type": FHIR_JSON})
            assert sent.status_code == 201, sent.get_json()
            task_id = sent.get_json()["id"]
            gw.sync()
            triage = {"priority": "urgent", "pathway": [
                {"discipline": "pain_medicine", "visit_minutes": 45, "sessions": 1,
                 "interval_days": 0}]}
            assert gw.referrals.post(f"/referrals/{task_id}/triage", json=triage,
                                     headers=gw.lead).status_code == 200
            gw.sync()
            assert gw.referrals.post(f"/referrals/{task_id}/accept", json={},
                                     headers=gw.lead).status_code == 200
            gw.sync()
            wait_for(lambda: len(endpoint.tasks()) >= 3, timeout=90,
                     what="three Task notifications at the referrer's endpoint")
        tasks = endpoint.tasks()
        assert [t["id"] for t in tasks] == [task_id] * 3
        assert [t["businessStatus"]["coding"][0]["code"] for t in tasks] == [
            "received", "triaged", "accepted"]
        assert [int(t["meta"]["versionId"]) for t in tasks] == sorted(
            int(t["meta"]["versionId"]) for t in tasks)
        path, headers, _ = endpoint.received[0]
        assert path == "/fhir-hooks"
        assert headers["Content-Type"] == FHIR_JSON and headers["Idempotency-Key"]
        assert other.received == []   # another system hears nothing of it
        assert_valid(fhir_validator, tasks[-1])
        notifier.db.dispose()
    finally:
        endpoint.close()
        other.close()
