"""The fallback rules: which channels, to which contact point, in what order.

docs/design.md, "Plans", in code:
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
A policy may narrow the channels and change timeouts and confirmation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Sequence

from .severity import rule_for

DEFAULT_ORDER = ("push", "sms", "voice", "mail")
DEFAULT_TIMEOUTS = {"push": 120, "sms": 300, "voice": 600, "mail": 3 * 86400}
EMERGENCY = frozenset({"Extreme", "Severe"})
LEVEL_RANK = {"posted": 3, "delivered": 4, "acknowledged": 5}


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


@dataclass(frozen=True)
class Policy:
    severity: str = "Moderate"
    channels: tuple[str, ...] = DEFAULT_ORDER
    timeouts: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_TIMEOUTS))
    confirmation: str = "delivered"
    parallel_first: bool = False
    max_attempts: int = 3
    # Hold a resident's first step while they are in their quiet hours.
    quiet_hours: bool = False
    # A re-verification campaign (gateway/reverify.py) asks on stale contact points only.
    stale_only: bool = False

    @classmethod
    def from_alert(cls, alert: Mapping) -> "Policy":
        p = alert.get("policy") or {}
        severity = alert.get("severity", "Unknown")
        # Defaults come from the severity table (gateway/severity.py).
        rule = rule_for(severity, alert.get("urgency"))
        return cls(
            severity=severity,
            channels=tuple(c for c in DEFAULT_ORDER if c in p.get("channels", rule.channels)),
            timeouts={**DEFAULT_TIMEOUTS, **p.get("step_timeouts", {})},
            confirmation=p.get("confirmation", rule.confirmation),
            parallel_first=p.get("parallel_first", rule.parallel_first),
            max_attempts=p.get("max_attempts_per_step", 3),
            quiet_hours=rule.quiet_hours,
            stale_only=alert.get("purpose") == "reverify",
        )

    @property
    def level(self) -> int:
        return LEVEL_RANK[self.confirmation]


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
    if policy.severity not in EMERGENCY and not profile.non_emergency:
        return "opted_out"
    return "planned" if steps else "unreachable"


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
