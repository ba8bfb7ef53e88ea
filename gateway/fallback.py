"""The fallback rules, top to bottom as the README tells them: what closes a
delivery, the severity policy, each resident's order of channels, retries
inside a step, quiet hours, and the language a resident gets.

The plan (docs/design.md, "Plans"):
- order app push -> SMS -> voice -> paper mail;
- `blind` puts voice before SMS; `deaf` drops voice;
- a feature phone gets no push, a landline gets voice only (the channels say
  which contact points and handsets they can use);
- no phone at all means mail;
- Extreme alerts start push and SMS together (voice networks saturate in a
  crisis; text goes first);
- content follows the resident's first language that the alert carries;
- a resident who chose an order of channels (on their /r/ page) gets it:
  they know best what reaches them; `deaf` still drops voice.
An alert's own `policy` may narrow the channels and change timeouts,
confirmation and the first step.

Why the severity rows are what they are:
- Extreme and Severe threaten life: the resident must act, so only an
  acknowledgement closes the delivery, quiet hours are ignored, and no
  consent to non-emergency alerts is needed (docs/design.md, "Confirmation").
- Extreme starts app push and SMS together: voice networks saturate in a
  crisis and text goes first.
- Extreme/Immediate leaves paper mail out: a letter takes days, long after
  the danger; a resident with no phone is reported unreachable at once so an
  operator can send a person instead.
- Minor is the only severity that waits for a resident's quiet hours: their
  first step is held until the hours end (the rest of the plan follows as
  usual). Moderate and Unknown go at once: "Unknown" may be anything.
- The turn orders the workers' queued work across alerts (gateway/tasks.py):
  an Extreme alert's fan-out and escalations go before a lesser alert's
  backlog, so an evacuation does not wait minutes behind the SMS->voice
  escalations of a water cut. An alert's own policy cannot change its turn:
  no agency promotes its own alerts over another's evacuation.

What applies a plan step by step (claim, next step on a permanent failure or
a timeout, close at the level the policy needs) is the state machine,
gateway/transitions.lua; this module decides, it writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .schemas import CHANNELS

# What closes a delivery, weakest to strongest (the README's "What "confirmed" means").
LEVEL_RANK = {"posted": 3, "delivered": 4, "acknowledged": 5}


# The severity policy (the README's table) ---------------------------------------

ALL_CHANNELS = tuple(CHANNELS)
NO_MAIL = tuple(c for c in CHANNELS if c != "mail")
# Quiet hours without a `tz` are read in the time zone of the service area.
QUIET_HOURS_TZ = "Asia/Seoul"


@dataclass(frozen=True)
class Rule:
    severity: str
    urgency: str | None  # None: any urgency
    confirmation: str  # the weakest proof that closes a delivery
    quiet_hours: bool  # True: a resident's quiet hours hold the first step
    parallel_first: bool  # push and SMS start together
    channels: tuple[str, ...]
    emergency: bool  # sent even to residents who refused non-emergency alerts
    turn: int  # the workers take queued work of a lower turn first

    @property
    def urgency_label(self) -> str:
        return self.urgency or "any"


# The first row that matches the alert wins.
TABLE: tuple[Rule, ...] = (
    Rule("Extreme", "Immediate", "acknowledged", False, True, NO_MAIL, True, 0),
    Rule("Extreme", None, "acknowledged", False, True, ALL_CHANNELS, True, 1),
    Rule("Severe", None, "acknowledged", False, False, ALL_CHANNELS, True, 2),
    Rule("Moderate", None, "delivered", False, False, ALL_CHANNELS, False, 3),
    Rule("Minor", None, "delivered", True, False, ALL_CHANNELS, False, 4),
    Rule("Unknown", None, "delivered", False, False, ALL_CHANNELS, False, 3),
)
EMERGENCY = frozenset(rule.severity for rule in TABLE if rule.emergency)
TURNS = 1 + max(rule.turn for rule in TABLE)


def rule_for(severity: str, urgency: str | None = None) -> Rule:
    for rule in TABLE:
        if rule.severity == severity and rule.urgency in (None, urgency):
            return rule
    return rule_for("Unknown")


def turn_of(alert: Mapping) -> int:
    """When the workers take the alert's queued work (the table's turn column)."""
    return rule_for(alert.get("severity", "Unknown"), alert.get("urgency")).turn


def markdown() -> str:
    """The table as Markdown, for the README."""
    lines = [
        "| Severity | Urgency | Closes a delivery | Quiet hours | First step | Channels | Needs consent | Turn |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in TABLE:
        lines.append(" | ".join([
            f"| {r.severity}", r.urgency_label, f"`{r.confirmation}`",
            "wait until they end" if r.quiet_hours else "ignored",
            "push and SMS together" if r.parallel_first else "first channel of the plan",
            ", ".join(r.channels) if r.channels != ALL_CHANNELS else "all (push, SMS, voice, mail)",
            "no (emergency)" if r.emergency else "yes (non-emergency)",
            str(r.turn),
        ]) + " |")
    return "\n".join(lines)


# Channels, step timeouts and retries ----------------------------------------------

DEFAULT_ORDER = ("push", "sms", "voice", "mail")
DEFAULT_TIMEOUTS = {"push": 120, "sms": 300, "voice": 600, "mail": 3 * 86400}
MAX_ATTEMPTS = 3  # sends of one step before it fails over


def retry_after_ms(backoff_s: float, attempt: int) -> int:
    """A temporary failure is tried again inside the step's budget, each wait
    twice the last, from the channel's own back-off (channels/*.py)."""
    return int(backoff_s * 1000 * (2 ** attempt))


