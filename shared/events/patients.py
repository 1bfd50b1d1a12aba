"""Events of the patient registry (produced by the referrals service).

Two topics, so that personal data travels only where it must:
- `patients.events` (keyed by the surviving patient id): `patient.linked` and
  `patient.unlinked`. Ids only: every service applies them to its `patient_links`
  table (shared.patient_links) and reads a linked patient's records together.
- `patients.contacts` (keyed by patient id): `patient.contact_changed`. **Personal
  data**: name, date of birth, email and phone. Its consumers need them: the notifier
  (whom to tell and how) and the FHIR gateway (the Patient resource). The topic is
  protected: in the production overlay only those two services' Kafka users may read it
  (deploy/k8s/overlays/production/kafka-users.yaml), and no other event carries
  contact details.
"""

from marshmallow import Schema, fields, validate

from shared.events.envelope import register
from shared.events.vocabulary import CHANNELS

_id = fields.String(required=True, validate=validate.Length(min=1, max=64))


@register("patient.linked", 1)
class PatientLinkedV1(Schema):
    """A scheduler decided two registrations are one person: `linked_patient_id`'s
    records are now read as `patient_id`'s. Nothing is moved, so an unlink loses nothing."""

    patient_id = _id
    linked_patient_id = _id
    task_id = fields.String(load_default=None, allow_none=True,
                            validate=validate.Length(max=64))
    by = _id
    at = fields.AwareDateTime(required=True)


@register("patient.unlinked", 1)
class PatientUnlinkedV1(Schema):
    """A link undone: each patient's records are their own again."""

    patient_id = _id
    linked_patient_id = _id
    by = _id
    reason = fields.String(load_default="", validate=validate.Length(max=1000))
    at = fields.AwareDateTime(required=True)


@register("patient.contact_changed", 1)
class PatientContactChangedV1(Schema):
    """The patient's current details (personal data: protected topic). `as_of` is when
    they were last changed; a consumer keeps the newest and ignores an older one."""

    patient_id = _id
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    date_of_birth = fields.Date(required=True)
    email = fields.Email(load_default=None, allow_none=True)
    phone = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=40))
    preferred_channel = fields.String(load_default="email", validate=validate.OneOf(CHANNELS))
    language = fields.String(load_default="en", validate=validate.Length(min=2, max=10))
    as_of = fields.AwareDateTime(required=True)
    source = fields.String(required=True, validate=validate.Length(min=1, max=200))
