"""The notes service's use cases: each one a transaction that checks access through the
care team, applies a domain rule, keeps the audit trail and stages its events.

Routes call these and nothing else; the clock arrives as `now`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from services.notes import alerting, safety
from services.notes import domain as d
from services.notes import measures as m
from services.notes.db import (
    BreakGlassRepository,
    CareTeamRepository,
    NotesRepository,
    SafetyAlertRepository,
    TimelineFilter,
)
from shared.auth import Principal
from shared.correlation import new_id
from shared.errors import Forbidden, NotFound
from shared.runtime import Runtime


def clinician(principal: Principal) -> d.Clinician:
    return d.Clinician(subject=principal.subject, role=principal.role,
                       discipline=principal.discipline, provider_id=principal.provider_id)


def scoring(runtime: Runtime) -> m.Scoring:
    """The clinic's cut-offs and important-change thresholds (NOTES_DN4_CUTOFF, ...; see
    measures.SETTINGS); one out of its instrument's range raises ScoringSettingError."""
    return m.Scoring.from_settings(runtime.settings.setting)


def sensitive_disciplines(runtime: Runtime) -> tuple[str, ...]:
    """NOTES_SENSITIVE_DISCIPLINES: comma-separated; psychology unless the clinic says."""
    raw = str(runtime.settings.setting("NOTES_SENSITIVE_DISCIPLINES", "psychology"))
    return tuple(d.strip() for d in raw.split(",") if d.strip())


def break_glass_minutes(runtime: Runtime) -> int:
    return int(runtime.settings.setting("NOTES_BREAK_GLASS_MINUTES", "240"))


@dataclass
class Attempt:
    """What a request tries to do, filled in as it learns the ids, so that a refusal
    is audited with them."""

    action: str
    resource: str = "note"
    resource_id: str | None = None
    patient_id: str | None = None


@contextmanager
def unit(runtime: Runtime, principal: Principal, attempt: Attempt) -> Iterator[Session]:
    """One transaction; a refusal rolls it back and is then audited in its own."""
    try:
        with runtime.db.transaction() as session:
            yield session
    except Forbidden as exc:
        with runtime.db.transaction() as session:
            runtime.audit.record(session, principal, attempt.action, attempt.resource,
                                 resource_id=attempt.resource_id,
                                 patient_id=attempt.patient_id, outcome="denied",
                                 reason=exc.detail)
        raise


def _authorise_read(s: Session, runtime: Runtime, principal: Principal, attempt: Attempt,
                    now: datetime) -> d.Access:
    """Care team or break-glass; the read is audited (with the grant, if any)."""
    who = clinician(principal)
    assert attempt.patient_id is not None
    team = CareTeamRepository(s).active_ids(attempt.patient_id)
    grant = None
    if who.role in d.BREAK_GLASS_ROLES and not d.is_member(who, team):
        grant = BreakGlassRepository(s).active(attempt.patient_id, who.subject, now)
    access = d.read_access(who, team, break_glass=grant is not None)
    if access is d.Access.DENIED:
        raise Forbidden("only the patient's care team may read their notes (others "
                        "through break-glass, with a reason)")
    runtime.audit.record(s, principal, attempt.action, attempt.resource,
                         resource_id=attempt.resource_id, patient_id=attempt.patient_id,
                         reason=f"break-glass {grant}" if grant else access.value)
    return access


@dataclass(frozen=True)
class Saved:
    note: d.Note
    alert: safety.Alert | None = None


def write_note(runtime: Runtime, principal: Principal, *, patient_id: str | None,
               body: Mapping[str, Any], now: datetime,
               amends_note_id: str | None = None) -> Saved:
    """A care-team specialist starts a draft, or an addendum to a signed note (whose
    patient it then is)."""
    attempt = Attempt("create", patient_id=patient_id)
    with unit(runtime, principal, attempt) as s:
        repo = NotesRepository(s)
        amends = None
        if amends_note_id:
            attempt.resource_id = amends_note_id
            amends = d.require_found(repo.get(amends_note_id), amends_note_id)
            patient_id = attempt.patient_id = amends.patient_id
        if not patient_id:
            raise NotFound("a note belongs to a patient")
        team = CareTeamRepository(s).active_ids(patient_id)
        note = d.new_draft(
            note_id=new_id(), patient_id=patient_id, who=clinician(principal), team=team,
            kind="addendum" if amends else body["kind"],
            encounter_at=body.get("encounter_at") or now, sections=body.get("sections", {}),
            measures=body.get("measures", {}), treatment=body.get("treatment", {}), now=now,
            amends=amends)
        attempt.resource_id = note.id
        repo.add(note, principal.subject)
        runtime.audit.record(s, principal, "create", "note", resource_id=note.id,
                             patient_id=patient_id,
                             reason=f"addendum to {amends.id}" if amends else None)
        alert = alerting.on_note_saved(s, runtime, principal, note, now)
    return Saved(note, alert)


