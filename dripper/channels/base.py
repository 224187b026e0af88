"""The one small protocol every outbound channel implements, and the outcomes it reports.

A channel turns an `Outbound` into one network send and classifies what happened. It never
touches the database: the dispatcher records the outcome in its own short transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from dripper.content.compose import Content
from dripper.models import Channel as ChannelName


class Outcome(StrEnum):
    SENT = "sent"
    RETRY = "retry"  # transient: try again later (5xx, connection refused, 4xx SMTP)
    FAILED = "failed"  # permanent for this delivery (chat not found, 5xx SMTP)
    UNREACHABLE = "unreachable"  # permanent for this learner on this channel (blocked, bounced)
    UNCERTAIN = "uncertain"  # the request may have arrived: a timeout after it was written


@dataclass(frozen=True)
class Outbound:
    """One message to send, with everything the channel needs to address and thread it."""

    delivery_id: int
    business_key: str
    content: Content
    telegram_chat_id: int | None
    email: str | None
    learner_name: str
    conversation_token: str = ""  # signed token for Reply-To (email), tokens.reply_token()
    in_reply_to: str | None = None  # Message-ID this answers (email threading)
    references: tuple[str, ...] = ()  # earlier Message-IDs of the thread, oldest first (email)
    unsubscribe_token: str = ""  # signed token for List-Unsubscribe, tokens.unsubscribe_token()
    # dripper's own answer to a learner's message (feedback on an emailed answer), not a
    # person's: marked Auto-Submitted: auto-replied (RFC 3834), so autoresponders stay quiet.
    auto_reply: bool = False
    # The email footer's line in place of the learner's reply hint (mail to a trainer).
    footer: str | None = None


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    provider_message_id: str | None = None
    error: str | None = None
    retry_after: float | None = None  # seconds the provider asked us to wait, for the whole channel

    @classmethod
    def sent(cls, provider_message_id: str) -> SendResult:
        return cls(Outcome.SENT, provider_message_id=provider_message_id)


Attempting = Callable[[], Awaitable[None]]
"""Awaited by a channel just before it writes a message's first byte (after rate limiting),
at most a few times per send and harmless to repeat. The dispatcher marks the delivery
attempted there; when it raises, the channel writes nothing and lets the exception through."""


async def untracked() -> None:
    """An `Attempting` for sends nobody needs to track (tests, tools)."""


class Channel(Protocol):
    name: ChannelName

    @property
    def rate(self) -> float | None:
        """Messages per second this channel starts at most; None when unlimited."""

    @property
    def parallel(self) -> int:
        """How many messages it writes at once at most (its connections)."""

    async def start(self) -> None:
        """Open connections; raise DripperError with what to configure when impossible."""

    async def send(self, message: Outbound, attempting: Attempting = untracked) -> SendResult:
        """Send one message; never raises for a provider error, reports it as an outcome."""

    async def close(self) -> None: ...