# The policy of one alert ------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    severity: str = "Moderate"
    channels: tuple[str, ...] = DEFAULT_ORDER
    timeouts: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_TIMEOUTS))
    confirmation: str = "delivered"
    parallel_first: bool = False
    max_attempts: int = MAX_ATTEMPTS
    # Hold a resident's first step while they are in their quiet hours.
    quiet_hours: bool = False
    # A re-verification campaign (gateway/reverify.py) asks on stale contact points only.
    stale_only: bool = False

    @classmethod
    def from_alert(cls, alert: Mapping) -> Policy:
        """The severity table's row, overridden by the alert's own `policy`."""
        p = alert.get("policy") or {}
        severity = alert.get("severity", "Unknown")
        rule = rule_for(severity, alert.get("urgency"))
        return cls(
            severity=severity,
            channels=tuple(c for c in DEFAULT_ORDER if c in p.get("channels", rule.channels)),
            timeouts={**DEFAULT_TIMEOUTS, **p.get("step_timeouts", {})},
            confirmation=p.get("confirmation", rule.confirmation),
            parallel_first=p.get("parallel_first", rule.parallel_first),
            max_attempts=p.get("max_attempts_per_step", MAX_ATTEMPTS),
            quiet_hours=rule.quiet_hours,
            stale_only=alert.get("purpose") == "reverify",
        )

    @property
    def level(self) -> int:
        return LEVEL_RANK[self.confirmation]

    @property
    def emergency(self) -> bool:
        """Sent to residents who refused non-emergency alerts, and a STOP reply does not end it."""
        return self.severity in EMERGENCY


# One resident's plan ------------------------------------------------------------------


@dataclass(frozen=True)
class ChannelSpec:
    """What the plan needs to know of a channel: what it can reach."""

    name: str
    contact_types: frozenset[str]
    handsets: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Contact:
    type: str
    handset: str | None = None


@dataclass(frozen=True)
class Profile:
    languages: tuple[str, ...]
    contacts: tuple[Contact, ...] = ()
    needs: frozenset[str] = frozenset()
    # Indexes of contact points found dead (stale token, returned letter...).
    dead: frozenset[int] = frozenset()
    non_emergency: bool = True
    # The resident's own order of channels; empty: the default rules decide.
    preferred: tuple[str, ...] = ()
    # Indexes of contact points not confirmed for GATEWAY_CONTACT_STALE_DAYS (gateway/contact_ages.py).
    stale: frozenset[int] = frozenset()


# A step: the legs sent together, [(channel, contact index)], and its timeout.
Step = dict


def channel_order(needs: frozenset[str], allowed: Sequence[str], preferred: Sequence[str] = ()) -> list[str]:
    order = list(DEFAULT_ORDER)
    if preferred:
        chosen = [c for c in preferred if c in DEFAULT_ORDER]
        order = list(dict.fromkeys(chosen + order))
    elif "blind" in needs:
        order.remove("voice")
        order.insert(order.index("sms"), "voice")
    if "deaf" in needs:
        order.remove("voice")
    return [c for c in order if c in allowed]


