"""A trainer's own chat with the bot: binding it, and answering learners from it.

The trainer replies (Telegram's reply) to a notification, or to one of the bot's answers about
a conversation, and the text goes to that learner on the learner's own channel, filed as that
trainer's reply exactly as from the dashboard (`inbox.reply_to_learner`). `/claim`, `/close`
and `/snooze 4h` sent as such replies act on that conversation. A notification about several
conversations needs the conversation's number first (`#12 text`, `/close #12`). Whatever
cannot be matched to one conversation gets an answer saying so; nothing is guessed.

Every bot message about one conversation is kept as a sent `TrainerNotice`, so replying to
"Sent to Anna" continues with Anna.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from telegram import Bot
from telegram.constants import ParseMode
from telegram.error import TelegramError

from dripper.inbound.telegram.events import (
    BadTap,
    Command,
    Event,
    Ignored,
    LearnerMessage,
    MemberChange,
    Tap,
)
from dripper.inbox import assign, close, reply_to_learner, snooze
from dripper.models import Channel, Conversation, Trainer, TrainerNotice
from dripper.schedule.offsets import parse_duration
from dripper.store.notices import conversation_learners, notice_conversations
from dripper.trainers.roster import Bound, bind_chat, is_trainer_token

log = logging.getLogger("dripper.inbound.telegram.trainers")

TRAINER_HELP = (
    "This is your trainer chat: I tell you here when learners write.\n\n"
    "Reply to a notification to answer the learner; it goes out on their own channel "
    "(Telegram or email) as your reply.\n"
    "Reply /claim to take the conversation, /close to close it, /snooze 4h to hide it for a "
    "while.\n"
    "/help - this list"
)
HOW_TO_ANSWER = (
    "To answer a learner, reply to my notification of their message (swipe left on it, or "
    "tap it and choose Reply)."
)
NOT_OURS = (
    "I can't tell which conversation that message belongs to. Reply to one of my "
    "notifications instead."
)
NOTHING_TO_ANSWER = (
    "That digest lists no conversation waiting for an answer. Reply to a notification, or "
    "answer in dripper tui."
)
LEARNER_LINK = (
    "This is your trainer chat, so it can't be connected to a learner. A learner's link works "
    "from the learner's own Telegram account."
)
DEFAULT_SNOOZE = timedelta(hours=4)
_NUMBERED = re.compile(r"#(\d{1,12})(?:\s+(.*))?", re.DOTALL)


def _escape(text: str) -> str:
    return html.escape(text, quote=False)


class TrainerChat:
    """Carries out events from trainers' chats; `handle` returns None, or why to flag."""

    def __init__(
        self, bot: Bot, now: Callable[[], datetime], wake: asyncio.Event | None = None
    ) -> None:
        self._bot = bot
        self._now = now
        self._wake = wake

    # ---- binding -------------------------------------------------------------------------

    async def bind(self, chat_id: int, key: bytes, token: str) -> str | None:
        """`/start TOKEN` with a trainer's invite token."""
        result = await bind_chat(key, token, chat_id)
        trainer = result.trainer
        if result.outcome is Bound.BOUND:
            assert trainer is not None
            log.info("trainer %s connected their Telegram chat", trainer.handle)
            await self._say(chat_id, f"Hi {trainer.name}! You're connected.\n\n{TRAINER_HELP}")
            return None
        if result.outcome is Bound.AGAIN:
            await self._say(chat_id, f"You're already connected.\n\n{TRAINER_HELP}")
            return None
        if result.outcome is Bound.USED:
            await self._say(
                chat_id,
                "This trainer link was used already. Ask for a new one "
                "(dripper trainers invite HANDLE).",
            )
            return "trainer invite link already used"
        if result.outcome is Bound.LEARNER_CHAT:
            await self._say(
                chat_id,
                "This Telegram account is connected to a learner, so it can't be a trainer "
                "chat. Open the link from your own account.",
            )
            return "trainer invite opened in a learner's chat; not used"
        if result.outcome is Bound.OTHER_TRAINER:
            await self._say(chat_id, "This chat is already another trainer's chat.")
            return "trainer invite opened in another trainer's chat; not used"
        await self._say(chat_id, "This link doesn't work. Please ask for a new one.")
        return "invalid trainer invite token"

    # ---- events --------------------------------------------------------------------------

    async def handle(self, trainer: Trainer, event: Event, key: bytes | None) -> str | None:
        chat_id = int(trainer.telegram_chat_id or 0)
        if isinstance(event, Command):
            return await self._command(trainer, chat_id, event, key)
        if isinstance(event, LearnerMessage):
            return await self._text(trainer, chat_id, event)
        if isinstance(event, Tap | BadTap):
            await self._answer_tap(event.query_id)
            return None
        if isinstance(event, MemberChange):
            if event.status == "kicked":
                log.warning("trainer %s blocked the bot: no more notifications", trainer.handle)
                trainer.notify = False
            elif event.status == "member":
                trainer.notify = True
            await trainer.save(update_fields=["notify"])
            return None
        assert isinstance(event, Ignored)
        return event.reason

    async def _command(
        self, trainer: Trainer, chat_id: int, command: Command, key: bytes | None
    ) -> str | None:
        if command.name == "start" and command.argument:
            if key is not None and is_trainer_token(key, command.argument):
                return await self.bind(chat_id, key, command.argument)
            await self._say(chat_id, LEARNER_LINK)
            return "learner invite link opened in a trainer's chat; not used"
        if command.name in ("start", "help"):
            await self._say(chat_id, TRAINER_HELP)
            return None
        if command.name not in ("claim", "close", "snooze"):
            await self._say(chat_id, f"I don't know /{command.name}.\n\n{TRAINER_HELP}")
            return None
        if command.reply_to is None:
            await self._say(chat_id, f"Send /{command.name} as a reply to my notification.")
            return None
        found = await self._conversation(trainer, chat_id, command.reply_to, command.argument)
        if found is None:
            return None
        conversation_id, rest = found
        now = self._now()
        if command.name == "claim":
            await assign(conversation_id, trainer.id, now)
            await self._about(trainer, conversation_id, "is yours now: only you hear of it.")
        elif command.name == "close":
            await close(conversation_id, now)
            await self._about(trainer, conversation_id, "closed; it opens again if they write.")
        else:
            try:
                length = parse_duration(rest) if rest else DEFAULT_SNOOZE
            except ValueError:
                await self._say(chat_id, "Tell me for how long, e.g. /snooze 4h or /snooze 2d.")
                return None
            until = now + length
            await snooze(conversation_id, until, now)
            local = until.astimezone(ZoneInfo(trainer.timezone or "UTC"))
            await self._about(trainer, conversation_id, f"snoozed until {local:%a %-d %b, %H:%M}.")
        return None

    async def _text(self, trainer: Trainer, chat_id: int, message: LearnerMessage) -> str | None:
        if message.edited:
            await self._say(chat_id, "Edits are not passed on: send a new reply instead.")
            return None
        if message.reply_to is None:
            await self._say(chat_id, HOW_TO_ANSWER)
            return None
        if message.attachments:
            await self._say(chat_id, "I can pass on text only: answer with a text message.")
            return None
        found = await self._conversation(trainer, chat_id, message.reply_to, message.body)
        if found is None:
            return None
        conversation_id, body = found
        if not body.strip():
            await self._say(chat_id, "That reply is empty: nothing was sent.")
            return None
        sent = await reply_to_learner(conversation_id, body, self._now(), author_id=trainer.id)
        if self._wake is not None:
            self._wake.set()
        where = "by email" if sent.channel is Channel.EMAIL else "on Telegram"
        log.info(
            "trainer %s answered conversation %d from Telegram", trainer.handle, conversation_id
        )
        await self._about(trainer, conversation_id, f"gets your answer {where}. ✓")
        return None

    async def _conversation(
        self, trainer: Trainer, chat_id: int, reply_to: int, text: str
    ) -> tuple[int, str] | None:
        """The one conversation a reply is about, and the text left; None (and the trainer is
        told why) when it cannot be told."""
        found = await notice_conversations(trainer.id, reply_to)
        kind, conversations = found if found is not None else ("", [])
        if not conversations:
            await self._say(chat_id, NOTHING_TO_ANSWER if kind == "digest" else NOT_OURS)
            return None
        numbered = _NUMBERED.match(text.strip())
        if numbered and int(numbered.group(1)) in conversations:
            chosen, text = int(numbered.group(1)), numbered.group(2) or ""
        elif len(conversations) == 1 and kind != "digest":  # a digest is never answered whole
            chosen = conversations[0]
        else:
            numbers = ", ".join(f"#{i}" for i in conversations)
            if kind != "digest":
                what = "That notification is about several conversations"
            elif len(conversations) == 1:
                what = "That is the digest, not one conversation"
            else:
                what = "The digest lists several conversations"
            await self._say(
                chat_id, f"{what}: start your reply with the conversation's number ({numbers})."
            )
            return None
        if not await Conversation.exists(id=chosen):
            await self._say(chat_id, "That conversation is gone (the learner's data was erased).")
            return None
        return chosen, text

    # ---- replies -------------------------------------------------------------------------

    async def _about(self, trainer: Trainer, conversation_id: int, text: str) -> None:
        """Say something about one conversation, as a message the trainer can reply to."""
        names = await conversation_learners([conversation_id])
        name = names.get(conversation_id, "The learner")
        sent = await self._say(int(trainer.telegram_chat_id or 0), f"{name} {text}")
        if sent is not None:
            await TrainerNotice.create(
                trainer_id=trainer.id,
                kind="answer",
                channel=Channel.TELEGRAM,
                body=f"{name} {text}",
                conversations=[conversation_id],
                sent=True,
                telegram_message_id=sent,
                attempts=1,
                sent_at=self._now(),
            )

    async def _say(self, chat_id: int, text: str) -> int | None:
        try:
            message = await self._bot.send_message(
                chat_id, _escape(text), parse_mode=ParseMode.HTML
            )
        except TelegramError as exc:
            log.warning("could not answer in trainer chat %d: %s", chat_id, exc.message)
            return None
        return message.message_id

    async def _answer_tap(self, query_id: str) -> None:
        try:
            await self._bot.answer_callback_query(query_id, text="This button is no longer active.")
        except TelegramError as exc:
            log.info("could not answer button press %s: %s", query_id, exc.message)
