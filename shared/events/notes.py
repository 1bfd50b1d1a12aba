"""Events of the notes service (topic notes.events, keyed by patient id).

Never a note's text: ids, author, discipline and measures only.
"""

from marshmallow import Schema, fields, validate

from shared.events.envelope import register
from shared.events.vocabulary import DISCIPLINES

_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
_discipline = fields.String(required=True, validate=validate.OneOf(DISCIPLINES))
NOTE_KINDS = ("intake_assessment", "progress", "treatment_record", "discharge_summary",
              "addendum")


@register("note.signed", 1)
class NoteSignedV1(Schema):
    note_id = _id
    patient_id = _id
    author_id = _id
    discipline = _discipline
    kind = fields.String(required=True, validate=validate.OneOf(NOTE_KINDS))
    signed_at = fields.AwareDateTime(required=True)
    measures = fields.Dict(keys=fields.String(validate=validate.Length(max=40)),
                           values=fields.Float(), load_default=dict)
    notify = fields.List(fields.String(validate=validate.Length(max=64)), load_default=list)
    # Added later, optional (older events have neither): the item scores of instruments
    # answered item by item (today PHQ-9: nine integers 0-3), numbers only, never text;
    # and whether the note is of a sensitive discipline (NOTES_SENSITIVE_DISCIPLINES), so
    # a reader shows its item answers only once the author shared it (note.shared).
    items = fields.Dict(keys=fields.String(validate=validate.OneOf(("phq9",))),
                        values=fields.List(fields.Integer(validate=validate.Range(0, 3)),
                                           validate=validate.Length(equal=9)),
                        load_default=dict)
    sensitive = fields.Boolean(load_default=False)


@register("note.amended", 1)
class NoteAmendedV1(Schema):
    note_id = _id
    amends_note_id = _id
    patient_id = _id
    author_id = _id
    discipline = _discipline
    signed_at = fields.AwareDateTime(required=True)
    notify = fields.List(fields.String(validate=validate.Length(max=64)), load_default=list)


@register("note.entered_in_error", 1)
class NoteEnteredInErrorV1(Schema):
    note_id = _id
    patient_id = _id
    by = _id
    at = fields.AwareDateTime(required=True)


@register("note.shared", 1)
class NoteSharedV1(Schema):
    """A sensitive note's author shared it with the care team: ids and time, no text."""

    note_id = _id
    patient_id = _id
    by = _id
    at = fields.AwareDateTime(required=True)


@register("patient.safety_alert", 1)
class PatientSafetyAlertV1(Schema):
    """Superseded by v2 (kept so that events already on the topic still read)."""

    alert_id = _id
    patient_id = _id
    note_id = _id
    author_id = _id
    measure = fields.String(required=True, validate=validate.Length(max=40))
    value = fields.Float(required=True)
    raised_at = fields.AwareDateTime(required=True)


# ----------------------------------------------------------------- safety alerts
# A safety alert has a life: raised (again at a higher severity) -> routed to named
# people -> acknowledged with the action taken -> closed; escalated while nobody has
# acknowledged it. The notes service owns that life (and the duty rota that routes it);
# the notifier only delivers to the recipients each event names. Never the note's text,
# nor the free text of an acknowledgement or a hand-raised flag: those stay in notes.
ALERT_SOURCES = ("phq9_item9", "clinician_flag")
ALERT_RECIPIENT_ROLES = ("psychologist", "pain_medicine_lead", "triage_lead",
                         "duty_clinician", "clinical_lead")
ALERT_ACK_ACTIONS = ("risk_assessment", "crisis_plan", "gp_informed",
                     "crisis_team_informed", "other")
ALERT_CLOSE_REASONS = ("risk_managed", "crisis_team_took_over", "raised_in_error",
                       "patient_discharged", "other")


class AlertRecipient(Schema):
    """Who must hear of an alert: a provider id, or a role's id (`role:triage_lead`,
    `role:clinical_lead`) that the notifier's directory knows how to reach."""

    recipient_id = _id
    role = fields.String(required=True, validate=validate.OneOf(ALERT_RECIPIENT_ROLES))


_recipients = fields.List(fields.Nested(AlertRecipient), required=True,
                          validate=validate.Length(min=1, max=20))


@register("patient.safety_alert", 2)
class PatientSafetyAlertV2(Schema):
    """Raised, or raised again at a higher severity (each a new event: notify again)."""

    alert_id = _id
    patient_id = _id
    note_id = fields.String(load_default=None, allow_none=True,
                            validate=validate.Length(min=1, max=64))
    source = fields.String(required=True, validate=validate.OneOf(ALERT_SOURCES))
    severity = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=3))
    raised_by = _id
    raised_at = fields.AwareDateTime(required=True)
    recipients = _recipients


@register("patient.safety_alert_escalated", 1)
class PatientSafetyAlertEscalatedV1(Schema):
    """Nobody acknowledged within SAFETY_ACK_MINUTES: the n-th escalation, repeated each
    interval until someone does."""

    alert_id = _id
    patient_id = _id
    escalation = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    severity = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=3))
    raised_at = fields.AwareDateTime(required=True)
    escalated_at = fields.AwareDateTime(required=True)
    recipients = _recipients


@register("patient.safety_alert_acknowledged", 1)
class PatientSafetyAlertAcknowledgedV1(Schema):
    alert_id = _id
    patient_id = _id
    acknowledged_by = _id
    action = fields.String(required=True, validate=validate.OneOf(ALERT_ACK_ACTIONS))
    acknowledged_at = fields.AwareDateTime(required=True)
    recipients = fields.List(fields.Nested(AlertRecipient), load_default=list)


@register("patient.safety_alert_closed", 1)
class PatientSafetyAlertClosedV1(Schema):
    alert_id = _id
    patient_id = _id
    closed_by = _id
    reason = fields.String(required=True, validate=validate.OneOf(ALERT_CLOSE_REASONS))
    closed_at = fields.AwareDateTime(required=True)


@register("patient.break_glass", 1)
class PatientBreakGlassV1(Schema):
    """A clinician outside the care team opened a patient's notes in an emergency; for
    admins to review. The reason stays in the notes service (it is free text)."""

    access_id = _id
    patient_id = _id
    actor_id = _id
    discipline = fields.String(load_default=None, allow_none=True,
                               validate=validate.OneOf(DISCIPLINES))
    opened_at = fields.AwareDateTime(required=True)
    expires_at = fields.AwareDateTime(required=True)
