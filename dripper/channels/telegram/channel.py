"""The Telegram channel, outbound: one step becomes one or a few Bot API calls through PTB.

Every Bot API error is classified, never raised: 403 (blocked, deactivated) makes the learner
unreachable on Telegram; 400 fails this delivery with Telegram's reason; 429 pauses the whole
bot's budget for retry_after; a timeout after the request was written is `uncertain`, because
Telegram may well have delivered the message.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import replace
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

from dripper.channels.base import Attempting, Outbound, Outcome, SendResult, untracked
from dripper.channels.ratelimit import TokenBucket
from dripper.channels.telegram.budget import ChatPacer
from dripper.channels.telegram.shared import SharedBudget
from dripper.channels.telegram.transport import AiohttpRequest, ConnectionLost, NotSent
from dripper.content.compose import Button
from dripper.content.split import split_html
from dripper.errors import DripperError
from dripper.models import Channel as ChannelName


def keyboard(rows: Sequence[Sequence[Button]]) -> InlineKeyboardMarkup | None:
    if not rows:
        return None
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(b.label, callback_data=b.callback_data) for b in row]
            for row in rows
        ]
    )


# PTB nudges callers of do_api_request towards its typed methods; we use the raw call on purpose
# (see TelegramChannel.send), so that advice is noise here.
warnings.filterwarnings(
    "ignore", message=r"Please use 'Bot\.send", category=PTBUserWarning, module=__name__
)


# A send whose mark took longer than this after its slot takes a new slot (see _pace_and_mark):
# later than that, it could come closer than a second to the chat's next message, whose slot is
# CHAT_INTERVAL_S (1.05 s) on.
MARK_LATE_S = 0.04


def file_url(api_url: str) -> str:
    """Where files are downloaded: https://api.telegram.org/bot -> .../file/bot (the token
    follows), as for a local Bot API server or the emulator."""
    return api_url.rstrip("/").removesuffix("/bot") + "/file/bot"


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
        self._connections = connections
        self.bot = Bot(
            token,
            base_url=api_url,
            base_file_url=file_url(api_url),
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

    @property
    def parallel(self) -> int:
        return self._connections

    @property
    def rate(self) -> float | None:
        if self._shared is not None:
            return 1.0 / self._shared.interval
        return self._budget.rate if self._budget is not None else None

    async def _pace(self, chat_id: int) -> None:
        if self._shared is not None:
            await self._shared.acquire(chat_id)
        if self._pacer is not None:
            await self._pacer.wait(chat_id)
        if self._budget is not None:
            await self._budget.acquire()

    async def _pace_and_mark(self, chat_id: int, attempting: Attempting) -> None:
        """Wait for the message's slot, then have it marked attempted. A mark that takes long
        (a busy database) leaves the slot behind: writing then could join the next sends to
        this chat, or of this bot, into a burst Telegram would refuse, so take a fresh slot."""
        await self._pace(chat_id)
        started = time.monotonic()
        await attempting()
        if time.monotonic() - started > MARK_LATE_S:
            await self._pace(chat_id)

    async def send(self, message: Outbound, attempting: Attempting = untracked) -> SendResult:
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
                await self._pace_and_mark(chat_id, attempting)
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
                    if index == 0:
                        await self._pace_and_mark(chat_id, attempting)
                    else:
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