def _usable(spec: ChannelSpec, contact: Contact) -> bool:
    if contact.type not in spec.contact_types:
        return False
    return contact.type != "phone" or contact.handset in spec.handsets


def build_plan(profile: Profile, policy: Policy, channels: Mapping[str, ChannelSpec]) -> list[Step]:
    """Ordered steps for one resident; empty when nothing can reach them."""
    legs: list[tuple[str, int]] = []
    for name in channel_order(profile.needs, [c for c in policy.channels if c in channels], profile.preferred):
        spec = channels[name]
        for i, contact in enumerate(profile.contacts):
            if i not in profile.dead and _usable(spec, contact) and (not policy.stale_only or i in profile.stale):
                legs.append((name, i))
    steps: list[Step] = [{"l": [[ch, i]], "t": int(policy.timeouts[ch])} for ch, i in legs]
    if policy.parallel_first and len(steps) >= 2:
        first, second = steps[0], steps[1]
        if first["l"][0][0] == "push" and second["l"][0][0] == "sms":
            merged = {"l": first["l"] + second["l"], "t": max(first["t"], second["t"])}
            steps[:2] = [merged]
    return steps


def initial_state(profile: Profile, policy: Policy, steps: list[Step]) -> str:
    if not policy.emergency and not profile.non_emergency:
        return "opted_out"
    return "planned" if steps else "unreachable"


def update_round_step(plan: list[Step], k: int, confirmed_by: str, policy: Policy) -> Step:
    """The one step of an update round (gateway/lifecycle.py) for a resident already
    confirmed: the leg that confirmed them, its channel on the step it ended on, else
    that channel anywhere in the plan, else the whole step it ended on (an
    acknowledgement on the web page names no channel of the plan)."""
    channel = confirmed_by.split(":")[0]
    ended_on = plan[min(k, len(plan) - 1)]["l"]
    legs = [leg for leg in ended_on if leg[0] == channel] or \
        [leg for step in plan for leg in step["l"] if leg[0] == channel]
    legs = [legs[0]] if legs else ended_on
    return {"l": legs, "t": max(int(policy.timeouts.get(leg[0], 300)) for leg in legs)}


# Quiet hours --------------------------------------------------------------------------


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or QUIET_HOURS_TZ)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(QUIET_HOURS_TZ)


def quiet_until(quiet_hours: dict | None, now: datetime) -> datetime | None:
    """When the resident's quiet hours end, if `now` (aware) is inside them.

    Hours may span midnight (22:00-07:00); equal start and end mean none.
    """
    if not quiet_hours:
        return None
    start, end = time.fromisoformat(quiet_hours["start"]), time.fromisoformat(quiet_hours["end"])
    if start == end:
        return None
    local = now.astimezone(_zone(quiet_hours.get("tz")))
    clock = local.time().replace(tzinfo=None)
    if start < end:
        inside = start <= clock < end
        end_day = local.date()
    else:
        inside = clock >= start or clock < end
        end_day = local.date() + timedelta(days=1) if clock >= start else local.date()
    if not inside:
        return None
    # Built from wall-clock fields so a DST change in between is handled by the zone.
    return datetime.combine(end_day, end, tzinfo=local.tzinfo)


def first_send_at_ms(quiet_hours: dict | None, rule_respects_quiet: bool, now_ms: int) -> int | None:
    """The time to hold a resident's first step until, or None to send now."""
    if not rule_respects_quiet:
        return None
    until = quiet_until(quiet_hours, datetime.fromtimestamp(now_ms / 1000, UTC))
    return int(until.timestamp() * 1000) if until else None


# Language -----------------------------------------------------------------------------


def pick_language(resident_languages: Iterable[str], alert_languages: Sequence[str],
                  usable: Callable[[str], bool] | None = None) -> str:
    """The resident's first language the alert carries, matching `zh` to `zh-CN`;
    with `usable`, the first the channel can carry too (a call needs a voice for it)."""
    if usable is not None:
        alert_languages = [lang for lang in alert_languages if usable(lang)] or alert_languages
    carried = {lang.lower(): lang for lang in alert_languages}
    primary = {}
    for lang in alert_languages:
        primary.setdefault(lang.split("-")[0].lower(), lang)
    for lang in resident_languages:
        if lang.lower() in carried:
            return carried[lang.lower()]
        base = lang.split("-")[0].lower()
        if base in primary:
            return primary[base]
    return alert_languages[0]
