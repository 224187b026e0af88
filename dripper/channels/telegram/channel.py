"""The Telegram channel, outbound: one step becomes one or a few Bot API calls through PTB.

Every Bot API error is classified, never raised: 403 (blocked, deactivated) makes the learner
unreachable on Telegram; 400 fails this delivery with Telegram's reason; 429 pauses the whole
bot's budget for retry_after; a timeout after the request was written is `uncertain`, because
Telegram may well have delivered the message.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
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
from dripper.channels.ratelimit import TokenBucket
from dripper.channels.telegram.shared import SharedBudget
from dripper.channels.telegram.transport import AiohttpRequest, ConnectionLost, FastRequest, NotSent
from dripper.content.compose import Button
from dripper.content.render import TELEGRAM_TEXT_LIMIT, visible_length
from dripper.errors import DripperError
from dripper.models import Channel as ChannelName


def split_html(markup: str, limit: int = TELEGRAM_TEXT_LIMIT) -> list[str]:
    """Split rendered Telegram HTML into messages under `limit`, at paragraph boundaries.

    A chunk ends at the last blank line that fits, else at the last line break, else after the
    last space, and as a last resort is cut hard between two characters. The newlines at a cut
    are dropped. Tags open at a cut are closed at the end of the chunk and opened again at the
    start of the next one, so every chunk is valid HTML (a code block or quote split in two
    stays one on both sides).
    """
    if visible_length(markup) <= limit:
        return [markup]
    atoms = _atoms(markup)
    chunks: list[str] = []
    start = 0
    opened: list[str] = []  # the open tags at `start`
    while start < len(atoms):
        end, resume = _chunk_end(atoms, start, limit)
        body = "".join(atom.markup for atom in atoms[start:end])
        closing = list(opened)
        for atom in atoms[start:end]:
            _track(closing, atom.markup)
        chunks.append("".join(opened) + body + "".join(_close(tag) for tag in reversed(closing)))
        for atom in atoms[end:resume]:
            _track(closing, atom.markup)
        opened, start = closing, resume
    return [chunk for chunk in chunks if visible_length(chunk)] or [markup]


@dataclass(frozen=True, slots=True)
class _Atom:
    markup: str  # a tag, an entity or one character
    units: int  # UTF-16 code units Telegram counts (0 for a tag)


_ATOM = re.compile(r"<[^>]*>|&#?\w+;|.", re.DOTALL)


def _atoms(markup: str) -> list[_Atom]:
    return [
        _Atom(text, 0 if text.startswith("<") and len(text) > 1 else visible_length(text))
        for text in _ATOM.findall(markup)
    ]


def _chunk_end(atoms: list[_Atom], start: int, limit: int) -> tuple[int, int]:
    """Where the chunk starting at `start` ends, and where the next one starts."""
    used = 0
    index = start
    while index < len(atoms) and used + atoms[index].units <= limit:
        used += atoms[index].units
        index += 1
    if index == len(atoms):
        return index, index
    index = max(index, start + 1)  # a character wider than the limit still makes progress
    size = index - start
    # The newlines just past the window count too: they are dropped at a cut.
    texts = [atom.markup for atom in atoms[start : index + 2]]
    for run in (2, 1):  # a blank line, then a line break: cut there, dropping the newlines
        for cut in range(size, 0, -1):
            if all(text == "\n" for text in texts[cut : cut + run]):
                while cut > 0 and texts[cut - 1] == "\n":
                    cut -= 1
                resume = start + cut
                while resume < len(atoms) and atoms[resume].markup == "\n":
                    resume += 1
                if cut > 0:
                    return start + cut, resume
    for cut in range(size - 1, 0, -1):
        if texts[cut] == " ":
            return start + cut + 1, start + cut + 1
    return index, index


def _track(opened: list[str], markup: str) -> None:
    if not markup.startswith("<") or len(markup) == 1:
        return
    if markup.startswith("</"):
        if opened:
            opened.pop()
    else:
        opened.append(markup)


def _close(tag: str) -> str:
    name = re.match(r"<\s*([A-Za-z0-9-]+)", tag)
    return f"</{name[1] if name else ''}>"


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
        shared_budget: SharedBudget | None = None,
        connections: int = 128,
        read_timeout: float = 10.0,
    ) -> None:
        self._api_url = api_url
        self._budget = budget
        self._pacer = pacer
        self._shared = shared_budget  # on PostgreSQL: instead of budget and pacer
        self.bot = Bot(
            token,
            base_url=api_url,
            request=FastRequest(connection_pool_size=connections, read_timeout=read_timeout),
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
        if self._shared is not None:
            await self._shared.acquire(chat_id)
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
            if result.error and self.bot.token in result.error:
                # Some transport errors quote the URL, and the URL holds the token.
                result = replace(result, error=result.error.replace(self.bot.token, "***"))
            if result.retry_after and self._budget is not None:
                self._budget.pause(result.retry_after)
            if result.retry_after and self._shared is not None:
                self._shared.pause(result.retry_after)
            if sent_any and result.outcome is not Outcome.SENT:
                # Part of a split message went out: retrying would repeat it.
                return SendResult(Outcome.UNCERTAIN, error=f"partly sent: {result.error}")
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
