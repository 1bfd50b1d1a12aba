"""A realistic small clinic for the demo loader, created through the HTTP API: eight
providers over the four disciplines working Monday to Friday, and the rooms they use.

`seed(base_url, headers)` is safe to run twice: what exists (by name) is kept.
"""

from __future__ import annotations

from typing import Any

import requests

WEEKDAYS = range(5)

PROVIDERS: list[dict[str, Any]] = [
    {"name": "Dr Amara Okafor", "discipline": "pain_medicine",
     "visit_types": ["initial_assessment", "follow_up", "nerve_block", "medication_review"],
     "email": "a.okafor@paincare.test", "hours": [("08:30", "12:30"), ("13:30", "17:00")]},
    {"name": "Dr Tomasz Nowak", "discipline": "pain_medicine",
     "visit_types": ["initial_assessment", "follow_up", "medication_review"],
     "email": "t.nowak@paincare.test", "hours": [("09:00", "13:00"), ("14:00", "18:00")]},
    {"name": "Sam Reid", "discipline": "physical_therapy",
     "visit_types": ["pt_assessment", "graded_exercise", "desensitisation"],
     "email": "s.reid@paincare.test", "hours": [("08:00", "12:00"), ("12:45", "16:30")]},
    {"name": "Priya Shah", "discipline": "physical_therapy",
     "visit_types": ["pt_assessment", "graded_exercise", "mirror_therapy"],
     "email": "p.shah@paincare.test", "hours": [("09:30", "13:00"), ("13:30", "18:00")]},
    {"name": "Dr Ingrid Lind", "discipline": "psychology",
     "visit_types": ["psych_assessment", "cbt", "act"],
     "email": "i.lind@paincare.test", "hours": [("09:00", "12:30"), ("13:30", "17:00")]},
    {"name": "Dr Kwame Mensah", "discipline": "psychology",
     "visit_types": ["psych_assessment", "cbt", "pain_coping_group"],
     "email": "k.mensah@paincare.test", "hours": [("10:00", "13:00"), ("14:00", "19:00")]},
    {"name": "Mei Chen", "discipline": "acupuncture",
     "visit_types": ["acupuncture_assessment", "acupuncture"],
     "email": "m.chen@paincare.test", "hours": [("09:00", "13:00"), ("14:00", "17:00")]},
    {"name": "Luca Romano", "discipline": "acupuncture",
     "visit_types": ["acupuncture_assessment", "acupuncture", "electroacupuncture"],
     "email": "l.romano@paincare.test", "hours": [("08:30", "12:30"), ("13:00", "16:00")]},
]

ROOMS: list[dict[str, Any]] = [
    {"name": "Consulting room 1", "kind": "consulting_room", "fit_for": ["pain_medicine"]},
    {"name": "Consulting room 2", "kind": "consulting_room",
     "fit_for": ["pain_medicine", "psychology"]},
    {"name": "Procedure room", "kind": "consulting_room", "fit_for": ["nerve_block"]},
    {"name": "PT gym", "kind": "pt_gym", "fit_for": ["physical_therapy"]},
    {"name": "Acupuncture room", "kind": "acupuncture_room", "fit_for": ["acupuncture"]},
    {"name": "Psychology room", "kind": "psychology_room", "fit_for": ["psychology"]},
]


def _ok(resp: requests.Response, *codes: int) -> dict:
    if resp.status_code not in codes:
        raise RuntimeError(f"{resp.request.method} {resp.url} -> {resp.status_code}: "
                           f"{resp.text[:300]}")
    return resp.json() if resp.content else {}


def seed(base_url: str, headers: dict, *, providers: list[dict[str, Any]] | None = None,
         rooms: list[dict[str, Any]] | None = None, weekdays: range = WEEKDAYS,
         timeout: float = 10.0) -> dict:
    """Create the demo clinic (admin headers), or another staff list (the simulator's
    round-the-clock clinic); returns ids by name."""
    base = base_url.rstrip("/")
    http = requests.Session()
    http.headers.update(headers)
    existing = {p["name"]: p["id"] for p in _ok(http.get(
        f"{base}/providers", params={"include_inactive": "true"}, timeout=timeout), 200)}
    ids: dict[str, str] = {}
    for spec in providers or PROVIDERS:
        body = {k: spec[k] for k in ("name", "discipline", "visit_types", "email")}
        if spec["name"] in existing:
            ids[spec["name"]] = existing[spec["name"]]
        else:
            ids[spec["name"]] = _ok(http.post(f"{base}/providers", json=body,
                                              timeout=timeout), 201)["id"]
        blocks = [{"weekday": d, "start": start, "end": end}
                  for d in weekdays for start, end in spec["hours"]]
        _ok(http.put(f"{base}/providers/{ids[spec['name']]}/template",
                     json={"blocks": blocks}, timeout=timeout), 200)
    room_ids = {r["name"]: r["id"]
                for r in _ok(http.get(f"{base}/rooms", timeout=timeout), 200)}
    for spec in rooms or ROOMS:
        if spec["name"] not in room_ids:
            room_ids[spec["name"]] = _ok(http.post(f"{base}/rooms", json=spec,
                                                   timeout=timeout), 201)["id"]
    return {"providers": ids, "rooms": room_ids}
