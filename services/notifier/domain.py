"""The notifier's rules, pure: which event tells whom, on which channel, with which words,
and when each appointment's reminders fall due. No Flask, SQLAlchemy or Kafka here.

Safety alerts are the exception to the usual channel rules: they go to every channel that
can reach a person, whatever their preferred channel or opt-outs (a clinical-safety
exception: a self-harm answer must reach a clinician within minutes), at once, at the top
of the in-app feed.

The consumer only *plans* (this module's `plan`); delivery happens later in the delivery
loop, so a slow or broken channel never holds up the event stream.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from services.notifier import calendar
from shared.errors import InvalidInput

CHANNELS = ("email", "sms", "in_app")
STATUSES = ("pending", "sending", "sent", "failed", "cancelled")
PRIORITIES = ("urgent", "normal")
TRIAGE_LEAD = "role:triage_lead"
SCHEDULERS = "role:schedulers"
CLINICAL_LEAD = "role:clinical_lead"
PRIVACY_OFFICER = "role:privacy_officer"  # PRIVACY_OFFICER_EMAIL: hears of break-glass
# The clinic's duty phone (SAFETY_DUTY_PHONE): one SMS per safety event that names a duty
# clinician, whoever is on duty, on top of the duty clinician's own channels.
DUTY_PHONE = "role:duty_phone"
SAFETY_EVENTS = ("patient.safety_alert", "patient.safety_alert_escalated",
                 "patient.safety_alert_acknowledged", "patient.safety_alert_closed")


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

    def channels(self, *, safety: bool = False) -> list[str]:
        """The channels to use: the preferred one if it can reach them, else the first
        that can; roles get their email and their in-app feed. Opt-outs win, except for
        a safety alert: then every channel that can reach them (clinical-safety
        exception, see the module's docstring)."""
        if safety:
            return [c for c in CHANNELS if self.address(c)]
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
    priority: str = "normal"  # urgent: safety alerts and escalations, first everywhere
    alert_id: str | None = None  # the safety alert it is about (its ack cancels the rest)
    calendar: str | None = None  # an RFC 5545 invitation (emails about visits)


@dataclass(frozen=True)
class AlertSettled:
    """A safety alert acknowledged or closed: what is still pending for it is cancelled
    and its in-app items leave the top of the feeds."""

    alert_id: str
    how: str  # acknowledged | closed
    by: str
    at: datetime


@dataclass(frozen=True)
class Plan:
    notifications: list[Planned] = field(default_factory=list)
    cancel_reminders_for: list[str] = field(default_factory=list)  # appointment ids
    settled: AlertSettled | None = None


@dataclass(frozen=True)
class Rules:
    """The clinic's configuration of the rules."""

    reminder_offsets: tuple[timedelta, ...] = (timedelta(hours=48), timedelta(hours=2))
    timezone: str = "Europe/London"
    triage_lead: Contact = Contact(TRIAGE_LEAD, "role", "Triage lead")
    schedulers: Contact = Contact(SCHEDULERS, "role", "Schedulers")
    clinical_lead: Contact = Contact(CLINICAL_LEAD, "role", "Clinical lead")
    privacy_officer: Contact = Contact(PRIVACY_OFFICER, "role", "Privacy officer")
    duty_phone: str | None = None  # SAFETY_DUTY_PHONE
    console_url: str = "http://127.0.0.1:8006"
    # How long a notification for someone not yet in the directory waits for their
    # contact (events on different topics arrive in no common order).
    unknown_recipient_grace: timedelta = timedelta(seconds=30)
    # Who the visits' calendar invitations come from (ORGANIZER, LOCATION).
    clinic_name: str = "Pain clinic"
    organizer_email: str = "no-reply@paincare.local"


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
        "A new referral ({referral_id}, condition: {condition}) is waiting for triage."
        "{urgency}"),
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
    ("referral_breach_risk", "en"): (
        "Referral {referral_id} may miss its target date ({due_by})",
        "Referral {referral_id} (priority {priority}) is due by {due_by}: {reason}.\n"
        "Open it in PainCare: {link}"),
    ("referral_breach_risk", "fr"): (
        "L'adressage {referral_id} risque de dépasser sa date cible ({due_by})",
        "L'adressage {referral_id} (priorité {priority}) doit être vu avant le {due_by} : "
        "{reason}.\nL'ouvrir dans PainCare : {link}"),
    # Safety alerts: who raised it, when, the patient's name, the severity and a link;
    # never the note's text nor any free text (those stay in the notes service).
    ("safety_alert", "en"): (
        "URGENT safety alert, severity {severity} of 3: open PainCare now",
        "URGENT safety alert for {patient} (severity {severity} of 3): {source}.\n"
        "Raised by {raised_by} on {date} at {time}.\n"
        "Open the patient in PainCare and acknowledge it with the action taken: {link}"),
    ("safety_alert", "fr"): (
        "ALERTE DE SÉCURITÉ urgente, gravité {severity} sur 3 : ouvrez PainCare",
        "ALERTE DE SÉCURITÉ urgente pour {patient} (gravité {severity} sur 3) : {source}.\n"
        "Signalée par {raised_by} le {date} à {time}.\n"
        "Ouvrez le dossier dans PainCare et indiquez la mesure prise : {link}"),
    ("safety_alert_escalated", "en"): (
        "ESCALATION {ordinal}: safety alert unacknowledged for {waited}",
        "{ordinal} escalation: the safety alert for {patient} (severity {severity} of 3) "
        "has waited {waited} without acknowledgement.\n"
        "Raised on {date} at {time}; escalated at {escalated_time}.\n"
        "Open the patient in PainCare and acknowledge it with the action taken: {link}"),
    ("safety_alert_escalated", "fr"): (
        "{ordinal} ESCALADE : alerte de sécurité sans réponse depuis {waited}",
        "{ordinal} escalade : l'alerte de sécurité pour {patient} (gravité {severity} sur "
        "3) attend depuis {waited} sans accusé de réception.\n"
        "Signalée le {date} à {time} ; escaladée à {escalated_time}.\n"
        "Ouvrez le dossier dans PainCare et indiquez la mesure prise : {link}"),
    ("break_glass", "en"): (
        "Break-glass: a patient's notes opened outside the care team",
        "{actor_id} opened the notes of patient {patient_id} through break-glass on "
        "{date} at {time} (access {access_id}, until {until}). The reason given is in the "
        "audit trail.\n{link}"),
    ("break_glass", "fr"): (
        "Bris de glace : dossier ouvert hors de l'équipe de soins",
        "{actor_id} a ouvert le dossier du patient {patient_id} par bris de glace le "
        "{date} à {time} (accès {access_id}, jusqu'à {until}). Le motif est dans la piste "
        "d'audit.\n{link}"),
    ("safety_alert_acknowledged", "en"): (
        "Safety alert acknowledged by {acknowledged_by}",
        "The safety alert for {patient} raised on {date} at {time} was acknowledged by "
        "{acknowledged_by} at {acknowledged_time}: {action}.\n{link}"),
    ("safety_alert_acknowledged", "fr"): (
        "Alerte de sécurité prise en charge par {acknowledged_by}",
        "L'alerte de sécurité pour {patient} signalée le {date} à {time} a été prise en "
        "charge par {acknowledged_by} à {acknowledged_time} : {action}.\n{link}"),
}

