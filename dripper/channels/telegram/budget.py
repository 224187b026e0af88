"""A bot's send budget: Telegram's published limits with a margin, for one process or shared.

One process (SQLite): a `TokenBucket` for the whole bot and a `ChatPacer` per chat. Several
workers on PostgreSQL: a `SharedBudget` (dripper.channels.telegram.shared) with the same rates.
"""

from __future__ import annotations

import asyncio
import time

from dripper.channels.ratelimit import TokenBucket
from dripper.channels.telegram.shared import SharedBudget

# Sends leave evenly paced but reach Telegram with network jitter, so a budget of exactly 30/s
# is sometimes seen as 31 in a one-second window. Aim a little below the published limits.
BUDGET_MARGIN = 0.9


CHAT_INTERVAL_S = 1.05


def telegram_budget(messages_per_second: float) -> TokenBucket:
    """The whole bot's send budget, a little under `messages_per_second`."""
    return TokenBucket(messages_per_second * BUDGET_MARGIN, burst=1)


def shared_telegram_budget(token: str, messages_per_second: float) -> SharedBudget:
    """The same budget and chat pacing, shared by every worker on a PostgreSQL database. The
    key names the bot by its id, never by the secret half of the token."""
    bot_id = token.split(":", 1)[0]
    return SharedBudget(f"telegram:{bot_id}", messages_per_second * BUDGET_MARGIN, CHAT_INTERVAL_S)


class ChatPacer:
    """At most one message per `interval` seconds to any one chat (Telegram: 1/s per chat)."""

    def __init__(self, interval: float = CHAT_INTERVAL_S) -> None:
        self._interval = interval
        self._next: dict[int, float] = {}

    async def wait(self, chat_id: int) -> None:
        now = time.monotonic()
        ready = self._next.get(chat_id, now)
        self._next[chat_id] = max(ready, now) + self._interval
        if ready > now:
            await asyncio.sleep(ready - now)
        if len(self._next) > 100_000:
            self._next = {c: t for c, t in self._next.items() if t > now}
