"""The gateway's read model applies the registry's links: a search by patient finds the
resources of the patients linked with them, and after the unlink only their own."""

from __future__ import annotations

from datetime import UTC, datetime

from services.fhir.db import Resources, Search, patient_links
from services.fhir.wiring import build_runtime
from shared.events import new_event
from shared.patient_links import handlers

AT = datetime(2026, 12, 1, 9, tzinfo=UTC)


def test_a_search_by_patient_follows_links_and_unlinks(settings_for) -> None:
    runtime = build_runtime(settings_for("fhir"))
    runtime.create_schema()
    apply = handlers(patient_links)

    def found(patient: str) -> list[str]:
        with runtime.db.transaction() as s:
            rows, _total = Resources(s).search(Search("ServiceRequest", patient=patient))
            return sorted(r.id for r in rows)

    def event(kind: str):  # type: ignore[no-untyped-def]
        return new_event(kind, {"patient_id": "pat-a", "linked_patient_id": "pat-b",
                                "by": "sam", "at": AT}, producer="referrals")

    try:
        with runtime.db.transaction() as s:
            for patient in ("pat-a", "pat-b"):
                Resources(s).put({"resourceType": "ServiceRequest", "id": f"sr-{patient}"},
                                 at=AT, patient_id=patient)
        assert found("pat-a") == ["sr-pat-a"]
        with runtime.db.transaction() as s:
            apply["patient.linked"](s, event("patient.linked"))
        assert found("pat-a") == found("pat-b") == ["sr-pat-a", "sr-pat-b"]
        with runtime.db.transaction() as s:
            apply["patient.unlinked"](s, event("patient.unlinked"))
        assert (found("pat-a"), found("pat-b")) == (["sr-pat-a"], ["sr-pat-b"])
    finally:
        runtime.db.dispose()
