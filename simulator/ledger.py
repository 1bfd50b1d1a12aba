"""What the simulated clinic did, as the services acknowledged it: the ledger the fault
proof reconciles against the services' records and the events on the topics.

Only answers count. A request that failed without an answer (timeout, connection reset,
503 during a fault) leaves its record `uncertain`: the reconciliation then accepts the
state before or after the action, but still demands that whatever the record says
matches the topics exactly once.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class PatientRecord:
    patient_id: str
    name: str
    email: str | None
    phone: str | None
    channel: str


@dataclass
class ReferralRecord:
    referral_id: str
    patient_id: str
    idempotency_key: str
    status: str = "received"
    uncertain: bool = False
    accepted_at: float | None = None  # epoch seconds when the accept was answered 200


@dataclass
class ItineraryRecord:
    itinerary_id: str
    referral_id: str | None
    patient_id: str
    status: str
    proposed_seen_at: float | None = None
    confirm_asked_at: float | None = None
    confirmed_at: float | None = None
    uncertain: bool = False


@dataclass
class VisitRecord:
    appointment_id: str
    itinerary_id: str | None
    patient_id: str
    provider_id: str
    discipline: str
    start: str
    status: str = "booked"
    uncertain: bool = False
    plan: str = "attend"  # what the simulator means the visit to become


@dataclass
class NoteRecord:
    note_id: str
    patient_id: str
    author_id: str
    appointment_id: str | None
    status: str = "draft"
    uncertain: bool = False


@dataclass
class Ledger:
    """Thread-safe: every simulated person writes here as their answers come back."""

    patients: dict[str, PatientRecord] = field(default_factory=dict)
    referrals: dict[str, ReferralRecord] = field(default_factory=dict)
    itineraries: dict[str, ItineraryRecord] = field(default_factory=dict)
    visits: dict[str, VisitRecord] = field(default_factory=dict)
    notes: dict[str, NoteRecord] = field(default_factory=dict)
    outcomes: Counter = field(default_factory=Counter)  # "referral rejected": 3, ...
    failures: list[str] = field(default_factory=list)  # answers the simulator did not expect

    def __post_init__(self) -> None:
        self.lock = threading.RLock()

    def count(self, outcome: str, n: int = 1) -> None:
        with self.lock:
            self.outcomes[outcome] += n

    def fail(self, what: str) -> None:
        with self.lock:
            self.failures.append(what[:500])

    def add(self, record: PatientRecord | ReferralRecord | ItineraryRecord | VisitRecord
            | NoteRecord) -> None:
        with self.lock:
            if isinstance(record, PatientRecord):
                self.patients[record.patient_id] = record
            elif isinstance(record, ReferralRecord):
                self.referrals[record.referral_id] = record
            elif isinstance(record, ItineraryRecord):
                self.itineraries[record.itinerary_id] = record
            elif isinstance(record, VisitRecord):
                self.visits[record.appointment_id] = record
            else:
                self.notes[record.note_id] = record

    def summary(self) -> dict[str, object]:
        with self.lock:
            return {
                "patients": len(self.patients),
                "referrals": Counter(r.status for r in self.referrals.values()),
                "itineraries": Counter(i.status for i in self.itineraries.values()),
                "visits": Counter(v.status for v in self.visits.values()),
                "notes": Counter(n.status for n in self.notes.values()),
                "uncertain": sum(x.uncertain for x in (*self.referrals.values(),
                                                       *self.itineraries.values(),
                                                       *self.visits.values(),
                                                       *self.notes.values())),
                "outcomes": dict(self.outcomes),
                "failures": len(self.failures),
            }
