"""Demo care notes for a freshly started clinic, posted through the public API (so they
pass the same validation, signing, audit and events as any other).

One fictional patient with painful diabetic neuropathy seen by all four disciplines over
six weeks: the pain-medicine intake, psychology, physiotherapy and acupuncture, then a
pain-medicine review where average pain has fallen by more than 30 % and self-efficacy
risen by 7 or more, and an addendum correcting a dose. Loading it twice adds nothing
(the timeline is checked first).

`headers_for(discipline)` gives the bearer headers of a specialist of that discipline who
is on the patient's care team.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

DEMO_PATIENT = "demo-pat-001"


def _visits(first: datetime) -> list[tuple[str, dict[str, Any]]]:
    def at(days: int, hour: int) -> str:
        return (first + timedelta(days=days, hours=hour)).isoformat()

    return [
        ("pain_medicine", {
            "kind": "intake_assessment", "encounter_at": at(0, 9),
            "sections": {
                "presenting_complaint": "Burning and electric-shock pain in both feet for "
                                        "14 months, worse at night.",
                "history": "Type 2 diabetes for 12 years. Pregabalin 300 mg/day with "
                           "dizziness and partial relief.",
                "examination": "Reduced pinprick and vibration sense to mid-shin "
                               "bilaterally; allodynia on the dorsum of both feet.",
                "impression": "Painful diabetic peripheral neuropathy, DN4 positive.",
                "plan": "Reduce pregabalin to 150 mg/day; start duloxetine 30 mg; refer to "
                        "psychology, physiotherapy and acupuncture."},
            "measures": {"nrs": {"current": 7, "average": 7, "worst": 9}, "dn4": 6,
                         "paindetect": 22,
                         "phq9": {"items": [2, 2, 2, 1, 1, 1, 1, 1, 0]}, "gad7": 9,
                         "bpi": {"severity": 6.75, "interference": 7.1}, "pseq": 24},
            "treatment": {"pain_medicine": {"medications": [
                {"name": "pregabalin", "dose": "75 mg twice daily", "change": "decrease"},
                {"name": "duloxetine", "dose": "30 mg once daily", "change": "start"}]}},
        }),
        ("psychology", {
            "kind": "intake_assessment", "encounter_at": at(0, 10),
            "sections": {
                "history": "Low mood since stopping work; avoids walking for fear of "
                           "making the pain worse.",
                "impression": "Moderate depressive symptoms with fear-avoidance.",
                "plan": "Six sessions of CBT for pain, starting with pacing."},
            "measures": {"phq9": {"items": [2, 2, 2, 1, 1, 1, 1, 1, 0]}, "gad7": 9,
                         "pseq": 24},
            "treatment": {"psychology": {"cbt_module": "psychoeducation",
                                         "session_number": 1}},
        }),
        ("physical_therapy", {
            "kind": "treatment_record", "encounter_at": at(0, 11),
            "sections": {"treatment": "Graded activity plan and balance work.",
                         "response": "Managed the programme with pain at 6/10.",
                         "plan": "Daily home programme; review in two weeks."},
            "measures": {"nrs": {"current": 6}},
            "treatment": {"physical_therapy": {"exercises": [
                {"name": "Sit to stand", "sets": 3, "reps": 10},
                {"name": "Tandem stance", "sets": 3, "hold_seconds": 30},
                {"name": "Calf raises", "sets": 2, "reps": 12}]}},
        }),
        ("acupuncture", {
            "kind": "treatment_record", "encounter_at": at(7, 14),
            "sections": {"treatment": "Manual acupuncture, 20 minutes retention.",
                         "response": "Feet felt warmer; no adverse effects."},
            "measures": {"nrs": {"current": 6}},
            "treatment": {"acupuncture": {"points": ["LI4", "ST36", "SP6", "LR3", "KI3"],
                                          "needle_count": 10, "retention_minutes": 20}},
        }),
        ("pain_medicine", {
            "kind": "progress", "encounter_at": at(42, 9),
            "sections": {"subjective": "Sleeping better; burning now mostly in the evening.",
                         "objective": "Walks without a stick; allodynia reduced.",
                         "assessment": "Meaningful improvement on duloxetine with CBT and "
                                       "graded activity.",
                         "plan": "Increase duloxetine to 60 mg; continue programmes."},
            "measures": {"nrs": {"current": 4, "average": 4, "worst": 7},
                         "phq9": {"items": [1, 1, 1, 1, 1, 0, 1, 0, 0]}, "gad7": 6,
                         "bpi": {"severity": 4.5, "interference": 4.3}, "pseq": 33},
        }),
    ]


def seed(base_url: str, headers_for: Callable[[str], dict],
         patient_id: str = DEMO_PATIENT, *, now: datetime | None = None) -> None:
    """Write and sign the demo notes for the patient, then one addendum."""
    base = base_url.rstrip("/")
    timeline = requests.get(f"{base}/patients/{patient_id}/timeline",
                            headers=headers_for("pain_medicine"), timeout=10)
    timeline.raise_for_status()
    if timeline.json()["total"]:
        return
    first = (now or datetime.now(UTC)).replace(minute=0, second=0, microsecond=0) \
        - timedelta(days=49)
    signed: list[str] = []
    for discipline, body in _visits(first):
        headers = headers_for(discipline)
        made = requests.post(f"{base}/patients/{patient_id}/notes", json=body,
                             headers=headers, timeout=10)
        made.raise_for_status()
        note_id = made.json()["id"]
        requests.post(f"{base}/notes/{note_id}/sign", headers=headers,
                      timeout=10).raise_for_status()
        signed.append(note_id)
    headers = headers_for("pain_medicine")
    addendum = requests.post(f"{base}/notes/{signed[0]}/addenda", headers=headers, timeout=10,
                             json={"text": "Correction: pregabalin was reduced to 75 mg "
                                           "twice daily (150 mg/day), as prescribed."})
    addendum.raise_for_status()
    requests.post(f"{base}/notes/{addendum.json()['id']}/sign", headers=headers,
                  timeout=10).raise_for_status()
