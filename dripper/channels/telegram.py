"""The Telegram channel, outbound: one step becomes one or a few Bot API calls through PTB.

Every Bot API error is classified, never raised: 403 (blocked, deactivated) makes the learner
unreachable on Telegram; 400 fails this delivery with Telegram's reason; 429 pauses the whole
bot's budget for retry_after; a timeout after the request was written is `uncertain`, because
Telegram may well have delivered the message.
"""

from __future__ import annotations

import asyncio
import os
import time
import warnings
from collections.abc import Sequence
from typing import Any

# Opt in to PTB's future behaviour (RetryAfter.retry_after as a timedelta) instead of a
# deprecation warning on every flood-control answer; classify() accepts both forms.
os.environ.setdefault("PTB_TIMEDELTA", "1")

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.warnings import PTBUserWarning

from dripper.channels.base import Outbound, Outcome, SendResult
from dripper.channels.transport import AiohttpRequest, ConnectionLost, NotSent
from dripper.compose import Button
from dripper.errors import DripperError
from dripper.models import Channel as ChannelName
from dripper.ratelimit import TokenBucket
from dripper.render import TELEGRAM_TEXT_LIMIT, visible_length


def split_html(markup: str, limit: int = TELEGRAM_TEXT_LIMIT) -> list[str]:
    """Split rendered Telegram HTML into messages under `limit`, at paragraph boundaries.

    Each paragraph of `render.telegram_html` is balanced on its own, so chunks stay valid HTML.
    A single paragraph over the limit is split at line breaks, and as a last resort cut hard.
    """
    chunks: list[str] = []
    current = ""
    for block in _blocks(markup, limit):
        candidate = f"{current}\n\n{block}" if current else block
        if visible_length(candidate) <= limit:
            current = candidate
        else:
            chunks.append(current)
            current = block
    if current:
        chunks.append(current)
    return chunks or [markup]


def _blocks(markup: str, limit: int) -> list[str]:
    blocks: list[str] = []
    for paragraph in markup.split("\n\n"):
        if visible_length(paragraph) <= limit:
            blocks.append(paragraph)
            continue
        lines = paragraph.split("\n")
        if all(visible_length(line) <= limit and _balanced(line) for line in lines):
            blocks.extend(lines)
        else:
            blocks.extend(_hard_cut(paragraph, limit))
    return blocks


def _balanced(line: str) -> bool:
    return line.count("<") == line.count(">") and line.count("<") % 2 == 0


def _hard_cut(paragraph: str, limit: int) -> list[str]:
    import html
    import re

    text = html.unescape(re.sub(r"<[^>]+>", "", paragraph))
    pieces = [text[i : i + limit] for i in range(0, len(text), limit)]
    out: list[str] = []
    for piece in pieces:
        while visible_length(html.escape(piece, quote=False)) > limit:
            piece = piece[:-1]
        out.append(html.escape(piece, quote=False))
    return out


def keyboard(rows: Sequence[Sequence[Button]]) -> InlineKeyboardMarkup | None:
    if not rows:
        return None
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(b.label, callback_data=b.callback_data) for b in row]
            for row in rows
        ]
    )


# Sends leave evenly paced but reach Telegram with network jitter, so a budget of exactly 30/s
# is sometimes seen as 31 in a one-second window. Aim a little below the published limits.
BUDGET_MARGIN = 0.9
CHAT_INTERVAL_S = 1.05


def telegram_budget(messages_per_second: float) -> TokenBucket:
    """The whole bot's send budget, a little under `messages_per_second`."""
    return TokenBucket(messages_per_second * BUDGET_MARGIN, burst=1)


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


# PTB nudges callers of do_api_request towards its typed methods; we use the raw call on purpose
# (see TelegramChannel.send), so that advice is noise here.
warnings.filterwarnings(
    "ignore", message=r"Please use 'Bot\.send", category=PTBUserWarning, module=__name__
)


