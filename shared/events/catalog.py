"""Loads every domain's event schemas into the registry.

Each domain keeps its payload schemas in its own module here (`referrals.py`,
`scheduling.py`, `notes.py`, `notifications.py`, `patients.py`, `system.py`, `fhir.py`),
so producer and consumer share one definition. Each module's docstring is its part of the
catalogue: its topic, its key, and any personal data a payload holds and why
(`patients.py`: `patient.contact_changed` on the protected `patients.contacts`). A missing
module is an error, never a skip: a consumer that could not validate a domain's events
would dead-letter every one of them.
"""

from importlib import import_module

DOMAINS = ("system", "referrals", "scheduling", "notes", "notifications", "patients",
           "fhir")


def load(domains: tuple[str, ...] = DOMAINS) -> None:
    """Import each domain's schema module (registering its schemas); raises
    ModuleNotFoundError naming the first one that is missing."""
    for module in domains:
        import_module(f"shared.events.{module}")


load()