SAFETY_SOURCES = {
    "en": {"phq9_item9": "PHQ-9 item 9 (thoughts of self-harm) answered positive",
           "clinician_flag": "a clinician flagged a risk concern"},
    "fr": {"phq9_item9": "item 9 du PHQ-9 (idées d'auto-agression) positif",
           "clinician_flag": "un clinicien a signalé un risque"},
}
ACK_ACTIONS = {
    "en": {"risk_assessment": "risk assessment done", "crisis_plan": "crisis plan made",
           "gp_informed": "GP informed", "crisis_team_informed": "crisis team informed",
           "other": "other action (see the patient's record)"},
    "fr": {"risk_assessment": "évaluation du risque faite", "crisis_plan": "plan de crise établi",
           "gp_informed": "médecin traitant informé",
           "crisis_team_informed": "équipe de crise informée",
           "other": "autre mesure (voir le dossier)"},
}
BREACH_REASONS = {
    "en": {"first_visit_after_due": "its first visit, on {first_visit}, falls after that date",
           "unscheduled_near_due": "it is still unscheduled and that date is near or past"},
    "fr": {"first_visit_after_due": "son premier rendez-vous, le {first_visit}, tombe après",
           "unscheduled_near_due": "il n'est toujours pas planifié et la date approche ou "
                                   "est passée"},
}
PRIORITY_WORDS = {
    "en": {"urgent": "urgent", "soon": "soon", "routine": "routine", None: "not set"},
    "fr": {"urgent": "urgente", "soon": "rapide", "routine": "habituelle", None: "non fixée"},
}
URGENCY_REQUESTED = {"en": " The referrer asked for {priority}{due}.",
                     "fr": " Le médecin adresseur demande une priorité {priority}{due}."}
