"""Fictional patients, referrers and the clinical choices made about them, in the
proportions a multidisciplinary neuropathic-pain clinic sees. Everything comes from one
seeded `random.Random`, so a run can be repeated exactly."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

GIVEN = ("Margaret", "Rajesh", "Sofia", "Daniel", "Aisha", "Tomasz", "Grace", "Liam",
         "Mei", "Oluwaseun", "Elena", "Patrick", "Fatima", "Henrik", "Noor", "Isabel",
         "Kwame", "Yuki", "Ruth", "Mateo", "Ingrid", "Samuel", "Leila", "Arthur")
FAMILY = ("Ellison", "Kumar", "Marin", "Brooks", "Rahman", "Kowalski", "Adeyemi", "Byrne",
          "Chen", "Okafor", "Petrova", "Walsh", "Haddad", "Larsen", "Siddiqui", "Moreno",
          "Mensah", "Tanaka", "Goldberg", "Silva", "Berg", "Osei", "Farah", "Hughes")

REFERRERS = (
    {"name": "Dr Priya Patel", "organisation": "Elm Street Surgery",
     "contact": {"email": "p.patel@elm-surgery.example.org"}},
    {"name": "Dr Tomasz Nowak", "organisation": "Northfield Cancer Centre",
     "contact": {"email": "t.nowak@northfield.example.org"}},
    {"name": "Dr Amara Okonkwo", "organisation": "City Hospital Neurology",
     "contact": {"email": "a.okonkwo@cityhospital.example.org"}},
    {"name": "Dr Hannah Lewis", "organisation": "Riverside Diabetes Centre",
     "contact": {"email": "h.lewis@riverside.example.org"}},
)

# condition: (share of referrals, what the referral letter says, screening tool and a
# likely positive score, pain duration in months)
CONDITIONS: dict[str, tuple[float, str, tuple[str, int], int]] = {
    "diabetic_neuropathy": (0.32, "Burning feet, worse at night, despite pregabalin.",
                            ("dn4", 6), 14),
    "post_herpetic_neuralgia": (0.14, "Allodynia over a thoracic dermatome after shingles.",
                                ("lanss", 17), 5),
    "chemotherapy_induced_neuropathy": (0.14, "Painful numbness in hands and feet after "
                                              "oxaliplatin.", ("dn4", 5), 3),
    "crps": (0.08, "Swollen, discoloured, exquisitely painful hand after a wrist fracture.",
             ("lanss", 19), 7),
    "multiple_sclerosis": (0.10, "Central neuropathic pain in both legs; spasms.",
                           ("paindetect", 21), 30),
    "radiculopathy": (0.14, "Shooting pain down the left leg below the knee.",
                      ("paindetect", 19), 9),
    "trigeminal_neuralgia": (0.05, "Electric-shock pain in the right cheek on chewing.",
                             ("dn4", 4), 12),
    "other": (0.03, "Neuropathic features, cause unclear.", ("dn4", 4), 6),
}

FIRST_VISIT = {"pain_medicine": 45, "physical_therapy": 45, "psychology": 50,
               "acupuncture": 30}
# The disciplines a pathway adds after pain medicine, by condition.
TEAM: dict[str, tuple[str, ...]] = {
    "diabetic_neuropathy": ("physical_therapy", "psychology", "acupuncture"),
    "post_herpetic_neuralgia": ("acupuncture", "psychology"),
    "chemotherapy_induced_neuropathy": ("physical_therapy", "acupuncture"),
    "crps": ("physical_therapy", "psychology"),
    "multiple_sclerosis": ("physical_therapy", "psychology"),
    "radiculopathy": ("physical_therapy",),
    "trigeminal_neuralgia": ("psychology",),
    "other": ("psychology",),
}


@dataclass(frozen=True)
class Decisions:
    """What happens to one referral, drawn once when the patient is made up."""

    duplicate_post: bool  # the referrer's system sends the referral twice
    referrer_cancels: bool  # withdrawn before triage
    rejected: bool  # not neuropathic, or better served elsewhere
    held: bool  # put on hold (awaiting a scan) and resumed
    patient_declines: bool  # the patient turns the proposed itinerary down
    visit_plans: tuple[str, ...]  # per visit, in order: attend / cancel / no_show


@dataclass(frozen=True)
class Patient:
    patient_id: str
    name: str
    date_of_birth: str
    email: str | None
    phone: str | None
    channel: str
    condition: str
    priority: str

    def referral(self, rng: random.Random) -> dict[str, Any]:
        _share, reason, _screen, months = CONDITIONS[self.condition]
        contact = {k: v for k, v in (("email", self.email), ("phone", self.phone)) if v}
        return {
            "patient": {"id": self.patient_id, "name": self.name,
                        "date_of_birth": self.date_of_birth, "contact": contact,
                        "preferred_channel": self.channel},
            "referrer": rng.choice(REFERRERS), "condition": self.condition,
            "pain_duration": {"value": max(1, months + rng.randint(-2, 6)), "unit": "months"},
            "medications": [{"name": "pregabalin", "dose": "75 mg twice daily"}],
            "reason": reason, "urgency_requested": self.priority,
            **({"condition_detail": "small-fibre neuropathy, cause under investigation"}
               if self.condition == "other" else {}),
        }

    def triage(self, *, short: bool) -> dict[str, Any]:
        """Pain medicine first, then the condition's team. `short` pathways (one visit per
        discipline) keep a simulated clinic from filling months ahead under load."""
        _share, _reason, (tool, score), _months = CONDITIONS[self.condition]
        steps = [{"discipline": "pain_medicine", "visit_minutes": 45,
                  "sessions": 1 if short else 3, "interval_days": 28}]
        for discipline in TEAM[self.condition]:
            steps.append({"discipline": discipline, "visit_minutes": FIRST_VISIT[discipline],
                          "sessions": 1 if short else 6, "interval_days": 7,
                          "after": ["pain_medicine"]})
        return {"priority": self.priority, "screening": {"tool": tool, "score": score},
                "pathway": steps, "reason": f"{tool.upper()} {score}; {self.condition}"}


def make_patient(rng: random.Random, run: str, n: int) -> Patient:
    """The n-th patient of run `run`; ids are unique per run."""
    conditions = list(CONDITIONS)
    condition = rng.choices(conditions, weights=[CONDITIONS[c][0] for c in conditions])[0]
    given, family = rng.choice(GIVEN), rng.choice(FAMILY)
    channel = rng.choices(("email", "sms", "in_app"), weights=(70, 25, 5))[0]
    handle = f"{given}.{family}.{run}.{n}".lower()
    born = date(1940, 1, 1) + timedelta(days=rng.randrange(0, 60 * 365))
    return Patient(
        patient_id=f"sim-{run}-{n:05d}", name=f"{given} {family}",
        date_of_birth=born.isoformat(),
        email=f"{handle}@patients.example.org" if channel != "sms" or rng.random() < 0.5
        else None,
        phone=f"+44 77{rng.randrange(10, 99)} {n:06d}" if channel == "sms"
        or rng.random() < 0.4 else None,
        channel=channel, condition=condition,
        priority=rng.choices(("urgent", "soon", "routine"), weights=(15, 35, 50))[0])


def decide(rng: random.Random, visits: int = 5, *, misses_first_visit: bool = False
           ) -> Decisions:
    """A realistic mix: most referrals become care; some are withdrawn, rejected or held;
    patients decline or miss some visits.

    `misses_first_visit`: a patient who goes straight to a booked itinerary and does not
    come to its first visit (first visits are the ones most missed). A run of minutes can
    only see a no-show whose visit begins within it, and only the first visits booked in
    an empty clinic do; a run asks for a few such patients to reach that path for sure.
    """
    if misses_first_visit:
        later = decide(rng, visits)
        return replace(later, duplicate_post=False, referrer_cancels=False, rejected=False,
                       held=False, patient_declines=False,
                       visit_plans=("no_show", *later.visit_plans[1:]))
    return Decisions(
        duplicate_post=rng.random() < 0.05,
        referrer_cancels=rng.random() < 0.04,
        rejected=rng.random() < 0.08,
        held=rng.random() < 0.06,
        patient_declines=rng.random() < 0.07,
        visit_plans=tuple(rng.choices(("attend", "cancel", "no_show"), weights=(82, 10, 8))[0]
                          for _ in range(visits)))