def edit_note(runtime: Runtime, principal: Principal, note_id: str, body: Mapping[str, Any],
              now: datetime) -> Saved:
    """The author saves the draft again: a new version."""
    attempt = Attempt("edit", resource_id=note_id)
    with unit(runtime, principal, attempt) as s:
        repo = NotesRepository(s)
        before = d.require_found(repo.get(note_id, for_update=True), note_id)
        attempt.patient_id = before.patient_id
        after = d.edit(before, clinician(principal), expected_version=body["version"],
                       now=now, sections=body.get("sections", before.sections),
                       measures=body.get("measures", before.measures),
                       treatment=body.get("treatment", before.treatment),
                       encounter_at=body.get("encounter_at"))
        repo.save(before, after, principal.subject)
        runtime.audit.record(s, principal, "edit", "note", resource_id=note_id,
                             patient_id=after.patient_id, reason=f"version {after.version}")
        alert = alerting.on_note_saved(s, runtime, principal, after, now)
    return Saved(after, alert)


def sign_note(runtime: Runtime, principal: Principal, note_id: str, now: datetime) -> d.Note:
    """Lock the note for ever and tell the rest of the care team (ids and measures only)."""
    attempt = Attempt("sign", resource_id=note_id)
    with unit(runtime, principal, attempt) as s:
        repo = NotesRepository(s)
        before = d.require_found(repo.get(note_id, for_update=True), note_id)
        attempt.patient_id = before.patient_id
        after = d.sign(before, clinician(principal), now=now)
        repo.save(before, after, principal.subject)
        runtime.audit.record(s, principal, "sign", "note", resource_id=note_id,
                             patient_id=after.patient_id)
        notify = d.notify_list(CareTeamRepository(s).active_ids(after.patient_id), after)
        if after.amends_note_id:
            runtime.emit(s, "note.amended", {
                "note_id": after.id, "amends_note_id": after.amends_note_id,
                "patient_id": after.patient_id, "author_id": after.author_id,
                "discipline": after.discipline, "signed_at": now, "notify": notify},
                key=after.patient_id)
        else:
            runtime.emit(s, "note.signed", {
                "note_id": after.id, "patient_id": after.patient_id,
                "author_id": after.author_id, "discipline": after.discipline,
                "kind": after.kind, "signed_at": now, "measures": after.scores,
                "items": _item_scores(after.measures),
                "sensitive": after.discipline in sensitive_disciplines(runtime),
                "notify": notify}, key=after.patient_id)
    return after


def _item_scores(measures: dict[str, Any]) -> dict[str, list[int]]:
    """The item scores an event may carry (numbers only): PHQ-9's nine."""
    items = (measures.get("phq9") or {}).get("items")
    return {"phq9": [int(i) for i in items]} if items else {}


def share_note(runtime: Runtime, principal: Principal, note_id: str,
               now: datetime) -> d.Note:
    """The author shares a sensitive note with the care team: audited, and note.shared
    (ids only) tells the others."""
    attempt = Attempt("share", resource_id=note_id)
    with unit(runtime, principal, attempt) as s:
        repo = NotesRepository(s)
        before = d.require_found(repo.get(note_id, for_update=True), note_id)
        attempt.patient_id = before.patient_id
        after = d.share(before, clinician(principal), now=now)
        repo.save(before, after, principal.subject)
        runtime.audit.record(s, principal, "share", "note", resource_id=note_id,
                             patient_id=after.patient_id)
        runtime.emit(s, "note.shared", {"note_id": after.id, "patient_id": after.patient_id,
                                        "by": after.shared_by, "at": now},
                     key=after.patient_id)
    return after


def enter_in_error(runtime: Runtime, principal: Principal, note_id: str, reason: str,
                   now: datetime) -> d.Note:
    attempt = Attempt("enter_in_error", resource_id=note_id)
    with unit(runtime, principal, attempt) as s:
        repo = NotesRepository(s)
        before = d.require_found(repo.get(note_id, for_update=True), note_id)
        attempt.patient_id = before.patient_id
        after = d.enter_in_error(before, clinician(principal), reason=reason, now=now)
        repo.save(before, after, principal.subject)
        runtime.audit.record(s, principal, "enter_in_error", "note", resource_id=note_id,
                             patient_id=after.patient_id, reason=reason)
        runtime.emit(s, "note.entered_in_error", {
            "note_id": after.id, "patient_id": after.patient_id,
            "by": after.entered_in_error_by, "at": now}, key=after.patient_id)
    return after


@dataclass(frozen=True)
class NoteView:
    note: d.Note
    addenda: list[str]
    access: d.Access
    alert: safety.Alert | None = None