DUE_BY = {"en": ", to be seen by {date}", "fr": ", à voir avant le {date}"}


def ordinal(n: int, lang: str) -> str:
    """1st, 2nd, 3rd, 11th... / 1re, 2e (the n-th escalation)."""
    if lang == "fr":
        return "1re" if n == 1 else f"{n}e"
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def waited(since: datetime, until: datetime, lang: str = "en") -> str:
    """How long an alert has waited, in words a clinician reads at a glance."""
    minutes = max(0, int((until - since).total_seconds() // 60))
    hours, mins = divmod(minutes, 60)
    if lang == "fr":
        return f"{hours} h {mins:02d}" if hours else f"{mins} min"
    return f"{hours} h {mins} min" if hours else f"{mins} min"

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

    @staticmethod
    def day(on: str | date) -> str:
        """A calendar date (a referral's due date): no time zone to convert."""
        return (date.fromisoformat(on) if isinstance(on, str) else on).strftime("%a %d %b %Y")

    def _local(self, at: str | datetime) -> datetime:
        value = datetime.fromisoformat(at) if isinstance(at, str) else at
        return value.astimezone(self.tz)


def _parse(at: str | datetime) -> datetime:
    return datetime.fromisoformat(at) if isinstance(at, str) else at


# ---------------------------------------------------------------------------- the rules

def alert_v1_as_v2(v1: Mapping[str, Any]) -> dict[str, Any]:
    """A v1 alert (PHQ-9 item 9's score, no routing: it predates the duty rota) read as
    a v2 one for the triage lead alone; item 9's score (1-3) is its severity."""
    return {"alert_id": v1["alert_id"], "patient_id": v1["patient_id"],
            "note_id": v1.get("note_id"), "source": "phq9_item9",
            "severity": min(3, max(1, round(v1["value"]))), "raised_by": v1["author_id"],
            "raised_at": v1["raised_at"],
            "recipients": [{"recipient_id": TRIAGE_LEAD, "role": "triage_lead"}]}


@dataclass(frozen=True)
class AlertHistory:
    """What the notifier already knows of a safety alert (from its own rows)."""

    settled: bool = False  # acknowledged or closed
    raised_at: datetime | None = None
    recipients: tuple[str, ...] = ()  # everyone told of it so far


@dataclass(frozen=True)
class Invite:
    """The visits an email's calendar invitation books, moves or cancels."""

    visits: tuple[Mapping[str, Any], ...]
    method: str  # REQUEST | CANCEL
    sequence: int = 0


class _Planner:
    def __init__(self, event_id: str, event_type: str, payload: Mapping[str, Any],
                 lookup: Lookup, rules: Rules, now: datetime, version: int = 1,
                 alert: AlertHistory = AlertHistory()) -> None:
        self.event_id, self.event_type, self.p = event_id, event_type, payload
        self.lookup, self.rules, self.now, self.version = lookup, rules, now, version
        self.alert_settled, self.alert_raised_at = alert.settled, alert.raised_at
        self.alert_recipients = alert.recipients
        self.when = _When(rules.timezone)
        self.out: list[Planned] = []

    def contact(self, recipient_id: str, kind: str) -> Contact:
        """Someone we know nothing about yet still gets their in-app feed: nothing is
        dropped for want of an address."""
        return self.lookup(recipient_id) or Contact(recipient_id, kind,
                                                    preferred_channel="in_app", known=False)

    def tell(self, who: Contact, template: str, context: dict[str, Any], *,
             dedupe_key: str | None = None, due_at: datetime | None = None,
             appointment_id: str | None = None, alert_id: str | None = None,
             urgent: bool = False, channels: list[str] | None = None,
             invite: Invite | None = None) -> None:
        """Plan one notification per channel. `urgent` (safety alerts, escalations): every
        channel that can reach them, due at once even for someone not in the directory
        yet (their in-app feed gets it now, no grace), first in delivery and feeds.
        `invite`: the visits' calendar invitation, on emails only."""
        lang = language_of(who.language)
        due_at = due_at or self.now
        if not who.known and not urgent:
            due_at = max(due_at, self.now + self.rules.unknown_recipient_grace)
        if channels is None:
            channels = who.channels(safety=urgent)
        for channel in channels:
            ctx = self._localise(context, lang, channel)
            named, anonymous = GREETING[lang]
            ctx["greeting"] = named.format(name=who.name) if who.name else anonymous
            subject, body = render(template, lang, channel, ctx)
            ics = None
            if invite is not None and channel == "email":
                ics = self.calendar(invite, lang, who.address(channel))
            self.out.append(Planned(
                dedupe_key=dedupe_key or self.event_id, recipient_id=who.recipient_id,
                channel=channel, template=template, language=lang,
                address=who.address(channel) or who.recipient_id, subject=subject, body=body,
                due_at=due_at, appointment_id=appointment_id, provisional=not who.known,
                priority="urgent" if urgent else "normal", alert_id=alert_id,
                calendar=ics))

    def calendar(self, invite: Invite, lang: str, attendee: str | None) -> str:
        """The invitation in the reader's words: the same UIDs whatever the language."""
        visits = [calendar.visit_from(v, DISCIPLINE_NAMES[lang].get(v["discipline"],
                                                                    v["discipline"]))
                  for v in invite.visits]
        return calendar.invitation(visits, method=invite.method, sequence=invite.sequence,
                                   now=self.now, clinic=self.rules.clinic_name,
                                   organizer=self.rules.organizer_email, attendee=attendee)

    @staticmethod
    def _localise(context: dict[str, Any], lang: str, channel: str) -> dict[str, Any]:
        ctx = dict(context)
        if "per_language" in ctx:  # words that depend on the reader's language
            ctx.update(ctx.pop("per_language")(lang))
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
        """With the referrer's requested urgency and provisional due date when given."""
        requested, due_by = self.p.get("urgency_requested"), self.p.get("due_by")

        def urgency(lang: str) -> dict[str, str]:
            if not requested and not due_by:
                return {"urgency": ""}
            due = DUE_BY[lang].format(date=self.when.day(due_by)) if due_by else ""
            return {"urgency": URGENCY_REQUESTED[lang].format(
                priority=PRIORITY_WORDS[lang][requested], due=due)}

        self.tell(self.rules.triage_lead, "referral_received",
                  {"referral_id": self.p["referral_id"], "condition": self.p["condition"],
                   "per_language": urgency})

    def patient_break_glass(self) -> None:
        """The privacy officer hears at once (every channel, the in-app feed now) that
        someone opened a patient's notes through break-glass: ids and times only, never
        the reason typed (it stays in the notes service's audit trail)."""
        p = self.p
        self.tell(self.rules.privacy_officer, "break_glass", {
            "access_id": p["access_id"], "patient_id": p["patient_id"],
            "actor_id": p["actor_id"], "date": self.when.date(p["opened_at"]),
            "time": self.when.time(p["opened_at"]),
            "until": self.when.time(p["expires_at"]),
            "link": f"{self.rules.console_url}/#/patient/{p['patient_id']}"}, urgent=True)

    def referral_breach_risk(self) -> None:
        """The triage lead (email and feed): which referral, its priority, its due date
        and why it may miss it."""
        p = self.p

        def words(lang: str) -> dict[str, str]:
            first = p.get("first_visit_at")
            first_visit = (f"{self.when.date(first)} {self.when.time(first)}"
                           if first else "-")
            return {"priority": PRIORITY_WORDS[lang][p.get("priority")],
                    "reason": BREACH_REASONS[lang][p["reason"]].format(
                        first_visit=first_visit)}

        self.tell(self.rules.triage_lead, "referral_breach_risk", {
            "referral_id": p["referral_id"], "due_by": self.when.day(p["due_by"]),
            "link": f"{self.rules.console_url}/#/referral/{p['referral_id']}",
            "per_language": words})

    # safety alerts ----------------------------------------------------------------

    def _role_contact(self, recipient_id: str) -> Contact:
        """Role ids the clinic configures (triage lead, clinical lead), else a provider
        from the directory (or not yet in it: in-app at once)."""
        roles = {c.recipient_id: c for c in (self.rules.triage_lead, self.rules.clinical_lead,
                                             self.rules.schedulers,
                                             self.rules.privacy_officer)}
        return roles.get(recipient_id) or self.contact(recipient_id, "provider")

    def _name(self, recipient_id: str) -> str:
        """A name from the directory, else the id: ids only ever, never free text."""
        known = self.lookup(recipient_id)
        return known.name if known and known.name else recipient_id

    def _alert_context(self, raised_at: str | datetime) -> dict[str, Any]:
        patient_id = self.p["patient_id"]
        known = self.lookup(patient_id)
        return {"patient": (f"{known.name} ({patient_id})" if known and known.name
                            else f"patient {patient_id}"),
                "date": self.when.date(raised_at), "time": self.when.time(raised_at),
                "link": f"{self.rules.console_url}/#/patient/{patient_id}"}

    def _alert_recipients(self, template: str, ctx: dict[str, Any],
                          recipients: Iterable[Mapping[str, str]]) -> None:
        """Every named recipient on every channel, urgent; the duty phone as well when a
        duty clinician is named and the clinic has one."""
        alert_id = self.p["alert_id"]
        seen: set[str] = set()
        duty = False
        for r in recipients:
            duty = duty or r["role"] == "duty_clinician"
            if r["recipient_id"] in seen:
                continue
            seen.add(r["recipient_id"])
            self.tell(self._role_contact(r["recipient_id"]), template, ctx,
                      alert_id=alert_id, urgent=True)
        if duty and self.rules.duty_phone:
            self.tell(Contact(DUTY_PHONE, "role", "Duty phone", phone=self.rules.duty_phone),
                      template, ctx, alert_id=alert_id, urgent=True, channels=["sms"])

    def patient_safety_alert(self) -> None:
        if self.version == 1:
            self.p = alert_v1_as_v2(self.p)
        p = self.p
        ctx = self._alert_context(p["raised_at"])
        ctx.update(severity=p["severity"], raised_by=self._name(p["raised_by"]),
                   per_language=lambda lang: {"source": SAFETY_SOURCES[lang][p["source"]]})
        self._alert_recipients("safety_alert", ctx, p["recipients"])

    def patient_safety_alert_escalated(self) -> None:
        if self.alert_settled:  # acknowledged or closed meanwhile: a stale escalation
            return
        p = self.p
        ctx = self._alert_context(p["raised_at"])
        raised, escalated = _parse(p["raised_at"]), _parse(p["escalated_at"])
        ctx.update(severity=p["severity"], escalated_time=self.when.time(escalated),
                   per_language=lambda lang: {"ordinal": ordinal(p["escalation"], lang),
                                              "waited": waited(raised, escalated, lang)})
        self._alert_recipients("safety_alert_escalated", ctx, p["recipients"])

    def patient_safety_alert_acknowledged(self) -> None:
        """The others are told in-app who acknowledged it and the action (its word, never
        the free text that may go with `other`)."""
        p = self.p
        ctx = self._alert_context(self.alert_raised_at or p["acknowledged_at"])
        if self.alert_raised_at is None:  # raised before this notifier kept alerts
            ctx["date"] = ctx["time"] = "-"
        ctx.update(acknowledged_by=self._name(p["acknowledged_by"]),
                   acknowledged_time=self.when.time(p["acknowledged_at"]),
                   per_language=lambda lang: {"action": ACK_ACTIONS[lang][p["action"]]})
        told = [r["recipient_id"] for r in p.get("recipients") or []] or list(
            self.alert_recipients)
        for recipient_id in dict.fromkeys(told):
            if recipient_id != p["acknowledged_by"]:
                self.tell(self._role_contact(recipient_id), "safety_alert_acknowledged", ctx,
                          alert_id=p["alert_id"], channels=["in_app"])

    def itinerary_booked(self) -> None:
        patient = self.contact(self.p["patient_id"], "patient")
        visits = sorted(self.p["visits"], key=lambda v: _parse(v["start"]))
        bring = self.p.get("what_to_bring") or []
        with_ids = tuple(v for v in visits if v.get("appointment_id"))  # a UID each
        self.tell(patient, "itinerary_booked", {
            "itinerary_id": self.p["itinerary_id"],
            "visit_list": [self.visit_context(v) for v in visits],
            "what_to_bring": "\n".join(f"- {b}" for b in bring) or "-",
            "bring_short": "; ".join(bring) or "-"},
            invite=Invite(with_ids, "REQUEST") if with_ids else None)
        for i, visit in enumerate(visits):
            self.reminders(visit, patient, f"{self.p['itinerary_id']}#{i}")

    def appointment_booked(self) -> None:
        self.reminders(self.p, self.contact(self.p["patient_id"], "patient"),
                       self.p["appointment_id"])

    def appointment_cancelled(self) -> None:
        ctx = self.visit_context(self.p)
        invite = Invite((self.p,), "CANCEL", calendar.sequence_at(self.now))
        self.tell(self.contact(self.p["patient_id"], "patient"), "appointment_cancelled", ctx,
                  invite=invite)
        self.tell(self.contact(self.p["provider_id"], "provider"), "appointment_cancelled", ctx)

    def appointment_rescheduled(self) -> None:
        ctx = self.visit_context(self.p)
        ctx["room"] = ctx.pop("room_suffix")
        ctx["previous_date"] = self.when.date(self.p["previous_start"])
        ctx["previous_time"] = self.when.time(self.p["previous_start"])
        patient = self.contact(self.p["patient_id"], "patient")
        self.tell(patient, "appointment_rescheduled", ctx,
                  invite=Invite((self.p,), "REQUEST", calendar.sequence_at(self.now)))
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
                  "waitlist.offered", "itinerary.unplaceable", "referral.breach_risk",
                  "patient.break_glass", *SAFETY_EVENTS)


def plan(event_id: str, event_type: str, payload: Mapping[str, Any], lookup: Lookup,
         rules: Rules, now: datetime, *, version: int = 1,
         alert: AlertHistory = AlertHistory()) -> Plan:
    """What an event means for the notifier: the notifications to deliver, the
    reminders that no longer hold, and the safety alert it settles."""
    planner = _Planner(event_id, event_type, payload, lookup, rules, now, version, alert)
    cancel: list[str] = []
    if event_type in ("appointment.cancelled", "appointment.rescheduled"):
        cancel.append(payload["appointment_id"])
    method = getattr(planner, event_type.replace(".", "_"), None)
    if method is not None and event_type in HANDLED_EVENTS:
        method()
    settled = None
    if event_type == "patient.safety_alert_acknowledged":
        settled = AlertSettled(payload["alert_id"], "acknowledged", payload["acknowledged_by"],
                               _parse(payload["acknowledged_at"]))
    elif event_type == "patient.safety_alert_closed":
        settled = AlertSettled(payload["alert_id"], "closed", payload["closed_by"],
                               _parse(payload["closed_at"]))
    return Plan(planner.out, cancel, settled)


def retry_delay(attempts: int, base_seconds: float, cap_seconds: float = 600.0) -> timedelta:
    """Exponential backoff after the n-th failed attempt (1 -> base, 2 -> 2*base, ...)."""
    return timedelta(seconds=min(cap_seconds, base_seconds * 2 ** max(0, attempts - 1)))
