"""Who reads which FHIR resources: the gateway's data rules in one place, as the clinic
applies them natively (README "Least privilege").

- A scheduler reads demographics, referrals' administrative resources, the diary and
  care teams of every patient, never a clinical resource (Observation, Encounter,
  QuestionnaireResponse).
- A specialist (and the triage lead) reads every resource of the patients whose care
  team they are on: they triaged or accepted one of the patient's open referrals, or are
  booked for one of its visits. The triage lead also reads the Task, ServiceRequest and
  Patient of referrals waiting for triage or a decision.
- A referring system (`referrer`) reads the Task, ServiceRequest and Patient of the
  referrals it sent (its token subject is kept at intake), nothing else.
- Admin is operations: it reads no FHIR resource (its `@roles` leave it out).

403 vs 404: a resource type the role may not read at all is 403 (the role is not
allowed); one resource outside the reader's patients or referrals is 404, since its
existence is itself health data, as the referral desk answers; a search returns only
what the reader may see. Every refusal is audited by the route (outcome `refused`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from services.fhir import mapping as fm
from services.fhir.db import ResourceRow, Resources
from shared.auth import Principal
from shared.errors import Forbidden

CLINICAL = ("Observation", "Encounter", "QuestionnaireResponse")
REFERRAL_TYPES = ("Task", "ServiceRequest", "Patient")
# resources with no patient in them: the diary's shape and who works here
NO_PATIENT = ("Practitioner", "Schedule", "Slot")
CLINICIANS = ("specialist", "triage_lead")
READERS = ("scheduler", "specialist", "triage_lead", "referrer")
CLOSED = ("discharged", "rejected", "cancelled")
AWAITING_TRIAGE_LEAD = ("received", "triaged")


def subject_key(subject: str) -> str:
    """Fact keys are 64 characters; a token subject may be longer."""
    return hashlib.sha256(subject.encode()).hexdigest()


def _clinician(p: Principal) -> bool:
    return any(p.has(r) for r in CLINICIANS)


def member_ids(p: Principal) -> set[str]:
    """The ids a care team may know this person by (token subject, provider id)."""
    return {i for i in (p.subject, p.provider_id) if i}


def may_read_type(p: Principal, resource_type: str) -> None:
    """403 when the role may not read this resource type at all."""
    if resource_type == "Subscription":
        if not p.has("referrer"):
            raise Forbidden("a Subscription is its referring system's own")
        return
    if _clinician(p):
        return
    if p.has("referrer") and not p.has("scheduler"):
        if resource_type not in REFERRAL_TYPES:
            raise Forbidden(f"a referring system reads its referrals' "
                            f"{', '.join(REFERRAL_TYPES)} only, not {resource_type}")
        return
    if resource_type in CLINICAL:
        raise Forbidden(f"{resource_type} holds clinical measures and visits: "
                        "the patient's care team only")


# ------------------------------------------------------------------ keeping what we need

def joined(repo: Resources, referral_id: str, patient_id: str, member_id: str) -> None:
    """A clinician joins a referral's care team (triaged, accepted, booked for it)."""
    key = subject_key(member_id)
    known = repo.fact("member", key) or {"referrals": {}}
    if known["referrals"].get(referral_id) != patient_id:
        known["referrals"] = {**known["referrals"], referral_id: patient_id}
        repo.save_fact("member", key, known)


def sent(repo: Resources, referral_id: str, patient_id: str, subject: str) -> None:
    """A referring system sent this referral (kept at intake, from its token)."""
    key = subject_key(subject)
    known = repo.fact("requester", key) or {"referrals": {}}
    if known["referrals"].get(referral_id) != patient_id:
        known["referrals"] = {**known["referrals"], referral_id: patient_id}
        repo.save_fact("requester", key, known)


def sent_by(repo: Resources, subject: str) -> dict[str, str]:
    """The referrals this system sent: referral id -> patient id."""
    return dict((repo.fact("requester", subject_key(subject)) or {"referrals": {}})["referrals"])


# ------------------------------------------------------------------------- the scope

@dataclass(frozen=True)
class Scope:
    """What one reader may see of one resource type: None means no limit."""

    patients: frozenset[str] | None = None   # FHIR patient ids
    referrals: frozenset[str] | None = None  # referral ids (a row's source_id)

    def allows(self, row: ResourceRow) -> bool:
        if self.referrals is not None and row.resource_type != "Patient" \
                and row.source_id not in self.referrals:
            return False
        return self.patients is None or row.patient_id in self.patients


def _open(repo: Resources, referrals: Iterable[str]) -> set[str]:
    out = set()
    for rid in referrals:
        fact = repo.fact("referral", rid) or {}
        if fact.get("status") not in CLOSED:
            out.add(rid)
    return out


def _care_team_patients(repo: Resources, p: Principal) -> set[str]:
    mine: dict[str, str] = {}
    for member in member_ids(p):
        mine.update((repo.fact("member", subject_key(member)) or {"referrals": {}})["referrals"])
    return {fm.fhir_id(mine[rid]) for rid in _open(repo, mine)}


def _awaiting_triage_lead(repo: Resources) -> set[str]:
    codes = [f"{fm.CS_REFERRAL_STATUS}|{s}" for s in AWAITING_TRIAGE_LEAD]
    return set(repo.s.scalars(select(ResourceRow.patient_id).where(
        ResourceRow.resource_type == "Task", ResourceRow.code.in_(codes))))


def scope(repo: Resources, p: Principal, resource_type: str) -> Scope:
    """The rows of `resource_type` this reader may see (call may_read_type first)."""
    if resource_type in NO_PATIENT:
        return Scope()
    if resource_type == "Subscription":   # a system's own (source: its subject's key)
        return Scope(referrals=frozenset({subject_key(p.subject)}))
    if p.has("scheduler") and resource_type not in CLINICAL:
        return Scope()
    if _clinician(p):
        patients = _care_team_patients(repo, p)
        if p.has("triage_lead") and resource_type in REFERRAL_TYPES:
            patients |= _awaiting_triage_lead(repo)
        return Scope(patients=frozenset(patients))
    own = sent_by(repo, p.subject)
    return Scope(patients=frozenset(fm.fhir_id(v) for v in own.values()),
                 referrals=frozenset(own))


def limits(s: Scope) -> dict[str, Any]:
    """The scope as the search's filters."""
    return {"only_patients": None if s.patients is None else sorted(s.patients),
            "only_sources": None if s.referrals is None else sorted(s.referrals)}
