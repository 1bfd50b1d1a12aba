"""Safety alerts in the dashboard's read model: how many wait for an acknowledgement and
how long the oldest has waited, from notes' events alone, with no clinical detail."""

from __future__ import annotations

import json
from datetime import timedelta
from zoneinfo import ZoneInfo

from services.dashboard.domain import Snapshot, clinic_figures
from tests.unit.dashboard.stories import (
    NOW,
    alert_acknowledged,
    alert_closed,
    alert_escalated,
    alert_raised,
)

MIN = timedelta(minutes=1)


def fold(events) -> Snapshot:
    snap = Snapshot()
    for env in events:
        snap.apply(env.type, env.payload, env.occurred_at)
    return snap


def alerts(events, now=NOW) -> dict:
    return clinic_figures(fold(events), now=now, tz=ZoneInfo("Europe/London"),
                          weekly_hours=10)["safety_alerts"]


def test_open_alerts_and_the_age_of_the_oldest_across_the_life_of_each():
    events = [
        alert_raised("old", at=NOW - 95 * MIN),                  # v2, waiting 95 minutes
        alert_escalated("old", 1, raised_at=NOW - 95 * MIN, at=NOW - 65 * MIN),
        alert_escalated("old", 2, raised_at=NOW - 95 * MIN, at=NOW - 35 * MIN),
        alert_raised("v1", at=NOW - 20 * MIN, version=1),        # before the v2 schema
        alert_raised("done", at=NOW - 300 * MIN),
        alert_acknowledged("done", at=NOW - 280 * MIN),
        alert_raised("closed", at=NOW - 500 * MIN),
        alert_acknowledged("closed", at=NOW - 490 * MIN),
        alert_closed("closed", at=NOW - 400 * MIN),
    ]
    assert alerts(events) == {
        "open": 2, "open_escalated": 1,
        "oldest_open_raised_at": (NOW - 95 * MIN).isoformat(), "oldest_open_minutes": 95,
        "acknowledged_not_closed": 1, "closed": 1}
    # once the oldest is acknowledged the next oldest is the one waiting
    later = alerts([*events, alert_acknowledged("old", at=NOW - MIN)])
    assert later["open"] == 1
    assert later["oldest_open_minutes"] == 20
    assert later["open_escalated"] == 0


def test_raising_again_at_a_higher_severity_keeps_the_first_raise_time():
    events = [alert_raised("a", at=NOW - 40 * MIN, severity=1),
              alert_raised("a", at=NOW - 10 * MIN, severity=3)]
    assert alerts(events)["oldest_open_minutes"] == 40
    assert alerts(events)["open"] == 1


def test_a_replayed_earlier_step_never_reopens_an_alert():
    raised = alert_raised("a", at=NOW - 60 * MIN)
    acked = alert_acknowledged("a", at=NOW - 30 * MIN)
    closed = alert_closed("a", at=NOW - 10 * MIN)
    escalated = alert_escalated("a", 1, raised_at=NOW - 60 * MIN, at=NOW - 29 * MIN)
    f = alerts([raised, acked, closed, raised, escalated, acked])
    assert (f["open"], f["acknowledged_not_closed"], f["closed"]) == (0, 0, 1)
    # a closing seen before its raise (a consumer joining late) still counts as closed
    assert alerts([closed, raised])["closed"] == 1
    assert alerts([closed, raised])["open"] == 0


def test_no_alert_reads_as_none_waiting():
    assert alerts([]) == {"open": 0, "open_escalated": 0, "oldest_open_raised_at": None,
                          "oldest_open_minutes": None, "acknowledged_not_closed": 0,
                          "closed": 0}


def test_the_read_model_keeps_no_patient_note_or_severity():
    snap = fold([alert_raised("a", at=NOW - 5 * MIN, severity=3),
                 alert_acknowledged("a", at=NOW)])
    kept = json.dumps({k: str(v) for k, v in vars(snap.safety_alerts["a"]).items()})
    assert "p-a" not in kept and "n-a" not in kept and "psy1" not in kept
    assert "risk_assessment" not in kept
    assert not hasattr(snap.safety_alerts["a"], "severity")
