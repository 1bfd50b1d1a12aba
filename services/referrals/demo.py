"""Demo referrals for a freshly started clinic, posted through the public API (so they
go through validation, duplicate detection, the outbox and the events like any other).

Fictional patients and referrers; each POST carries an Idempotency-Key, so loading the
demo twice changes nothing.
"""

from __future__ import annotations

from typing import Any

import requests

_GP = {"name": "Dr Priya Patel", "organisation": "Elm Street Surgery",
       "contact": {"email": "p.patel@elm-surgery.example.org", "phone": "+44 161 496 0001"}}
_ONCOLOGY = {"name": "Dr Tomasz Nowak", "organisation": "Northfield Cancer Centre",
             "contact": {"email": "t.nowak@northfield.example.org"}}
_NEUROLOGY = {"name": "Dr Amara Okonkwo", "organisation": "City Hospital Neurology",
              "contact": {"email": "a.okonkwo@cityhospital.example.org"}}

DEMO_REFERRALS: list[dict[str, Any]] = [
    {
        "patient": {"id": "demo-pat-001", "name": "Margaret Ellison",
                    "date_of_birth": "1956-04-12",
                    "contact": {"email": "m.ellison@example.org", "phone": "+44 7700 900101"},
                    "preferred_channel": "email"},
        "referrer": _GP, "condition": "diabetic_neuropathy",
        "pain_duration": {"value": 14, "unit": "months"},
        "medications": [{"name": "pregabalin", "dose": "150 mg twice daily"},
                        {"name": "metformin", "dose": "1 g twice daily"}],
        "reason": "Burning and electric-shock pain in both feet, worse at night, despite "
                  "pregabalin titrated to 300 mg/day. Sleep badly affected.",
        "attachments": [{"filename": "gp-letter.pdf", "content_type": "application/pdf",
                         "size_bytes": 52114, "description": "Referral letter"}],
    },
    {
        "patient": {"id": "demo-pat-002", "name": "Rajesh Kumar",
                    "date_of_birth": "1948-11-02",
                    "contact": {"phone": "+44 7700 900102"}, "preferred_channel": "sms"},
        "referrer": _GP, "condition": "post_herpetic_neuralgia",
        "pain_duration": {"value": 5, "unit": "months"},
        "medications": [{"name": "lidocaine 5% patch", "dose": "1 patch 12 h on / 12 h off"},
                        {"name": "amitriptyline", "dose": "25 mg at night"}],
        "reason": "Allodynia over the right T6 dermatome after shingles in spring; clothing "
                  "contact unbearable.",
        "urgency_requested": "soon",
    },
    {
        "patient": {"id": "demo-pat-003", "name": "Sofia Marin", "date_of_birth": "1979-06-23",
                    "contact": {"email": "sofia.marin@example.org"},
                    "preferred_channel": "email"},
        "referrer": _ONCOLOGY, "condition": "chemotherapy_induced_neuropathy",
        "pain_duration": {"value": 10, "unit": "weeks"},
        "medications": [{"name": "duloxetine", "dose": "30 mg once daily"}],
        "reason": "Painful numbness in hands and feet after oxaliplatin; dropping objects. "
                  "Oncology would like input before the next cycle.",
        "urgency_requested": "urgent",
    },
    {
        "patient": {"id": "demo-pat-004", "name": "Daniel Brooks",
                    "date_of_birth": "1991-01-30",
                    "contact": {"email": "dan.brooks@example.org"},
                    "preferred_channel": "in_app"},
        "referrer": _GP, "condition": "crps",
        "pain_duration": {"value": 4, "unit": "months"},
        "medications": [{"name": "naproxen", "dose": "500 mg twice daily"},
                        {"name": "gabapentin", "dose": "300 mg three times daily"}],
        "reason": "Swelling, colour change and severe pain in the left hand after a wrist "
                  "fracture; meets Budapest criteria. Early physiotherapy wanted.",
        "urgency_requested": "urgent",
    },
    {
        "patient": {"id": "demo-pat-005", "name": "Helen Fraser", "date_of_birth": "1968-09-17",
                    "contact": {"email": "h.fraser@example.org", "phone": "+44 7700 900105"},
                    "preferred_channel": "email"},
        "referrer": _NEUROLOGY, "condition": "trigeminal_neuralgia",
        "pain_duration": {"value": 2, "unit": "years"},
        "medications": [{"name": "carbamazepine", "dose": "200 mg three times daily"}],
        "reason": "Paroxysmal right V2 pain; carbamazepine limited by dizziness. MRI shows "
                  "no neurovascular conflict.",
    },
    {
        "patient": {"id": "demo-pat-006", "name": "Oliver Grant", "date_of_birth": "1983-03-08",
                    "contact": {"email": "o.grant@example.org"}, "preferred_channel": "email"},
        "referrer": _NEUROLOGY, "condition": "multiple_sclerosis",
        "pain_duration": {"value": 18, "unit": "months"},
        "medications": [{"name": "pregabalin", "dose": "75 mg twice daily"},
                        {"name": "baclofen", "dose": "10 mg three times daily"}],
        "reason": "Central neuropathic pain in both legs with spasms; low mood. Would "
                  "benefit from psychology alongside medication review.",
    },
    {
        "patient": {"id": "demo-pat-007", "name": "Grace Adeyemi",
                    "date_of_birth": "1975-12-01",
                    "contact": {"email": "grace.adeyemi@example.org"},
                    "preferred_channel": "email"},
        "referrer": _GP, "condition": "radiculopathy",
        "pain_duration": {"value": 7, "unit": "months"},
        "medications": [{"name": "amitriptyline", "dose": "20 mg at night"}],
        "reason": "Left L5 radicular pain after a disc prolapse; surgery not advised. "
                  "Shooting pain down the leg limits walking.",
    },
]


def seed(base_url: str, headers: dict) -> list[str]:
    """POST the demo referrals; returns their ids (existing ones on a second run).

    `headers` must authorise a scheduler or an admin."""
    ids: list[str] = []
    with requests.Session() as http:
        for body in DEMO_REFERRALS:
            key = f"demo-{body['patient']['id']}-{body['condition']}"
            resp = http.post(f"{base_url.rstrip('/')}/referrals", json=body,
                             headers={**headers, "Idempotency-Key": key}, timeout=15)
            resp.raise_for_status()
            ids.append(resp.json()["id"])
    return ids
