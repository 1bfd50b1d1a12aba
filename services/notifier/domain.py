"""The notifier's rules, pure: which event tells whom, on which channel, with which words,
and when each appointment's reminders fall due. No Flask, SQLAlchemy or Kafka here.

The consumer only *plans* (this module's `plan`); delivery happens later in the delivery
loop, so a slow or broken channel never holds up the event stream.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from shared.errors import InvalidInput

CHANNELS = ("email", "sms", "in_app")
STATUSES = ("pending", "sending", "sent", "failed", "cancelled")
TRIAGE_LEAD = "role:triage_lead"
SCHEDULERS = "role:schedulers"


@dataclass(frozen=True)
class Contact:
    """One entry of the recipient directory (built from events, changed over the API)."""

    recipient_id: str
    kind: str  # patient | provider | role
    name: str = ""
    email: str | None = None
    phone: str | None = None
    preferred_channel: str = "email"
    language: str = "en"
    opted_out: frozenset[str] = frozenset()
    known: bool = True  # False: not in the directory yet, reached by in-app meanwhile

    def address(self, channel: str) -> str | None:
        if channel == "email":
            return self.email
        if channel == "sms":
            return self.phone
        return self.recipient_id  # the in-app feed is keyed by recipient

    def channels(self) -> list[str]:
        """The channels to use: the preferred one if it can reach them, else the first
        that can; roles get their email and their in-app feed. Opt-outs always win."""
        usable = [c for c in CHANNELS if c not in self.opted_out and self.address(c)]
        if self.kind == "role":
            return [c for c in ("email", "in_app") if c in usable]
        if self.preferred_channel in usable:
            return [self.preferred_channel]
        return usable[:1]


@dataclass(frozen=True)
class Planned:
    """A notification to deliver: one per (dedupe key, recipient, channel)."""

    dedupe_key: str  # the event id, or a reminder's appointment-and-time key
    recipient_id: str
    channel: str
    template: str
    language: str
    address: str
    subject: str
    body: str
    due_at: datetime
    appointment_id: str | None = None
    provisional: bool = False  # planned for someone not in the directory yet


@dataclass(frozen=True)
class Plan:
    notifications: list[Planned] = field(default_factory=list)
    cancel_reminders_for: list[str] = field(default_factory=list)  # appointment ids


@dataclass(frozen=True)
class Rules:
    """The clinic's configuration of the rules."""

    reminder_offsets: tuple[timedelta, ...] = (timedelta(hours=48), timedelta(hours=2))
    timezone: str = "Europe/London"
    triage_lead: Contact = Contact(TRIAGE_LEAD, "role", "Triage lead")
    schedulers: Contact = Contact(SCHEDULERS, "role", "Schedulers")
    # How long a notification for someone not yet in the directory waits for their
    # contact (events on different topics arrive in no common order).
    unknown_recipient_grace: timedelta = timedelta(seconds=30)


Lookup = Callable[[str], Contact | None]


def parse_offsets(text: str) -> tuple[timedelta, ...]:
    """'48h,2h,30m' -> offsets before an appointment, largest first."""
    units = {"d": "days", "h": "hours", "m": "minutes"}
    out = []
    for part in (p.strip().lower() for p in text.split(",")):
        if not part:
            continue
        if part[-1] not in units or not part[:-1].isdigit():
            raise InvalidInput(f"reminder offset {part!r} is not like 48h, 2h or 30m",
                               field="reminder_offsets")
        out.append(timedelta(**{units[part[-1]]: int(part[:-1])}))
    return tuple(sorted(set(out), reverse=True))


def reminder_times(start: datetime, offsets: Iterable[timedelta], now: datetime
                   ) -> list[tuple[timedelta, datetime]]:
    """When each reminder falls due; those already past are skipped (a visit booked an
    hour ahead gets no 2-hour reminder, the confirmation says it all)."""
    return [(o, start - o) for o in offsets if start - o > now]


