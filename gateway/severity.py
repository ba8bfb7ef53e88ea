"""The severity policy: what an alert's CAP severity (and urgency) asks of delivery.

One table, read by `Policy.from_alert` (gateway/plan.py) for every default an
alert's own `policy` does not override, and rendered by `markdown()` for the
README. The first row that matches the alert wins.

Why the rows are what they are:
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
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .schemas import CHANNELS

# Quiet hours without a `tz` are read in the time zone of the service area.
QUIET_HOURS_TZ = "Asia/Seoul"

ALL_CHANNELS = tuple(CHANNELS)
NO_MAIL = tuple(c for c in CHANNELS if c != "mail")


@dataclass(frozen=True)
class Rule:
    severity: str
    urgency: str | None  # None: any urgency
    confirmation: str  # the weakest proof that closes a delivery
    quiet_hours: bool  # True: a resident's quiet hours hold the first step
    parallel_first: bool  # push and SMS start together
    channels: tuple[str, ...]
    emergency: bool  # sent even to residents who refused non-emergency alerts

    @property
    def urgency_label(self) -> str:
        return self.urgency or "any"


TABLE: tuple[Rule, ...] = (
    Rule("Extreme", "Immediate", "acknowledged", False, True, NO_MAIL, True),
    Rule("Extreme", None, "acknowledged", False, True, ALL_CHANNELS, True),
    Rule("Severe", None, "acknowledged", False, False, ALL_CHANNELS, True),
    Rule("Moderate", None, "delivered", False, False, ALL_CHANNELS, False),
    Rule("Minor", None, "delivered", True, False, ALL_CHANNELS, False),
    Rule("Unknown", None, "delivered", False, False, ALL_CHANNELS, False),
)


def rule_for(severity: str, urgency: str | None = None) -> Rule:
    for rule in TABLE:
        if rule.severity == severity and rule.urgency in (None, urgency):
            return rule
    return rule_for("Unknown")


def markdown() -> str:
    """The table as Markdown, for the README."""
    lines = [
        "| Severity | Urgency | Closes a delivery | Quiet hours | First step | Channels | Needs consent |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in TABLE:
        lines.append(" | ".join([
            f"| {r.severity}", r.urgency_label, f"`{r.confirmation}`",
            "wait until they end" if r.quiet_hours else "ignored",
            "push and SMS together" if r.parallel_first else "first channel of the plan",
            ", ".join(r.channels) if r.channels != ALL_CHANNELS else "all (push, SMS, voice, mail)",
            "no (emergency)" if r.emergency else "yes (non-emergency)",
        ]) + " |")
    return "\n".join(lines)


# Quiet hours ------------------------------------------------------------------


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
    until = quiet_until(quiet_hours, datetime.fromtimestamp(now_ms / 1000, timezone.utc))
    return int(until.timestamp() * 1000) if until else None
