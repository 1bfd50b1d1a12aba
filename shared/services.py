"""The one registry of PainCare's services: name, port, the topic each produces to, the
topics it reads, its database and its processes.

The launcher (`make up`, the end-to-end tests), the topic list (`shared/topics.py`), the
proofs (security matrices, hostile events, faults, fuzz) and the deployment checks all
read it, so that a service renamed or lost fails them rather than dropping out of them
silently: `require_packages()` says which registered service has no package.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The topics, by producing domain. Keys are the aggregate's id (referral, patient) so that
# one patient's events stay in order. `shared/topics.py` names them for the code.
REFERRALS_TOPIC = "referrals.events"
SCHEDULING_TOPIC = "scheduling.events"
NOTES_TOPIC = "notes.events"
NOTIFICATIONS_TOPIC = "notifier.events"
SYSTEM_TOPIC = "system.events"  # every worker's ops pings (`shared/ops.py`)
FHIR_TOPIC = "fhir.events"  # a subscribed referral's Task changed (REST hooks)
# The patient registry's (referrals): links, ids only; and contacts, personal data on a
# protected topic that only the notifier and the FHIR gateway may read in production.
PATIENTS_TOPIC = "patients.events"
PATIENT_CONTACTS_TOPIC = "patients.contacts"


@dataclass(frozen=True)
class Service:
    """One service as the launcher, the proofs and the deployment know it."""

    name: str
    port: int
    topic: str | None = None          # the domain topic its outbox publishes to
    subscribes: tuple[str, ...] = ()  # the topics its worker reads (pings aside)
    database: bool = True             # owns a database (`<NAME>_DATABASE_URL`)
    worker: bool = True               # runs a worker: consumers, outbox relay, a DLQ
    also_produces: tuple[str, ...] = ()  # further topics its outbox publishes to

    @property
    def database_env(self) -> str | None:
        """The variable naming its database (`DATABASE_URL` is everyone's fallback)."""
        return f"{self.name.upper()}_DATABASE_URL" if self.database else None

    @property
    def package(self) -> Path:
        return ROOT / "services" / self.name


REGISTRY: tuple[Service, ...] = (
    Service("referrals", 8001, REFERRALS_TOPIC, (SCHEDULING_TOPIC,),
            also_produces=(PATIENTS_TOPIC, PATIENT_CONTACTS_TOPIC)),
    Service("scheduling", 8002, SCHEDULING_TOPIC, (REFERRALS_TOPIC, PATIENTS_TOPIC)),
    Service("notes", 8003, NOTES_TOPIC, (REFERRALS_TOPIC, SCHEDULING_TOPIC, PATIENTS_TOPIC)),
    Service("notifier", 8004, NOTIFICATIONS_TOPIC,
            (REFERRALS_TOPIC, SCHEDULING_TOPIC, NOTES_TOPIC, FHIR_TOPIC, PATIENTS_TOPIC,
             PATIENT_CONTACTS_TOPIC)),
    # produces no clinic events: its outbox carries only ops pings
    Service("dashboard", 8005, SYSTEM_TOPIC,
            (REFERRALS_TOPIC, SCHEDULING_TOPIC, NOTIFICATIONS_TOPIC, NOTES_TOPIC)),
    # pages over the other services' APIs: no database, no consumers, no outbox
    Service("console", 8006, database=False, worker=False),
    # its own events only tell a referring system's Subscription that a Task changed
    # (referrals produces the clinic's events for what comes in here)
    Service("fhir", 8007, FHIR_TOPIC, (REFERRALS_TOPIC, SCHEDULING_TOPIC, NOTES_TOPIC,
                                       PATIENTS_TOPIC, PATIENT_CONTACTS_TOPIC)),
)
BY_NAME: dict[str, Service] = {s.name: s for s in REGISTRY}
NAMES: tuple[str, ...] = tuple(BY_NAME)
PORTS: dict[str, int] = {s.name: s.port for s in REGISTRY}
WITH_WORKER: tuple[str, ...] = tuple(s.name for s in REGISTRY if s.worker)
WITH_DATABASE: tuple[str, ...] = tuple(s.name for s in REGISTRY if s.database)


def service(name: str) -> Service:
    """The registered service of that name; KeyError names the registry for a stranger."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"{name!r} is not in shared/services.py's REGISTRY") from None


def missing_packages() -> list[str]:
    """Registered services whose package (app.py, and worker.py where it has a worker)
    is not in this checkout: each is a failure for the proofs, never a skip."""
    gaps = []
    for s in REGISTRY:
        files = ["app.py"] + (["worker.py"] if s.worker else []) + \
            (["wiring.py"] if s.database else [])
        gaps += [f"services/{s.name}/{f}" for f in files if not (s.package / f).exists()]
    return gaps


def unregistered_packages() -> list[str]:
    """Service packages (a directory with app.py) that the registry does not list."""
    return sorted(p.parent.name for p in (ROOT / "services").glob("*/app.py")
                  if p.parent.name not in BY_NAME)


def require_packages() -> tuple[str, ...]:
    """Every registered service, after checking each has its package and nothing else
    does: what the proofs iterate, so they fail instead of shrinking."""
    problems = missing_packages()
    problems += [f"services/{n} has an app.py but is not registered in shared/services.py"
                 for n in unregistered_packages()]
    if problems:
        raise RuntimeError("the service registry and the checkout disagree: "
                           + "; ".join(problems))
    return NAMES