def offset_label(offset: timedelta) -> str:
    minutes = int(offset.total_seconds() // 60)
    if minutes % 60:
        return f"{minutes}m"
    return f"{minutes // 60}h"


# --------------------------------------------------------------------------- templates

DISCIPLINE_NAMES = {
    "en": {"pain_medicine": "Pain medicine", "physical_therapy": "Physical therapy",
           "psychology": "Psychology", "acupuncture": "Acupuncture"},
    "fr": {"pain_medicine": "Médecine de la douleur", "physical_therapy": "Kinésithérapie",
           "psychology": "Psychologie", "acupuncture": "Acupuncture"},
}

# (template, language) -> (subject, body); sms and in_app use the body (sms trimmed).
TEMPLATES: dict[tuple[str, str], tuple[str, str]] = {
    ("referral_received", "en"): (
        "New referral {referral_id} to triage",
        "A new referral ({referral_id}, condition: {condition}) is waiting for triage."),
    ("itinerary_booked", "en"): (
        "Your appointments at the pain clinic",
        "{greeting}\n\nYour care plan is booked. Your visits:\n{visits}\n\n"
        "What to bring:\n{what_to_bring}\n\nItinerary {itinerary_id}."),
    ("itinerary_booked", "fr"): (
        "Vos rendez-vous au centre de la douleur",
        "{greeting}\n\nVotre parcours de soins est réservé. Vos rendez-vous :\n"
        "{visits}\n\nÀ apporter :\n{what_to_bring}\n\nItinéraire {itinerary_id}."),
    ("appointment_cancelled", "en"): (
        "Appointment cancelled: {discipline} on {date} at {time}",
        "The {discipline} appointment on {date} at {time} ({appointment_id}) is cancelled."),
    ("appointment_cancelled", "fr"): (
        "Rendez-vous annulé : {discipline} le {date} à {time}",
        "Le rendez-vous de {discipline} du {date} à {time} ({appointment_id}) est annulé."),
    ("appointment_rescheduled", "en"): (
        "Appointment moved: {discipline} now on {date} at {time}",
        "The {discipline} appointment ({appointment_id}) moved from {previous_date} at "
        "{previous_time} to {date} at {time}{room}."),
    ("appointment_rescheduled", "fr"): (
        "Rendez-vous déplacé : {discipline} le {date} à {time}",
        "Le rendez-vous de {discipline} ({appointment_id}) passe du {previous_date} à "
        "{previous_time} au {date} à {time}{room}."),
    ("appointment_reminder", "en"): (
        "Reminder: {discipline} on {date} at {time}",
        "Reminder: your {discipline} appointment is on {date} at {time}{room}."),
    ("appointment_reminder", "fr"): (
        "Rappel : {discipline} le {date} à {time}",
        "Rappel : votre rendez-vous de {discipline} est le {date} à {time}{room}."),
    ("note_signed", "en"): (
        "Note {note_id} signed for patient {patient_id}",
        "A {kind} note ({note_id}) in {discipline} was signed for patient {patient_id} by "
        "{author_id}. Open the care notes to read it."),
    ("waitlist_offered", "en"): (
        "Free {discipline} appointment on {date} at {time}",
        "An earlier {discipline} appointment is free on {date} at {time}. The offer "
        "({waitlist_id}) holds until {expires}."),
    ("waitlist_offered", "fr"): (
        "Un rendez-vous de {discipline} est libre le {date} à {time}",
        "Un rendez-vous de {discipline} plus tôt est libre le {date} à {time}. L'offre "
        "({waitlist_id}) tient jusqu'au {expires}."),
    ("itinerary_unplaceable", "en"): (
        "Itinerary could not be placed for patient {patient_id}",
        "No itinerary could be placed for patient {patient_id} (referral {referral_id}):\n"
        "{reasons}"),
}

GREETING = {"en": ("Hello {name},", "Hello,"), "fr": ("Bonjour {name},", "Bonjour,")}
# Channel-specific wording where the generic one does not fit: (template, lang, channel).
CHANNEL_TEMPLATES: dict[tuple[str, str, str], tuple[str, str]] = {
    ("itinerary_booked", "en", "sms"): (
        "", "Pain clinic: your visits are booked.\n{visits}\nBring: {bring_short}"),
    ("itinerary_booked", "fr", "sms"): (
        "", "Centre de la douleur : vos rendez-vous.\n{visits}\nÀ apporter : {bring_short}"),
}
SMS_VISIT_LINE = {"en": "{short_date} {time} {discipline}, {room}",
                  "fr": "{short_date} {time} {discipline}, {room}"}
VISIT_LINE = {
    "en": "- {date} {time}-{end}: {discipline} with {provider} in {room}",
    "fr": "- {date} {time}-{end} : {discipline} avec {provider}, salle {room}",
}
SMS_LIMIT = 1530  # ten concatenated SMS parts


def language_of(language: str | None) -> str:
    """The patient's language where we have words for it, English otherwise."""
    lang = (language or "en").lower()[:2]
    return lang if lang in DISCIPLINE_NAMES else "en"


def render(template: str, language: str, channel: str, context: Mapping[str, Any]
           ) -> tuple[str, str]:
    """Subject and body of one notification, in the language asked for if the template
    exists in it, else in English."""
    lang = language if (template, language) in TEMPLATES else "en"
    subject, body = CHANNEL_TEMPLATES.get((template, lang, channel)) or TEMPLATES[(template, lang)]
    subject, body = subject.format(**context), body.format(**context)
    if channel == "sms" and len(body) > SMS_LIMIT:
        body = body[:SMS_LIMIT - 1] + "…"
    return subject, body


class _When:
    """Formats instants in the clinic's time zone."""

    def __init__(self, tz: str) -> None:
        self.tz = ZoneInfo(tz)

    def date(self, at: str | datetime) -> str:
        return self._local(at).strftime("%a %d %b %Y")

    def short_date(self, at: str | datetime) -> str:
        return self._local(at).strftime("%d/%m")

    def time(self, at: str | datetime) -> str:
        return self._local(at).strftime("%H:%M")

    def _local(self, at: str | datetime) -> datetime:
        value = datetime.fromisoformat(at) if isinstance(at, str) else at
        return value.astimezone(self.tz)


def _parse(at: str | datetime) -> datetime:
    return datetime.fromisoformat(at) if isinstance(at, str) else at


# ---------------------------------------------------------------------------- the rules

class _Planner:
    def __init__(self, event_id: str, event_type: str, payload: Mapping[str, Any],
                 lookup: Lookup, rules: Rules, now: datetime) -> None:
        self.event_id, self.event_type, self.p = event_id, event_type, payload
        self.lookup, self.rules, self.now = lookup, rules, now
        self.when = _When(rules.timezone)
        self.out: list[Planned] = []

    def contact(self, recipient_id: str, kind: str) -> Contact:
        """Someone we know nothing about yet still gets their in-app feed: nothing is
        dropped for want of an address."""
        return self.lookup(recipient_id) or Contact(recipient_id, kind,
                                                    preferred_channel="in_app", known=False)

    def tell(self, who: Contact, template: str, context: dict[str, Any], *,
             dedupe_key: str | None = None, due_at: datetime | None = None,
             appointment_id: str | None = None) -> None:
        lang = language_of(who.language)
        due_at = due_at or self.now
        if not who.known:
            due_at = max(due_at, self.now + self.rules.unknown_recipient_grace)
        for channel in who.channels():
            ctx = self._localise(context, lang, channel)
            named, anonymous = GREETING[lang]
            ctx["greeting"] = named.format(name=who.name) if who.name else anonymous
            subject, body = render(template, lang, channel, ctx)
            self.out.append(Planned(
                dedupe_key=dedupe_key or self.event_id, recipient_id=who.recipient_id,
                channel=channel, template=template, language=lang,
                address=who.address(channel) or who.recipient_id, subject=subject, body=body,
                due_at=due_at, appointment_id=appointment_id, provisional=not who.known))

    @staticmethod
    def _localise(context: dict[str, Any], lang: str, channel: str) -> dict[str, Any]:
        ctx = dict(context)
        if "discipline" in ctx:
            ctx["discipline"] = DISCIPLINE_NAMES[lang].get(ctx["discipline"], ctx["discipline"])
        if "visit_list" in ctx:
            line = SMS_VISIT_LINE[lang] if channel == "sms" else VISIT_LINE[lang]
            ctx["visits"] = "\n".join(
                line.format(**{**v, "discipline": DISCIPLINE_NAMES[lang].get(
                    v["discipline"], v["discipline"])}) for v in ctx.pop("visit_list"))
        return ctx

    def visit_context(self, v: Mapping[str, Any]) -> dict[str, Any]:
        room = v.get("room_name") or v.get("room_id") or ""
        return {"appointment_id": v.get("appointment_id") or "", "discipline": v["discipline"],
                "date": self.when.date(v["start"]), "time": self.when.time(v["start"]),
                "end": self.when.time(v["end"]), "provider": v.get("provider_name")
                or v.get("provider_id", ""), "room": room or "to be confirmed",
                "room_suffix": f", room {room}" if room else "",
                "short_date": self.when.short_date(v["start"])}

    def reminders(self, visit: Mapping[str, Any], patient: Contact, fallback_key: str) -> None:
        appointment_id = visit.get("appointment_id") or fallback_key
        start = _parse(visit["start"])
        ctx = self.visit_context(visit)
        ctx["room"] = ctx.pop("room_suffix")
        for offset, due in reminder_times(start, self.rules.reminder_offsets, self.now):
            key = f"reminder:{appointment_id}:{start.isoformat()}:{offset_label(offset)}"
            self.tell(patient, "appointment_reminder", ctx, dedupe_key=key[:200], due_at=due,
                      appointment_id=appointment_id)

    # one method per event type ------------------------------------------------------

    def referral_received(self) -> None:
        self.tell(self.rules.triage_lead, "referral_received",
                  {"referral_id": self.p["referral_id"], "condition": self.p["condition"]})

    def itinerary_booked(self) -> None:
        patient = self.contact(self.p["patient_id"], "patient")
        visits = sorted(self.p["visits"], key=lambda v: _parse(v["start"]))
        bring = self.p.get("what_to_bring") or []
        self.tell(patient, "itinerary_booked", {
            "itinerary_id": self.p["itinerary_id"],
            "visit_list": [self.visit_context(v) for v in visits],
            "what_to_bring": "\n".join(f"- {b}" for b in bring) or "-",
            "bring_short": "; ".join(bring) or "-"})
        for i, visit in enumerate(visits):
            self.reminders(visit, patient, f"{self.p['itinerary_id']}#{i}")

    def appointment_booked(self) -> None:
        self.reminders(self.p, self.contact(self.p["patient_id"], "patient"),
                       self.p["appointment_id"])

    def appointment_cancelled(self) -> None:
        ctx = self.visit_context(self.p)
        self.tell(self.contact(self.p["patient_id"], "patient"), "appointment_cancelled", ctx)
        self.tell(self.contact(self.p["provider_id"], "provider"), "appointment_cancelled", ctx)

    def appointment_rescheduled(self) -> None:
        ctx = self.visit_context(self.p)
        ctx["room"] = ctx.pop("room_suffix")
        ctx["previous_date"] = self.when.date(self.p["previous_start"])
        ctx["previous_time"] = self.when.time(self.p["previous_start"])
        patient = self.contact(self.p["patient_id"], "patient")
        self.tell(patient, "appointment_rescheduled", ctx)
        providers = [self.p["provider_id"]]
        previous = self.p.get("previous_provider_id")
        if previous and previous not in providers:
            providers.append(previous)
        for provider_id in providers:
            self.tell(self.contact(provider_id, "provider"), "appointment_rescheduled", ctx)
        self.reminders(self.p, patient, self.p["appointment_id"])

    def note_signed(self) -> None:
        """The rest of the care team, by id only: never a word of the note itself."""
        ctx = {k: self.p[k] for k in ("note_id", "patient_id", "author_id", "discipline",
                                      "kind")}
        for provider_id in dict.fromkeys(self.p.get("notify") or []):
            if provider_id != self.p["author_id"]:
                self.tell(self.contact(provider_id, "provider"), "note_signed", ctx)

    def waitlist_offered(self) -> None:
        ctx = self.visit_context(self.p)
        ctx["waitlist_id"] = self.p["waitlist_id"]
        ctx["expires"] = (f"{self.when.date(self.p['offer_expires_at'])} "
                          f"{self.when.time(self.p['offer_expires_at'])}")
        self.tell(self.contact(self.p["patient_id"], "patient"), "waitlist_offered", ctx)

    def itinerary_unplaceable(self) -> None:
        self.tell(self.rules.schedulers, "itinerary_unplaceable", {
            "patient_id": self.p["patient_id"], "referral_id": self.p.get("referral_id") or "-",
            "reasons": "\n".join(f"- {r}" for r in self.p["reasons"])})


HANDLED_EVENTS = ("referral.received", "itinerary.booked", "appointment.booked",
                  "appointment.cancelled", "appointment.rescheduled", "note.signed",
                  "waitlist.offered", "itinerary.unplaceable")


def plan(event_id: str, event_type: str, payload: Mapping[str, Any], lookup: Lookup,
         rules: Rules, now: datetime) -> Plan:
    """What an event means for the notifier: the notifications to deliver and the
    reminders that no longer hold."""
    planner = _Planner(event_id, event_type, payload, lookup, rules, now)
    cancel: list[str] = []
    if event_type in ("appointment.cancelled", "appointment.rescheduled"):
        cancel.append(payload["appointment_id"])
    method = getattr(planner, event_type.replace(".", "_"), None)
    if method is not None and event_type in HANDLED_EVENTS:
        method()
    return Plan(planner.out, cancel)


def retry_delay(attempts: int, base_seconds: float, cap_seconds: float = 600.0) -> timedelta:
    """Exponential backoff after the n-th failed attempt (1 -> base, 2 -> 2*base, ...)."""
    return timedelta(seconds=min(cap_seconds, base_seconds * 2 ** max(0, attempts - 1)))