class TelegramChannel:
    """Sends through python-telegram-bot with the aiohttp transport."""

    name = ChannelName.TELEGRAM

    def __init__(
        self,
        token: str,
        api_url: str,
        *,
        budget: TokenBucket | None = None,
        pacer: ChatPacer | None = None,
        connections: int = 128,
        read_timeout: float = 10.0,
    ) -> None:
        self._api_url = api_url
        self._budget = budget
        self._pacer = pacer
        self.bot = Bot(
            token,
            base_url=api_url,
            request=AiohttpRequest(connection_pool_size=connections, read_timeout=read_timeout),
            get_updates_request=AiohttpRequest(connection_pool_size=2, read_timeout=read_timeout),
        )

    async def start(self) -> None:
        try:
            await self.bot.initialize()
        except InvalidToken as exc:
            raise DripperError(
                "Telegram rejected the bot token: set DRIPPER_TELEGRAM_TOKEN (or [telegram] "
                "token_file) to the token BotFather gave you"
            ) from exc
        except TelegramError as exc:
            raise DripperError(
                f"cannot reach the Telegram Bot API at {self._api_url} ({exc}): check "
                "[telegram] api_url / DRIPPER_TELEGRAM_API_URL and the network"
            ) from exc

    async def close(self) -> None:
        await self.bot.shutdown()

    async def _pace(self, chat_id: int) -> None:
        if self._pacer is not None:
            await self._pacer.wait(chat_id)
        if self._budget is not None:
            await self._budget.acquire()

    async def send(self, message: Outbound) -> SendResult:
        chat_id = message.telegram_chat_id
        if chat_id is None:
            return SendResult(Outcome.UNREACHABLE, error="learner has not started the bot")
        content = message.content
        markup = keyboard(content.buttons)
        sent_any = False
        try:
            # do_api_request returns Telegram's JSON as is: parsing every answer into a PTB
            # Message object would cost more CPU than the rest of the send.
            last: dict[str, Any]
            if content.image_url:
                await self._pace(chat_id)
                last = await self.bot.do_api_request(
                    "sendPhoto",
                    api_kwargs={
                        "chat_id": chat_id,
                        "photo": content.image_url,
                        "caption": content.telegram_html,
                        "parse_mode": ParseMode.HTML,
                        "reply_markup": markup,
                    },
                )
            else:
                chunks = split_html(content.telegram_html)
                for index, chunk in enumerate(chunks):
                    await self._pace(chat_id)
                    last = await self.bot.do_api_request(
                        "sendMessage",
                        api_kwargs={
                            "chat_id": chat_id,
                            "text": chunk,
                            "parse_mode": ParseMode.HTML,
                            "reply_markup": markup if index == len(chunks) - 1 else None,
                        },
                    )
                    sent_any = True
            return SendResult.sent(f"{chat_id}:{last['message_id']}")
        except TelegramError as exc:
            result = self.classify(exc)
            if sent_any and result.outcome is not Outcome.SENT:
                # Part of a split message went out: retrying would repeat it.
                return SendResult(Outcome.UNCERTAIN, error=f"partly sent: {result.error}")
            if result.retry_after and self._budget is not None:
                self._budget.pause(result.retry_after)
            return result

    @staticmethod
    def classify(exc: TelegramError) -> SendResult:
        """Map a PTB exception to an outcome. Order matters: BadRequest and TimedOut are
        NetworkErrors too."""
        if isinstance(exc, RetryAfter):
            seconds = exc.retry_after
            wait = seconds if isinstance(seconds, int | float) else seconds.total_seconds()
            return SendResult(
                Outcome.RETRY,
                error=f"Telegram: flood control exceeded, retry after {wait:g} s",
                retry_after=wait,
            )
        if isinstance(exc, Forbidden):
            return SendResult(Outcome.UNREACHABLE, error=f"Telegram: {exc.message}")
        if isinstance(exc, BadRequest):
            return SendResult(Outcome.FAILED, error=f"Telegram: {exc.message}")
        if isinstance(exc, NotSent):
            return SendResult(Outcome.RETRY, error=f"not sent: {exc.message}")
        if isinstance(exc, TimedOut | ConnectionLost):
            return SendResult(Outcome.UNCERTAIN, error=f"no answer from Telegram: {exc.message}")
        if isinstance(exc, NetworkError):
            return SendResult(Outcome.RETRY, error=f"Telegram: {exc.message}")
        if isinstance(exc, InvalidToken):
            return SendResult(Outcome.RETRY, error="Telegram rejected the bot token")
        return SendResult(Outcome.FAILED, error=f"Telegram: {exc.message}")
