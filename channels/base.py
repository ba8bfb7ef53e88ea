"""The one small interface every channel implements.

A channel module declares what it is (name, which contact points it can use,
which confirmation levels it can prove, its pace) and implements `send`.
Provider callbacks come back through `ChannelContext.report`, so no channel
knows the engine and the engine knows no provider by name.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, ClassVar

# Where a provider's events about one attempt arrive: alert, resident, step, attempt, leg.
# The numbers are digits in the route itself, so a URL no gateway handed out is a 404, not a crash.
ATTEMPT_PATH = "{aid}/{rid}/{k:[0-9]{1,4}}/{n:[0-9]{1,4}}/{leg:[0-9]{1,2}}"

# Attempt statuses, weakest to strongest; `failed` and `timed_out` end an attempt.
QUEUED, SENT, POSTED, DELIVERED, ACKNOWLEDGED = "queued", "sent", "posted", "delivered", "acknowledged"
FAILED, TIMED_OUT = "failed", "timed_out"
# The provider never answered the send request: it may have gone, so the
# attempt is not failed (no second send); the step's deadline moves it on,
# and provider health counts it as the provider's failure.
UNANSWERED = "unanswered"


@dataclass(frozen=True)
class Message:
    """What one resident is told on one step, already in their language."""

    alert_id: str
    resident_id: str
    step: int
    attempt: int
    language: str
    event: str
    severity: str
    urgency: str
    headline: str
    body: str
    instruction: str = ""
    link: str = ""
    short: str = ""
    # Page with the full message and an "I got this" button (/m/<token>).
    page_url: str = ""
    # [(code, label)] in the message language; "1" always acknowledges.
    response_options: tuple[tuple[str, str], ...] = ()
    expires_at: float | None = None
    # Which leg of the step: legs of one step are sent together.
    leg: int = 0
    # CAP status Test or Exercise: every channel says "this is a drill" first (channels/notices.py).
    drill: str = ""
    # The resident's own languages, best first: if the message's is not among
    # them, they are told so (channels/notices.py).
    reader_languages: tuple[str, ...] = ()

    @property
    def ref(self) -> str:
        """Names this send in callback URLs: alert, resident, step, attempt, leg."""
        return f"{self.alert_id}/{self.resident_id}/{self.step}/{self.attempt}/{self.leg}"


@dataclass(frozen=True)
class Recipient:
    resident_id: str
    contact: dict[str, Any]
    needs: frozenset[str] = frozenset()
    languages: tuple[str, ...] = ()
    name: str = ""
    birth_year: int | None = None


@dataclass
class Outcome:
    """What the provider said to the send request itself."""

    status: str  # queued | sent | posted | delivered | failed | unanswered
    provider: str
    ref: str = ""
    error_code: str = ""
    # A permanent failure moves to the next step at once; a temporary one retries.
    permanent: bool = True
    detail: str = ""
    # The contact point itself is bad (stale token, number not in service).
    contact_dead: bool = False
    # When the answer came (ms since the epoch); the engine stamps it.
    at_ms: int | None = None


@dataclass(frozen=True)
class ProviderEvent:
    """A status that arrived later (callback, reply, keypress, print-house file)."""

    alert_id: str
    resident_id: str
    step: int
    attempt: int
    status: str
    provider: str
    ref: str = ""
    error_code: str = ""
    permanent: bool = True
    detail: str = ""
    channel: str = ""
    leg: int = 0
    contact_dead: bool = False
    at_ms: int | None = None


Report = Callable[[ProviderEvent], Awaitable[str]]
# (alert id, resident id, step, attempt, leg, language) -> the Message again,
# for webhooks that answer mid-conversation (a call asking for its script).
Compose = Callable[[str, str, int, int, int, str], Awaitable[Message]]


@dataclass
class ChannelContext:
    settings: Any
    report: Report
    compose: Compose
    redis: Any = None
    registry: Any = None
    # Shared aiohttp.ClientSession of the process, opened by the caller.
    http: Any = None


class Channel(ABC):
    name: ClassVar[str]
    # Contact point types (`phone`, `fcm`, `webpush`, `postal`) it can use.
    contact_types: ClassVar[frozenset[str]]
    # Handset kinds it can reach, for phone contact points.
    handsets: ClassVar[frozenset[str]] = frozenset()
    # First wait before retrying a temporary failure; doubles per attempt.
    retry_backoff_s: ClassVar[float] = 30.0
    # A send reported `sent` while the resident is taking it in (a call answered,
    # its message playing) holds its step's deadline off this long.
    hold_while_sent_s: ClassVar[float] = 0.0

    def __init__(self, ctx: ChannelContext):
        self.ctx = ctx

    def available(self) -> bool:
        """False when the channel has no provider configured."""
        return True

    def speaks(self, language: str) -> bool:
        """Whether this channel can carry a message in `language` (a call needs a TTS voice for it)."""
        return True

    @abstractmethod
    async def send(self, message: Message, recipient: Recipient) -> Outcome: ...

    async def preview(self, message: Message, recipient: Recipient) -> dict | None:
        """What `send` would hand the provider, without sending (the agency's
        preview): SMS text and segments, TwiML, push payload, the letter's layout and pages.
        None when the channel has nothing to show."""
        return None

    async def look_up(self, provider: str, ref: str) -> Outcome | None:
        """What `provider` says now of send `ref`, whose receipt never came (its
        callbacks lost): asked before the step escalates.  None when the
        provider cannot be asked, does not answer, or has nothing final to say."""
        return None

    def routes(self) -> list:
        """aiohttp routes for this channel's provider webhooks."""
        return []

    def record(self, pipe, message: Message, recipient: Recipient, outcome: Outcome) -> None:
        """Queue what the channel keeps with a send's outcome onto the engine's
        pipeline for the batch (one round trip for all of them)."""
        return None

    async def flush(self) -> None:
        """Write what the channel buffered; the engine calls it after each batch,
        because a worker's loop sleeps between Celery tasks."""
        return None

    async def run(self, stop: asyncio.Event) -> None:
        """Background work in the API process (closing letter batches, reading
        provider files) until `stop` is set; most channels have none."""
        return None

    async def close(self) -> None:
        return None
