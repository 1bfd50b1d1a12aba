"""The dashboard's read model built through the real broker, on each database backend:
it reaches the figures the events imply, rebuilds from scratch to the same figures, and
parks what it cannot read in its dead-letter topic, from where an admin can replay it."""

from __future__ import annotations

import json
from zoneinfo import ZoneInfo

import pytest

from services.dashboard import domain
from services.dashboard.api import clinic_figures
from services.dashboard.app import create_app
from services.dashboard.wiring import build_runtime
from services.dashboard.worker import ReadModelConsumer
from shared import topics
from shared.events import InvalidEvent, parse_event
from shared.worker import Worker
from tests.support.clinic import bearer, read_topic, wait_for
from tests.unit.dashboard.stories import NOW, a_clinic_week, publish

pytestmark = pytest.mark.kafka

BAD = json.dumps({"id": "00000000-0000-4000-8000-000000000000", "type": "referral.received",
                  "version": 1, "occurred_at": "2026-11-25T10:00:00+00:00",
                  "producer": "referrals", "correlation_id": "c", "payload": {}}).encode()


def figures_from_topics(settings) -> dict:  # type: ignore[no-untyped-def]
    """The same rules folded over every event on the topics, with no database at all."""
    snap = domain.Snapshot()
    for topic in (topics.REFERRALS, topics.SCHEDULING, topics.NOTIFICATIONS):
        for _key, _headers, value in read_topic(settings, topic):
            try:
                env = parse_event(json.dumps(value))
            except InvalidEvent:
                continue
            snap.apply(env.type, env.payload, env.occurred_at)
    return domain.clinic_figures(snap, now=NOW, tz=ZoneInfo(settings.clinic_timezone),
                                 weekly_hours=37.5)


def test_the_read_model_rebuilds_from_the_topics_to_the_same_figures(
        settings_for, topic_prefix, kafka_bootstrap):
    settings = settings_for("dashboard", topic_prefix=topic_prefix, kafka_enabled=True,
                            kafka_bootstrap=kafka_bootstrap)
    runtime = build_runtime(settings)
    app = create_app(runtime=runtime)
    client = app.test_client()
    admin = bearer(settings, "admin")
    publish(settings, a_clinic_week(), raw=[(topics.REFERRALS, BAD)])
    expected = figures_from_topics(settings)
    assert expected["referrals"]["total"] == 3
    assert expected["referrals"]["past_target"] == 1
    # pm1's capacity (template minus leave) came through the topic; pt1's did not
    by_provider = {p["provider_id"]: p for p in expected["utilisation"]["by_provider"]}
    assert by_provider["pm1"]["capacity_known"] and by_provider["pm1"]["capacity_hours"] == 32
    assert expected["utilisation"]["capacity_unknown"] == 1

    def built() -> dict:
        got = clinic_figures(runtime, now=NOW)
        got.pop("read_model_generation")
        return got

    def dead_letters() -> dict:
        resp = client.get("/api/platform", headers=admin)
        assert resp.status_code == 200, resp.text
        return resp.get_json()["kafka"]["dead_letters"]["dashboard"]

    with Worker(runtime, [], relay=False, extra_loops=[ReadModelConsumer(runtime).run]):
        wait_for(lambda: built() == expected, timeout=60, what="the read model")
        letters = wait_for(lambda: dead_letters()["count"] == 1 and dead_letters(),
                           what="the bad event in the dashboard's dead-letter topic")
        assert "payload invalid" in letters["latest"][0]["reason"]
        assert letters["latest"][0]["source_topic"] == settings.topic(topics.REFERRALS)

        rebuilt = client.post("/api/read-model/rebuild", headers=admin)
        assert rebuilt.status_code == 202, rebuilt.text
        assert rebuilt.get_json()["generation"] == 2
        assert set(rebuilt.get_json()["records"].values()) == {0}
        wait_for(lambda: client.get("/api/read-model", headers=admin).get_json()
                 ["records"]["referrals"] == 3, timeout=60, what="the rebuild")
        wait_for(lambda: client.get("/api/read-model", headers=admin).get_json()
                 ["records"]["provider_capacity"] == 1, timeout=30, what="rebuilt capacity")
        wait_for(lambda: built() == expected, timeout=30, what="the rebuilt figures")
        # from scratch means every message again, the bad one too
        wait_for(lambda: dead_letters()["count"] == 2, what="the bad event parked again")

        groups = client.get("/api/platform", headers=admin).get_json()["kafka"]["groups"]
        assert [g["group"] for g in groups if g["service"] == "dashboard"] == [
            "dashboard.readmodel-g2"]

        replayed = client.post("/api/dead-letters/dashboard/replay", headers=admin)
        assert replayed.get_json() == {"service": "dashboard", "replayed": 2}
        # back on referrals.events, still invalid, so parked again: it went round the pipe
        wait_for(lambda: dead_letters()["count"] == 4, what="the replayed letters")

    assert client.get("/api/clinic", headers=admin).get_json()["referrals"]["total"] == 3


def test_only_admins_see_the_dashboard(settings_for):
    settings = settings_for("dashboard")
    client = create_app(settings).test_client()
    assert client.get("/").status_code == 200
    assert b"ops dashboard" in client.get("/").data
    assert client.get("/static/dashboard/app.js").status_code == 200
    for path in ("/api/clinic", "/api/platform", "/api/read-model"):
        assert client.get(path).status_code == 401
        for role in ("scheduler", "service"):
            assert client.get(path, headers=bearer(settings, role)).status_code == 403
    assert client.get("/api/clinic", headers=bearer(settings, "admin")).status_code == 200
    assert client.post("/api/read-model/rebuild",
                       headers=bearer(settings, "scheduler")).status_code == 403
    nowhere = client.post("/api/dead-letters/nobody/replay", headers=bearer(settings, "admin"))
    assert nowhere.status_code == 404
    assert nowhere.headers["Content-Type"] == "application/problem+json"
