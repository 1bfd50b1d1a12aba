"""The rules of care notes, pure: who may read and write a patient's notes, how a draft
becomes a signed note, and why a signed note never changes again.

No Flask, SQLAlchemy or Kafka here; the clock arrives as `now`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from services.notes import measures as m
from shared.errors import Conflict, Forbidden, InvalidInput, NotFound

DRAFT, SIGNED, ENTERED_IN_ERROR = "draft", "signed", "entered_in_error"
KINDS = ("intake_assessment", "progress", "treatment_record", "discharge_summary", "addendum")
AUTHORED_KINDS = KINDS[:-1]

# The free-text sections each kind of note has (progress notes are SOAP).
SECTIONS: dict[str, tuple[str, ...]] = {
    "intake_assessment": ("presenting_complaint", "history", "examination", "impression",
                          "plan"),
    "progress": ("subjective", "objective", "assessment", "plan"),
    "treatment_record": ("treatment", "response", "plan"),
    "discharge_summary": ("summary", "outcome", "recommendations"),
    "addendum": ("text",),
}
# Treatment details a discipline records (acupuncture points, PT exercises, CBT module).
# A note records a visit that has happened (clock skew allowed for), never a future one.
FUTURE_SLACK = timedelta(hours=1)
TREATMENT_OF = {"acupuncture": "acupuncture", "physical_therapy": "physical_therapy",
                "psychology": "psychology", "pain_medicine": "pain_medicine"}


@dataclass(frozen=True)
class Clinician:
    """Who is acting, as the notes service sees them (from the bearer token)."""

    subject: str
    role: str
    discipline: str | None = None
    provider_id: str | None = None

    @property
    def member_ids(self) -> set[str]:
        """The ids by which the care team may know this person."""
        return {i for i in (self.provider_id, self.subject) if i}

    @property
    def author_id(self) -> str:
        """The id notes and events name an author by: provider id when the token has one
        (what scheduling and the notifier know), else the subject."""
        return self.provider_id or self.subject

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class Note:
    id: str
    patient_id: str
    author_id: str
    author_subject: str
    discipline: str
    kind: str
    status: str
    version: int
    encounter_at: datetime
    created_at: datetime
    updated_at: datetime
    sections: dict[str, str] = field(default_factory=dict)
    measures: dict[str, Any] = field(default_factory=dict)
    treatment: dict[str, Any] = field(default_factory=dict)
    amends_note_id: str | None = None
    signed_at: datetime | None = None
    entered_in_error_at: datetime | None = None
    entered_in_error_by: str | None = None
    entered_in_error_reason: str | None = None
    shared_at: datetime | None = None  # a sensitive note its author shared with the team
    shared_by: str | None = None

    @property
    def scores(self) -> dict[str, float]:
        return m.flatten(self.measures)

    def written_by(self, who: Clinician) -> bool:
        return self.author_subject == who.subject


# ------------------------------------------------------------------------ access

class Access(Enum):
    CARE_TEAM = "care_team"
    BREAK_GLASS = "break_glass"
    DENIED = "denied"


def is_member(who: Clinician, team: Iterable[str]) -> bool:
    """The care-team rule: a person is on a patient's team when their token's
    provider_id or subject is an active member id (provider ids from appointment.booked,
    the accepting specialist's subject from referral.accepted)."""
    return bool(who.member_ids & set(team))


def read_access(who: Clinician, team: Iterable[str], *, break_glass: bool) -> Access:
    """The care team reads; a specialist outside it, or an admin (operations, no clinical
    reading of its own), only through break-glass, with a reason."""
    if who.role == "specialist" and is_member(who, team):
        return Access.CARE_TEAM
    if who.role in BREAK_GLASS_ROLES and break_glass:
        return Access.BREAK_GLASS
    return Access.DENIED


def require_writer(who: Clinician, team: Iterable[str]) -> None:
    """Only specialists on the patient's care team write notes (break-glass is for
    reading)."""
    if who.role != "specialist" or not who.discipline:
        raise Forbidden("only a specialist writes care notes")
    if not is_member(who, team):
        raise Forbidden("only the patient's care team may write their notes")


BREAK_GLASS_ROLES = ("specialist", "admin")


def may_break_glass(who: Clinician, reason: str) -> None:
    if who.role not in BREAK_GLASS_ROLES:
        raise Forbidden("only a clinician may open a patient's notes in an emergency")
    if len(reason.strip()) < 10:
        raise InvalidInput("say why you need this patient's notes (10 characters or more)",
                           field="reason")


def visible(note: Note, who: Clinician, access: Access | None = None) -> bool:
    """Notes entered in error stay readable to their author and to an admin who opened
    the patient's notes through break-glass (an audit of the record); drafts to their
    author only (others read what has been signed)."""
    if note.status == ENTERED_IN_ERROR:
        return note.written_by(who) or (who.is_admin and access is Access.BREAK_GLASS)
    if note.status == DRAFT:
        return note.written_by(who)
    return True


# ------------------------------------------------------------------ sensitive notes

def withheld(note: Note, who: Clinician, sensitive: Iterable[str]) -> bool:
    """A note of a sensitive discipline (NOTES_SENSITIVE_DISCIPLINES, psychology by
    default) shows other disciplines that it exists, its date and author, not its text
    (sections, measures' items, treatment), until its author shares it with the team.
    Its author and colleagues of its discipline read it whole."""
    return (note.discipline in set(sensitive) and note.shared_at is None
            and not note.written_by(who) and who.discipline != note.discipline)


def share(note: Note, who: Clinician, *, now: datetime) -> Note:
    """The author shares a signed sensitive note with the whole care team; once only."""
    if not (who.role == "specialist" and note.written_by(who)):
        raise Forbidden("only the note's author shares it with the care team")
    if note.status != SIGNED:
        raise Conflict("a note is shared once it is signed")
    if note.shared_at is not None:
        raise Conflict("the note is already shared with the care team")
    return replace(note, shared_at=now, shared_by=who.author_id, updated_at=now)


# ------------------------------------------------------------------------ content

def check_content(kind: str, discipline: str, sections: Mapping[str, str],
                  measures: Mapping[str, Any], treatment: Mapping[str, Any]) -> None:
    """A note's sections belong to its kind, its treatment details to its author's
    discipline, and its measures lie in their ranges."""
    allowed = SECTIONS[kind]
    unknown = sorted(set(sections) - set(allowed))
    if unknown:
        raise InvalidInput(f"a {kind} note has the sections {', '.join(allowed)}",
                           errors={f"sections.{u}": [f"not a section of a {kind} note"]
                                   for u in unknown})
    other = sorted(set(treatment) - {TREATMENT_OF[discipline]})
    if other:
        raise InvalidInput(f"a {discipline} note records {discipline} treatment only",
                           errors={f"treatment.{o}": ["not this author's discipline"]
                                   for o in other})
    if kind == "addendum" and (measures or treatment):
        raise InvalidInput("an addendum corrects in words; record new measures in a new note",
                           field="measures")
    items = (measures.get("phq9") or {}).get("items")
    if items is not None and (len(items) != m.PHQ9_ITEMS or not all(
            m.PHQ9_ITEM_RANGE[0] <= i <= m.PHQ9_ITEM_RANGE[1] for i in items)):
        raise InvalidInput("PHQ-9 takes nine item scores of 0 to 3",
                           field="measures.phq9.items")
    wrong = m.out_of_range(m.flatten(measures))
    if wrong:
        raise InvalidInput("measures out of range: " + ", ".join(sorted(wrong)),
                           errors={f"measures.{k}": [v] for k, v in wrong.items()})


def _check_encounter(encounter_at: datetime, now: datetime) -> None:
    if encounter_at > now + FUTURE_SLACK:
        raise InvalidInput("a note records a visit that has taken place, not a future one",
                           field="encounter_at")


def new_draft(*, note_id: str, patient_id: str, who: Clinician, team: Iterable[str], kind: str,
              encounter_at: datetime, sections: Mapping[str, str],
              measures: Mapping[str, Any], treatment: Mapping[str, Any], now: datetime,
              amends: Note | None = None) -> Note:
    """A care-team specialist starts a note (version 1 of its draft)."""
    require_writer(who, team)
    assert who.discipline is not None
    if kind == "addendum":
        if amends is None:
            raise InvalidInput("an addendum amends a signed note", field="amends_note_id")
        if amends.status != SIGNED:
            raise Conflict(f"only a signed note takes an addendum; this one is {amends.status}")
        if amends.patient_id != patient_id:
            raise InvalidInput("the addendum's note is another patient's", field="amends_note_id")
    check_content(kind, who.discipline, sections, measures, treatment)
    _check_encounter(encounter_at, now)
    return Note(id=note_id, patient_id=patient_id, author_id=who.author_id,
                author_subject=who.subject, discipline=who.discipline, kind=kind, status=DRAFT,
                version=1, encounter_at=encounter_at, created_at=now, updated_at=now,
                sections=dict(sections), measures=dict(measures), treatment=dict(treatment),
                amends_note_id=amends.id if amends else None)


def _require_draft(note: Note, doing: str) -> None:
    if note.status == SIGNED:
        raise Conflict(f"a signed note is locked for ever and cannot be {doing}; "
                       "add an addendum instead")
    if note.status != DRAFT:
        raise Conflict(f"a note {note.status.replace('_', ' ')} cannot be {doing}")


def edit(note: Note, who: Clinician, *, expected_version: int, now: datetime,
         sections: Mapping[str, str], measures: Mapping[str, Any],
         treatment: Mapping[str, Any], encounter_at: datetime | None = None) -> Note:
    """The author saves their draft again: a new version; a stale save is refused so no
    one's words are silently overwritten."""
    _require_draft(note, "edited")
    if not note.written_by(who):
        raise Forbidden("only the author edits a draft")
    if expected_version != note.version:
        raise Conflict(f"the draft is at version {note.version}, not {expected_version}; "
                       "reload it and save again")
    check_content(note.kind, note.discipline, sections, measures, treatment)
    if encounter_at:
        _check_encounter(encounter_at, now)
    return replace(note, version=note.version + 1, updated_at=now, sections=dict(sections),
                   measures=dict(measures), treatment=dict(treatment),
                   encounter_at=encounter_at or note.encounter_at)


def sign(note: Note, who: Clinician, *, now: datetime) -> Note:
    """The author signs: from now on the note never changes."""
    _require_draft(note, "signed again")
    if not note.written_by(who):
        raise Forbidden("only the author signs a note")
    if not any(v.strip() for v in note.sections.values()):
        raise InvalidInput("a note is signed with at least one section written",
                           field="sections")
    return replace(note, status=SIGNED, signed_at=now, updated_at=now)


def enter_in_error(note: Note, who: Clinician, *, reason: str, now: datetime) -> Note:
    """Nothing is deleted: the note is marked, with why, and stays for admins to read."""
    if note.status == ENTERED_IN_ERROR:
        raise Conflict("the note is already marked entered in error")
    if not (who.role == "specialist" and note.written_by(who)):
        raise Forbidden("only the author marks a note entered in error")
    if len(reason.strip()) < 5:
        raise InvalidInput("say why the note was entered in error", field="reason")
    return replace(note, status=ENTERED_IN_ERROR, entered_in_error_at=now,
                   entered_in_error_by=who.author_id, entered_in_error_reason=reason.strip(),
                   updated_at=now)


def require_found(note: Note | None, note_id: str) -> Note:
    if note is None:
        raise NotFound(f"no note {note_id}")
    return note


def notify_list(team: Iterable[str], author: Note) -> list[str]:
    """Who hears of a signed note: the care team but its author."""
    return sorted(set(team) - {author.author_id, author.author_subject})
