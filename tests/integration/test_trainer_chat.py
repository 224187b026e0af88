"""Trainers on Telegram: binding their own chat, notifications, answering from the chat.

The emulator on loopback with the real PTB client and real SQLite; a manual clock drives the
batching and quiet hours. Trainers and learners are played through the emulator's control API.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import pytest

from dripper.clock import ManualClock
from dripper.engine.dispatcher import Dispatcher, DispatcherSettings
from dripper.enrollments.enroll import enroll
from dripper.inbound.telegram.poller import TelegramPoller
from dripper.inbound.telegram.trainer_chat import HOW_TO_ANSWER, LEARNER_LINK, NOT_OURS
from dripper.inbox import assign
from dripper.learners.invites import invite_token as learner_invite_token
from dripper.learners.invites import invites_for
from dripper.models import (
    Channel,
    Conversation,
    ConversationStatus,
    InboundItem,
    InboundState,
    Learner,
    Message,
    MessageDirection,
    Trainer,
    TrainerNotice,
)
from dripper.sandbox import TelegramEmulator
from dripper.trainers.notifier import Notifier
from dripper.trainers.roster import QuietHours, add_trainer, invite_token
from tests.fixtures.sandboxes import smtp_sandbox, telegram_sandbox
from tests.fixtures.telegram_data import COURSE_END, KEY, TOKEN, checked

pytestmark = pytest.mark.filterwarnings("ignore:Please use 'Bot.getUpdates")
os.environ["PTB_TIMEDELTA"] = "1"

ANN, BEN = 2001, 2002  # learners
TESS, TOM = 3001, 3002  # trainers
BATCH = timedelta(minutes=3)


@dataclass
class Env:
    emulator: TelegramEmulator
    poller: TelegramPoller
    notifier: Notifier
    dispatcher: Dispatcher
    clock: ManualClock

    async def pump(self) -> None:
        """Receive what the chats did, tell the trainers, send what is due."""
        await self.poller.run_until_idle()
        await self.notifier.run_once()
        await self.dispatcher.run_until_idle()

    def texts(self, chat_id: int) -> list[str]:
        return [str(m["text"]) for m in self.emulator.messages(TOKEN, chat_id)]

    def last(self, chat_id: int) -> dict[str, object]:
        return self.emulator.messages(TOKEN, chat_id)[-1]

    def reply(self, chat_id: int, text: str, to: object | None = None) -> None:
        message = self.last(chat_id) if to is None else to
        assert isinstance(message, dict)
        self.emulator.send_text(TOKEN, chat_id, text, reply_to_message_id=message["message_id"])


@pytest.fixture
async def env(db: str) -> AsyncIterator[Env]:
    async with telegram_sandbox(TOKEN) as sandbox:
        clock = ManualClock(COURSE_END - timedelta(days=1))  # before the first step
        channels = {Channel.TELEGRAM: sandbox.channel}
        yield Env(
            sandbox.emulator,
            TelegramPoller(sandbox.channel.bot, signing_key=KEY, now=clock.now),
            Notifier(channels, clock.now, BATCH),
            Dispatcher(channels, clock, "test", DispatcherSettings()),
            clock,
        )


async def learner(env: Env, chat_id: int, name: str, cohort: str = "dec") -> Learner:
    row = await Learner.create(first_name=name, telegram_chat_id=chat_id, timezone="UTC")
    env.emulator.create_user(chat_id, name)
    env.emulator.start(TOKEN, chat_id)
    await enroll(checked(), cohort, COURSE_END, [row], env.clock.now())
    return row


async def trainer(env: Env, chat_id: int, handle: str, **options: object) -> Trainer:
    row, _ = await add_trainer(handle, name=handle.title(), **options)  # type: ignore[arg-type]
    env.emulator.create_user(chat_id, handle.title())
    env.emulator.start(TOKEN, chat_id, invite_token(KEY, row))
    await env.pump()
    return await Trainer.get(id=row.id)


async def test_an_invite_binds_the_trainers_own_chat_once(env: Env) -> None:
    row, _ = await add_trainer("tess", name="Tess")
    link = invite_token(KEY, row)
    env.emulator.create_user(TESS, "Tess")
    env.emulator.start(TOKEN, TESS, link)
    await env.pump()
    assert (await Trainer.get(id=row.id)).telegram_chat_id == TESS
    assert "You're connected" in env.texts(TESS)[-1]
    env.emulator.start(TOKEN, TESS, link)  # the trainer again: harmless
    await env.pump()
    assert "already connected" in env.texts(TESS)[-1]
    # The same link from another account: used up.
    env.emulator.create_user(TOM, "Tom")
    env.emulator.start(TOKEN, TOM, link)
    await env.pump()
    assert "used already" in env.texts(TOM)[-1]
    assert (await Trainer.get(id=row.id)).telegram_chat_id == TESS
    # A new link moves the trainer to a new chat (a new phone).
    env.emulator.start(TOKEN, TOM, invite_token(KEY, await Trainer.get(id=row.id)))
    await env.pump()
    assert (await Trainer.get(id=row.id)).telegram_chat_id == TOM


async def test_a_learners_chat_never_becomes_a_trainers_and_the_other_way_round(
    env: Env,
) -> None:
    ann = await learner(env, ANN, "Ann")
    tess, _ = await add_trainer("tess", name="Tess")
    env.emulator.start(TOKEN, ANN, invite_token(KEY, tess))
    await env.pump()
    assert "connected to a learner" in env.texts(ANN)[-1]
    assert (await Trainer.get(id=tess.id)).telegram_chat_id is None
    tess = await trainer(env, TESS, "tess")
    # Ben's learner link opened in Tess's trainer chat: refused, Ben stays unbound.
    ben = await Learner.create(first_name="Ben", timezone="UTC")
    invite = (await invites_for([ben]))[ben.id]
    env.emulator.start(TOKEN, TESS, learner_invite_token(KEY, invite.id))
    await env.pump()
    assert env.texts(TESS)[-1] == LEARNER_LINK
    assert (await Learner.get(id=ben.id)).telegram_chat_id is None
    # Tess's text is never filed as a learner's message.
    env.emulator.send_text(TOKEN, TESS, "hello?")
    await env.pump()
    assert env.texts(TESS)[-1] == HOW_TO_ANSWER
    assert await Message.filter(direction=MessageDirection.INBOUND).count() == 0
    assert ann.telegram_chat_id == ANN


async def test_new_messages_are_announced_at_once_then_batched(env: Env) -> None:
    await learner(env, ANN, "Ann")
    tess = await trainer(env, TESS, "tess")
    before = len(env.texts(TESS))
    env.emulator.send_text(TOKEN, ANN, "How do I lock a cell?")
    await env.pump()
    [notice] = env.texts(TESS)[before:]
    assert "Ann" in notice and "How do I lock a cell?" in notice and "dec" in notice
    env.emulator.send_text(TOKEN, ANN, "In a shared workbook, I mean")
    await env.pump()
    assert len(env.texts(TESS)) == before + 1  # within the batch: held
    await env.clock.advance(BATCH)
    await env.pump()
    assert len(env.texts(TESS)) == before + 2
    assert "In a shared workbook, I mean" in env.texts(TESS)[-1]
    assert "How do I lock" not in env.texts(TESS)[-1]  # announced once
    assert await TrainerNotice.filter(trainer_id=tess.id, sent=False).count() == 0


async def test_quiet_hours_hold_notifications_until_they_end(env: Env) -> None:
    await learner(env, ANN, "Ann")
    start = env.clock.now()
    quiet = QuietHours.parse(f"{start:%H}:00-{(start + timedelta(hours=2)):%H}:00")
    await trainer(env, TESS, "tess", quiet=quiet)
    before = len(env.texts(TESS))
    env.emulator.send_text(TOKEN, ANN, "Are you there?")
    await env.pump()
    await env.clock.advance(timedelta(hours=1))
    await env.pump()
    assert len(env.texts(TESS)) == before
    await env.clock.advance(timedelta(hours=1))
    await env.pump()
    assert "Are you there?" in env.texts(TESS)[-1]


async def test_assignment_and_cohorts_decide_who_hears(env: Env) -> None:
    await learner(env, ANN, "Ann", cohort="dec")
    await learner(env, BEN, "Ben", cohort="jan")
    await trainer(env, TESS, "tess")
    tom = await trainer(env, TOM, "tom", follows=["jan"])
    tess_before, tom_before = len(env.texts(TESS)), len(env.texts(TOM))
    env.emulator.send_text(TOKEN, ANN, "dec question")
    await env.pump()
    assert len(env.texts(TOM)) == tom_before  # Tom follows jan only
    assert "dec question" in env.texts(TESS)[-1]
    await env.clock.advance(BATCH)
    env.emulator.send_text(TOKEN, BEN, "first jan question")
    await env.pump()
    assert "first jan question" in env.texts(TOM)[-1]
    assert "first jan question" in env.texts(TESS)[-1]  # Tess follows every cohort
    [ben_conversation] = await Conversation.filter(learner__first_name="Ben")
    await assign(ben_conversation.id, tom.id, env.clock.now())
    await env.clock.advance(BATCH)
    env.emulator.send_text(TOKEN, BEN, "second jan question")
    await env.pump()
    assert "second jan question" in env.texts(TOM)[-1]
    assert all("second jan question" not in text for text in env.texts(TESS)[tess_before:])


async def test_replying_to_a_notification_answers_the_learner_as_that_trainer(env: Env) -> None:
    ann = await learner(env, ANN, "Ann")
    tess = await trainer(env, TESS, "tess")
    env.emulator.send_text(TOKEN, ANN, "How do I lock a cell?")
    await env.pump()
    notice = env.last(TESS)
    env.reply(TESS, "Review > Protect Sheet, Ann.", to=notice)
    await env.pump()
    assert env.texts(ANN)[-1] == "Review > Protect Sheet, Ann."
    [answer] = await Message.filter(direction=MessageDirection.OUTBOUND, author_id=tess.id)
    assert answer.body == "Review > Protect Sheet, Ann."
    conversation = await Conversation.get(learner_id=ann.id)
    assert answer.conversation_id == conversation.id  # type: ignore[attr-defined]
    assert "gets your answer on Telegram" in env.texts(TESS)[-1]
    # Replying to the bot's confirmation continues with Ann; commands act on the conversation.
    env.reply(TESS, "/claim")
    await env.pump()
    assert (await Conversation.get(id=conversation.id)).assignee_id == tess.id  # type: ignore[attr-defined]
    env.reply(TESS, "/snooze 4h")
    await env.pump()
    snoozed = await Conversation.get(id=conversation.id)
    assert snoozed.status is ConversationStatus.SNOOZED
    assert snoozed.snoozed_until == env.clock.now() + timedelta(hours=4)
    env.reply(TESS, "/close", to=notice)
    await env.pump()
    assert (await Conversation.get(id=conversation.id)).status is ConversationStatus.CLOSED


async def test_a_reply_that_names_no_one_conversation_is_never_guessed(env: Env) -> None:
    await learner(env, ANN, "Ann")
    await learner(env, BEN, "Ben")
    tess = await trainer(env, TESS, "tess")
    welcome = env.last(TESS)
    env.emulator.send_text(TOKEN, ANN, "question from Ann")
    env.emulator.send_text(TOKEN, BEN, "question from Ben")
    await env.pump()
    notice = env.last(TESS)
    assert "2 new messages in 2 conversations" in str(notice["text"])
    env.reply(TESS, "Sure!", to=notice)
    await env.pump()
    assert "start your reply with the conversation's number" in env.texts(TESS)[-1]
    env.reply(TESS, "Not a notification", to=welcome)
    await env.pump()
    assert env.texts(TESS)[-1] == NOT_OURS
    assert await Message.filter(direction=MessageDirection.OUTBOUND, author_id=tess.id).count() == 0
    ben_conversation = await Conversation.get(learner__first_name="Ben")
    env.reply(TESS, f"#{ben_conversation.id} Hi Ben, good one.", to=notice)
    await env.pump()
    assert env.texts(BEN)[-1] == "Hi Ben, good one."
    assert "question from Ann" not in env.texts(BEN)[-1]
    flagged = await InboundItem.filter(state=InboundState.FLAGGED).count()
    assert flagged == 0


async def test_a_trainer_without_telegram_is_told_by_email(db: str) -> None:
    async with (
        telegram_sandbox(TOKEN) as sandbox,
        smtp_sandbox("course@example.com") as (sink, email),
    ):
        clock = ManualClock(COURSE_END - timedelta(days=1))  # before the first step
        channels = {Channel.TELEGRAM: sandbox.channel, Channel.EMAIL: email}
        env = Env(
            sandbox.emulator,
            TelegramPoller(sandbox.channel.bot, signing_key=KEY, now=clock.now),
            Notifier(channels, clock.now, BATCH),
            Dispatcher(channels, clock, "test", DispatcherSettings()),
            clock,
        )
        await learner(env, ANN, "Ann")
        await add_trainer("tess", name="Tess", email="tess@example.com")
        env.emulator.send_text(TOKEN, ANN, "Where is the handout?")
        await env.pump()
        [mail] = [m for m in sink.messages if "tess@example.com" in m.rcpt_tos]
        message = mail.message
        assert message["Subject"] == "Ann wrote"
        assert message["Auto-Submitted"] == "auto-replied"
        body = message.get_body(("plain",))
        assert body is not None
        text = body.get_content()
        assert "Where is the handout?" in text and "You get this as a trainer" in text
