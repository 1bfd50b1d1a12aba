"""Loads every domain's event schemas into the registry.

Each domain keeps its payload schemas in its own module here (`referrals.py`,
`scheduling.py`, `notes.py`, `notifications.py`, `patients.py`, `system.py`), so
producer and consumer share one definition. Each module's docstring is its part of the
catalogue: its topic, its key, and any personal data a payload holds and why
(`patients.py`: `patient.contact_changed` on the protected `patients.contacts`).
"""

from importlib import import_module

for _module in ("system", "referrals", "scheduling", "notes", "notifications",
                "patients"):
    try:
        import_module(f"shared.events.{_module}")
    except ModuleNotFoundError as exc:  # a domain not written yet
        if exc.name != f"shared.events.{_module}":
            raise
