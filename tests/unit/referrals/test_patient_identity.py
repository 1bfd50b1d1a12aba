"""The registry's pure rules: NHS numbers, identifiers in their systems, who may be the
same patient, and which details are newer."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from services.referrals.patients import domain
from services.referrals.patients.domain import Contacts, Identifier
from shared.errors import Conflict, InvalidInput

T0 = datetime(2026, 12, 1, 9, tzinfo=UTC)


def ann(**changes: object) -> Contacts:
    base = dict(name="Ann Whitfield", date_of_birth=date(1958, 7, 14), email=None,
                phone="+44 7700 900123", postcode="SW1A 1AA", preferred_channel="email",
                language="en", as_of=T0, source="referral:r-1")
    base.update(changes)
    return Contacts(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize("number", ["9434765919", "943 476 5919", "943-476-5919",
                                    "4010232137"])
def test_valid_nhs_numbers_pass_their_check_digit(number: str) -> None:
    assert domain.nhs_number(number) == number.replace(" ", "").replace("-", "")


@pytest.mark.parametrize("number", ["9434765918", "943476591", "94347659190", "abcdefghij",
                                    "1000000010"])  # the last: check digit 10, never valid
def test_invalid_nhs_numbers_are_refused_naming_the_field(number: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        domain.nhs_number(number, field="patient.identifiers.0.value")
    assert "patient.identifiers.0.value" in refused.value.errors


def test_a_local_id_is_qualified_by_the_referrers_system_and_an_mrn_by_its_assigner() -> None:
    found = domain.identifiers("123", domain.referrer_system(None, "Elm Street, Surgery"), [
        {"system": "mrn", "value": "M-1", "assigner": "St Mary's"},
        {"system": "nhs_number", "value": "943 476 5919"}])
    assert found == [Identifier("local:elm street surgery", "123"),
                     Identifier("mrn:st mary's", "M-1"), Identifier("nhs_number", "9434765919")]
    assert domain.referrer_system("EMIS-1234", "Elm") == "emis-1234"


def test_likeness_needs_name_and_birth_date_and_postcode_or_phone() -> None:
    assert domain.possibly_same(ann(), ann(phone="07700 900123", postcode=None))
    assert domain.possibly_same(ann(), ann(phone=None, postcode="sw1a1aa"))
    assert not domain.possibly_same(ann(), ann(phone=None, postcode=None))
    assert not domain.possibly_same(ann(), ann(date_of_birth=date(1958, 7, 15)))
    assert not domain.possibly_same(ann(), ann(name="Anne Whitfield"))


def test_older_details_never_replace_newer_ones() -> None:
    current = ann(as_of=T0)
    assert not domain.newer(current, ann(as_of=T0 - timedelta(minutes=1), email="x@y.org"))
    assert domain.newer(current, ann(as_of=T0 + timedelta(minutes=1)))
    assert domain.newer(None, ann())
    assert not domain.changed(current, ann(as_of=T0 + timedelta(days=1), source="user:u"))


def test_a_task_is_settled_once_and_a_patient_is_linked_once() -> None:
    assert domain.settle(domain.OPEN, "link") == domain.LINKED
    with pytest.raises(Conflict):
        domain.settle(domain.LINKED, "keep_apart")
    with pytest.raises(Conflict):
        domain.check_link("a", "b", {"a": None, "b": "c"})
    with pytest.raises(InvalidInput):
        domain.check_link("a", "a", {})
