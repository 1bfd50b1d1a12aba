"""Loads every domain's event schemas into the registry.

Each domain keeps its payload schemas in its own module here (`referrals.py`,
`scheduling.py`, `notes.py`, `notifications.py`, `system.py`, `fhir.py`), so producer and
consumer share one definition.
"""

from importlib import import_module

for _module in ("system", "referrals", "scheduling", "notes", "notifications", "fhir"):
    try:
        import_module(f"shared.events.{_module}")
    except ModuleNotFoundError as exc:  # a domain not written yet
        if exc.name != f"shared.events.{_module}":
            raise
