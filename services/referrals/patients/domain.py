"""The patient registry's rules, pure: identifiers and their systems (the NHS number's
modulus-11 check), who is the same patient on intake, which contact details are newer,
and what a possible-same task may do.

Nothing here touches Flask, SQLAlchemy or Kafka, and nothing reads the clock.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from shared.errors import Conflict, InvalidInput

NHS_NUMBER = "nhs_number"
MRN = "mrn"
LOCAL = "local"  # a referrer's own id for the patient, qualified by the referrer's system
SYSTEMS = (NHS_NUMBER, MRN)

# A possible-same task's life: open until a scheduler links the two or keeps them apart.
OPEN = "open"
LINKED = "linked"
KEPT_APART = "kept_apart"


@dataclass(frozen=True)
class Identifier:
    """An id in a system: 'nhs_number' and the number, 'mrn' and the hospital that
    assigned it, or 'local:<referrer's system>' and the referrer's own id. The same
    system and value is the same patient; a bare value never is."""

    system: str
    value: str

    @property
    def kind(self) -> str:
        return self.system.split(":", 1)[0]


@dataclass(frozen=True)
class Contacts:
    """Who the patient is and how to reach them, as of a time, and who said so."""

    name: str
    date_of_birth: date
    email: str | None
    phone: str | None
    postcode: str | None
    preferred_channel: str
    language: str
    as_of: datetime
    source: str  # "referral:<id>" or "user:<subject>"


def nhs_number(raw: str, *, field: str = "patient.identifiers") -> str:
    """The ten digits of a valid NHS number (spaces and dashes allowed), else 422 naming
    the field. The check digit: 11 minus the weighted sum (weights 10..2) mod 11, where
    11 means 0 and 10 means the number is invalid."""
    digits = re.sub(r"[\s-]", "", raw)
    if not re.fullmatch(r"\d{10}", digits):
        raise InvalidInput("an NHS number has ten digits", field=field)
    total = sum(int(d) * w for d, w in zip(digits[:9], range(10, 1, -1), strict=True))
    check = 11 - total % 11
    check = 0 if check == 11 else check
    if check == 10 or check != int(digits[9]):
        raise InvalidInput("not a valid NHS number (its check digit does not match)",
                           field=field)
    return digits


def _norm(text: str) -> str:
    return " ".join(text.casefold().replace(",", " ").split())


def referrer_system(declared: str | None, organisation: str) -> str:
    """Whose numbering a referrer's local id belongs to: the system the referrer names,
    else its organisation (two GPs of one practice share its patient list)."""
    return _norm(declared) if declared and declared.strip() else _norm(organisation)


def identifiers(local_id: str, referrer_sys: str, extra: Iterable[dict[str, str | None]],
                ) -> list[Identifier]:
    """The identifiers a referral names for its patient: the referrer's local id in the
    referrer's system, and any NHS number or MRN (an MRN needs its assigning authority).
    A bad one is 422 naming the field; nothing is registered."""
    found = [Identifier(f"{LOCAL}:{referrer_sys}", local_id.strip())]
    for i, ident in enumerate(extra):
        where = f"patient.identifiers.{i}"
        system, value = ident.get("system"), (ident.get("value") or "").strip()
        if system == NHS_NUMBER:
            found.append(Identifier(NHS_NUMBER, nhs_number(value, field=f"{where}.value")))
        elif system == MRN:
            assigner = _norm(ident.get("assigner") or "")
            if not assigner:
                raise InvalidInput("an MRN needs the hospital that assigned it",
                                   field=f"{where}.assigner")
            found.append(Identifier(f"{MRN}:{assigner}", value))
        else:
            raise InvalidInput(f"unknown identifier system {system!r}", field=f"{where}.system")
    return list(dict.fromkeys(found))


def postcode(raw: str | None) -> str | None:
    return re.sub(r"\s", "", raw).upper() if raw else None


def phone_digits(raw: str | None) -> str | None:
    """The last ten digits: '+44 7700 900123' and '07700 900123' are one phone."""
    digits = re.sub(r"\D", "", raw or "")
    return digits[-10:] if len(digits) >= 6 else None


def possibly_same(a: Contacts, b: Contacts) -> bool:
    """A demographic likeness worth a person's look, never a merge: the same name and
    date of birth, and the same postcode or the same phone."""
    if _norm(a.name) != _norm(b.name) or a.date_of_birth != b.date_of_birth:
        return False
    same_postcode = postcode(a.postcode) is not None and postcode(a.postcode) == postcode(
        b.postcode)
    same_phone = phone_digits(a.phone) is not None and phone_digits(a.phone) == phone_digits(
        b.phone)
    return same_postcode or same_phone


def newer(current: Contacts | None, incoming: Contacts) -> bool:
    """Whether incoming details replace the current ones: only if they are not older (an
    older referral, arriving late, never overwrites a newer change)."""
    return current is None or incoming.as_of >= current.as_of


def changed(current: Contacts | None, incoming: Contacts) -> bool:
    """Whether anything the clinic uses differs (provenance and time aside)."""
    if current is None:
        return True
    keys = ("name", "date_of_birth", "email", "phone", "postcode", "preferred_channel",
            "language")
    return any(getattr(current, k) != getattr(incoming, k) for k in keys)


def check_reachable(c: Contacts) -> None:
    """The channel the patient prefers must have its address (422 naming it)."""
    if c.preferred_channel == "email" and not c.email:
        raise InvalidInput("the patient prefers email but has no email address", field="email")
    if c.preferred_channel == "sms" and not c.phone:
        raise InvalidInput("the patient prefers SMS but has no phone number", field="phone")


def settle(status: str, decision: str) -> str:
    """A possible-same task is settled once: link or keep apart."""
    if status != OPEN:
        raise Conflict(f"this possible-same task is already {status}",
                       errors={"status": [status]})
    return {"link": LINKED, "keep_apart": KEPT_APART}[decision]


def check_link(surviving: str, other: str, linked_to: dict[str, str | None]) -> None:
    """Two patients may be linked if both are themselves (not already linked into
    another) and different."""
    if surviving == other:
        raise InvalidInput("a patient cannot be linked to themself", field="patient_id")
    for pid in (surviving, other):
        if linked_to.get(pid):
            raise Conflict(f"patient {pid} is already linked to {linked_to[pid]}",
                           errors={"patient_id": ["already linked"]})
