"""Utilisation from real capacity, end to end through the broker (each backend): a
provider is registered in scheduling (capacity unknown: the fallback hours, marked), their
template is set and visits booked and leave taken through scheduling's API, its relay
publishes, and the dashboard's read model shows booked ÷ available hours change each
time; a rebuild from the topics gives the same figures."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.dashboard.api import clinic_figures
from services.dashboard.wiring import build_runtime
from services.dashboard.worker import ReadModelConsumer
from services.scheduling.app import create_app as scheduling_app
from shared.worker import Worker
from tests.integration.dashboard.test_read_model_from_topics import figures_from_topics
from tests.support.clinic import bearer, wait_for
from tests.unit.dashboard.stories import NOW

pytestmark = pytest.mark.kafka


def test_booking_against_a_template_moves_the_dashboards_utilisation(
        settings_for, new_database_url, topic_prefix, kafka_bootstrap):
    kafka = {"topic_prefix": topic_prefix, "kafka_enabled": True,
             "kafka_bootstrap": kafka_bootstrap}
    sched_settings = settings_for("scheduling", database_url=new_database_url("scheduling"),
                                  **kafka)
    dash_settings = settings_for("dashboard", database_url=new_database_url("dashboard"),
                                 **kafka)
    clock_now = datetime(2026, 11, 25, 8, tzinfo=UTC)  # Wed 08:00 in London, NOW's week
    sched = scheduling_app(sched_settings, clock=lambda: clock_now)
    sched_rt = sched.extensions["paincare.runtime"]
    client, admin = sched.test_client(), bearer(sched_settings, "admin")
    scheduler = bearer(sched_settings, "scheduler")
    dash_rt = build_runtime(dash_settings)
    dash_rt.create_schema()

    def mine() -> dict:
        figures = clinic_figures(dash_rt, now=NOW)["utilisation"]
        found = [p for p in figures["by_provider"] if p["provider_id"] == pid]
        return found[0] if found else {}

    made = client.post("/providers", json={"name": "Dr Okafor", "discipline": "pain_medicine"},
                       headers=admin)
    assert made.status_code == 201, made.get_json()
    pid = made.json["id"]
    with Worker(sched_rt, []), Worker(dash_rt, [], relay=False,
                                      extra_loops=[ReadModelConsumer(dash_rt).run]):
        unknown = wait_for(lambda: mine(), timeout=60, what="the provider on the dashboard")
        assert (unknown["capacity_known"], unknown["capacity_hours"]) == (False, 37.5)

        week = [{"weekday": d, "start": "09:00", "end": "17:00"} for d in range(5)]
        assert client.put(f"/providers/{pid}/template", json={"blocks": week},
                          headers=admin).status_code == 200
        known = wait_for(lambda: mine().get("capacity_known") and mine(), timeout=60,
                         what="the provider's capacity")
        assert (known["capacity_hours"], known["utilisation"]) == (40.0, 0.0)

        for start, patient in (("2026-11-25T10:00:00+00:00", "p-1"),
                               ("2026-11-27T14:00:00+00:00", "p-2")):
            booked = client.post("/appointments", json={
                "patient_id": patient, "provider_id": pid, "start": start, "minutes": 90},
                headers=scheduler)
            assert booked.status_code == 201, booked.get_json()
        wait_for(lambda: mine()["utilisation"] == round(3 / 40, 4), timeout=60,
                 what="3 h booked of 40")

        leave = client.post("/exceptions", json={"provider_id": pid, "kind": "leave",
                                                 "first_day": "2026-11-26"}, headers=scheduler)
        assert leave.status_code == 201, leave.get_json()
        after = wait_for(lambda: mine()["capacity_hours"] == 32 and mine(), timeout=60,
                         what="Thursday's leave off the capacity")
        assert after["utilisation"] == round(3 / 32, 4)
        pm = next(d for d in clinic_figures(dash_rt, now=NOW)["utilisation"]["by_discipline"]
                  if d["discipline"] == "pain_medicine")
        assert (pm["capacity_hours"], pm["capacity_unknown"]) == (32.0, 0)

    built = clinic_figures(dash_rt, now=NOW)
    built.pop("read_model_generation")
    assert built == figures_from_topics(dash_settings)
    sched_rt.db.dispose()
    dash_rt.db.dispose()