def read_note(runtime: Runtime, principal: Principal, note_id: str, now: datetime) -> NoteView:
    attempt = Attempt("read", resource_id=note_id)
    with unit(runtime, principal, attempt) as s:
        repo = NotesRepository(s)
        note = d.require_found(repo.get(note_id), note_id)
        attempt.patient_id = note.patient_id
        access = _authorise_read(s, runtime, principal, attempt, now)
        if not d.visible(note, clinician(principal), access):
            raise NotFound(f"no note {note_id}")
        alerts = SafetyAlertRepository(s).of_notes([note.id]).get(note.id, [])
        return NoteView(note, repo.addenda_of([note.id]).get(note.id, []), access,
                        safety.note_alert(alerts))


def read_versions(runtime: Runtime, principal: Principal, note_id: str,
                  now: datetime) -> list[dict[str, Any]]:
    attempt = Attempt("read_versions", resource_id=note_id)
    with unit(runtime, principal, attempt) as s:
        repo = NotesRepository(s)
        note = d.require_found(repo.get(note_id), note_id)
        attempt.patient_id = note.patient_id
        access = _authorise_read(s, runtime, principal, attempt, now)
        if not d.visible(note, clinician(principal), access):
            raise NotFound(f"no note {note_id}")
        if d.withheld(note, clinician(principal), sensitive_disciplines(runtime)):
            raise Forbidden("a sensitive note's versions are for its author and discipline "
                            "until the author shares it")
        return repo.versions(note_id)


@dataclass(frozen=True)
class Timeline:
    patient_id: str
    notes: list[d.Note]
    total: int
    addenda: dict[str, list[str]]
    trends: dict[str, m.Trend]
    access: d.Access
    alerts: dict[str, safety.Alert]


def timeline(runtime: Runtime, principal: Principal, patient_id: str, flt: TimelineFilter,
             *, limit: int, offset: int, now: datetime) -> Timeline:
    """All disciplines' notes in time order and each measure's trend over signed notes,
    from one query of the notes (the trend covers the filter, not just the page)."""
    attempt = Attempt("read_timeline", resource="timeline", patient_id=patient_id)
    with unit(runtime, principal, attempt) as s:
        access = _authorise_read(s, runtime, principal, attempt, now)
        repo = NotesRepository(s)
        found = repo.timeline(patient_id, clinician(principal), flt, access)
        # a change is against the patient's first signed score, whatever the filter
        everything = found if _unfiltered(flt) else repo.timeline(
            patient_id, clinician(principal), TimelineFilter(), access)
        page = found[offset:offset + limit]
        shown = SafetyAlertRepository(s).of_notes(n.id for n in page)
    signed = [(n.id, n.encounter_at, n.scores) for n in found if n.status == d.SIGNED]
    first = m.baselines(signed if everything is found else [
        (n.id, n.encounter_at, n.scores) for n in everything if n.status == d.SIGNED])
    addenda: dict[str, list[str]] = {}
    for n in found:
        if n.amends_note_id and n.status == d.SIGNED:
            addenda.setdefault(n.amends_note_id, []).append(n.id)
    alerts = {note_id: a for note_id, found_alerts in shown.items()
              if (a := safety.note_alert(found_alerts))}
    return Timeline(patient_id, page, len(found), addenda,
                    m.trends(signed, scoring(runtime), first), access, alerts)


def _unfiltered(flt: TimelineFilter) -> bool:
    return replace(flt, include_entered_in_error=False) == TimelineFilter()


def open_break_glass(runtime: Runtime, principal: Principal, patient_id: str, reason: str,
                     now: datetime) -> dict[str, Any]:
    """An emergency: a clinician outside the care team opens the notes, saying why. It is
    allowed, audited, and reported to admins (event and report)."""
    attempt = Attempt("break_glass", resource="patient_notes", patient_id=patient_id)
    with unit(runtime, principal, attempt) as s:
        who = clinician(principal)
        d.may_break_glass(who, reason)
        member = d.is_member(who, CareTeamRepository(s).active_ids(patient_id))
        grant_id = new_id()
        until = now + timedelta(minutes=break_glass_minutes(runtime))
        BreakGlassRepository(s).open(grant_id=grant_id, patient_id=patient_id, who=who,
                                     reason=reason.strip(), now=now, until=until)
        runtime.audit.record(s, principal, "break_glass", "patient_notes",
                             resource_id=grant_id, patient_id=patient_id,
                             outcome="break_glass", reason=reason.strip())
        runtime.emit(s, "patient.break_glass", {
            "access_id": grant_id, "patient_id": patient_id, "actor_id": who.author_id,
            "discipline": who.discipline, "opened_at": now, "expires_at": until},
            key=patient_id)
    return {"id": grant_id, "patient_id": patient_id, "opened_at": now, "expires_at": until,
            "in_care_team": member}


def care_team_of(runtime: Runtime, principal: Principal, patient_id: str,
                 now: datetime) -> list[dict[str, Any]]:
    attempt = Attempt("read_care_team", resource="care_team", patient_id=patient_id)
    with unit(runtime, principal, attempt) as s:
        _authorise_read(s, runtime, principal, attempt, now)
        return CareTeamRepository(s).members(patient_id)
