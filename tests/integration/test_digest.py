"""The daily digest of a played cohort lists exactly what the test arranged, and each trainer
gets it once a day at their morning, in their own chat, where "#12 text" answers a learner.

Played for real on loopback: the Bot API emulator with the real PTB client (learners and a
trainer as chats), an SMTP sink for the learner whose bot is blocked, the dispatcher, the
Telegram poller and the notifier as `dripper run` runs them; a manual clock.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest

from dripper.channels.email.channel import EmailChannel
from dripper.clock import ManualClock
from dripper.engine.dispatcher import Dispatcher, DispatcherSettings
from dripper.enrollments.answers import AnswerStatus, record_quiz_answer
from dripper.enrollments.enroll import enroll
from dripper.inbound.telegram.poller import TelegramPoller
from dripper.inbox import reply_to_learner
from dripper.models import (
    Channel,
    Conversation,
    Enrollment,
    Learner,
    Message,
    MessageDirection,
    Trainer,
    TrainerNotice,
)
from dripper.sandbox import TelegramEmulator
from dripper.sandbox.smtp import SmtpSink
from dripper.trainers.digest import Digest, gather, render
from dripper.trainers.notifier import Notifier
from dripper.trainers.roster import add_trainer, cohort_ids, invite_token
from tests.fixtures.sandboxes import smtp_sandbox, telegram_sandbox
from tests.fixtures.telegram_data import COURSE_END, KEY, TOKEN, checked

pytestmark = pytest.mark.filterwarnings("ignore:Please use 'Bot.getUpdates")
os.environ["PTB_TIMEDELTA"] = "1"

ANN, BEN, CEM, DORA, EVE = 2001, 2002, 2003, 2004, 2005
TESS = 3001
PLAYED = COURSE_END + timedelta(minutes=5)  # all four prompts of the curriculum are out


@dataclass
class Env:
    emulator: TelegramEmulator
    sink: SmtpSink
    poller: TelegramPoller
    notifier: Notifier
    dispatcher: Dispatcher
    clock: ManualClock

    async def pump(self) -> None:
        await self.poller.run_until_idle()
        await self.notifier.run_once()
        await self.dispatcher.run_until_idle()

    async def at(self, moment: datetime) -> None:
        await self.clock.set(moment)
        await self.pump()

    def texts(self, chat_id: int) -> list[str]:
        return [str(m["text"]) for m in self.emulator.messages(TOKEN, chat_id)]


@pytest.fixture
async def env(db: str) -> AsyncIterator[Env]:
    async with (
        telegram_sandbox(TOKEN) as sandbox,
        smtp_sandbox("course@dripper.example") as (sink, email),
    ):
        clock = ManualClock(COURSE_END - timedelta(days=1))
        channels: dict[Channel, object] = {Channel.TELEGRAM: sandbox.channel, Channel.EMAIL: email}
        assert isinstance(email, EmailChannel)
        yield Env(
            sandbox.emulator,
            sink,
            TelegramPoller(sandbox.channel.bot, signing_key=KEY, now=clock.now),
            Notifier(channels, clock.now, timedelta(minutes=3)),  # type: ignore[arg-type]
            Dispatcher(channels, clock, "test", DispatcherSettings()),  # type: ignore[arg-type]
            clock,
        )


async def learner(
    env: Env, chat_id: int, name: str, cohort: str = "dec", email: str | None = None
) -> Learner:
    row = await Learner.create(
        first_name=name, telegram_chat_id=chat_id, email=email, timezone="UTC"
    )
    env.emulator.create_user(chat_id, name)
    env.emulator.start(TOKEN, chat_id)
    await enroll(checked(), cohort, COURSE_END, [row], env.clock.now())
    return row


async def answer_quiz(learner: Learner, option: int, channel: Channel, env: Env) -> None:
    enrollment = await Enrollment.get(learner_id=learner.id)
    result = await record_quiz_answer(enrollment.id, "quiz", 0, [option], channel, env.clock.now())
    assert result.status is AnswerStatus.RECORDED, result


async def conversation_of(learner: Learner) -> Conversation:
    return await Conversation.get(learner_id=learner.id)


async def played(env: Env) -> dict[str, Learner]:
    """Ann asks and waits; Ben asks and is answered; Cem answers nothing; Dora blocks the bot
    and goes on by email, where she answers the quiz right; Eve, in another cohort, asks.
    Ann and Ben answer the quiz wrong, each with another wrong option."""
    people = {
        "ann": await learner(env, ANN, "Ann"),
        "ben": await learner(env, BEN, "Ben"),
        "cem": await learner(env, CEM, "Cem"),
        "dora": await learner(env, DORA, "Dora", email="dora@example.com"),
        "eve": await learner(env, EVE, "Eve", cohort="other"),
    }
    await env.pump()  # their /start
    env.emulator.block(TOKEN, DORA)
    for minute in range(1, 6):
        await env.at(COURSE_END + timedelta(minutes=minute))
    env.emulator.send_text(TOKEN, ANN, "Which of the two lookups is faster?")
    env.emulator.send_text(TOKEN, BEN, "Does XLOOKUP work in Excel 2016?")
    env.emulator.send_text(TOKEN, EVE, "Is there a cheat sheet?")
    await env.pump()
    await answer_quiz(people["ann"], 1, Channel.TELEGRAM, env)
    await answer_quiz(people["ben"], 2, Channel.TELEGRAM, env)
    await answer_quiz(people["dora"], 0, Channel.EMAIL, env)
    ben = await conversation_of(people["ben"])
    await reply_to_learner(ben.id, "No, it needs Excel 2021 or 365.", env.clock.now())
    await env.pump()
    return people


async def digest_of(cohort: str | None, env: Env) -> Digest:
    ids = await cohort_ids([cohort]) if cohort else None
    return await gather(ids, env.clock.now() + timedelta(hours=1))


async def test_the_digest_lists_exactly_what_the_cohort_did(env: Env) -> None:
    people = await played(env)
    digest = await digest_of("dec", env)

    ann = await conversation_of(people["ann"])
    assert [(u.conversation_id, u.learner, u.waiting) for u in digest.unanswered] == [
        (ann.id, "Ann", 1)
    ]
    assert digest.unanswered[0].excerpt == "Which of the two lookups is faster?"
    assert [(s.learner, s.prompts) for s in digest.silent] == [("Cem", 3)]
    [missed] = digest.missed
    assert (missed.step_id, missed.answered, round(missed.wrong_share, 2)) == ("quiz", 3, 0.67)
    assert [(label, round(share, 2)) for label, share in missed.wrong_options] == [
        ("=VLOOKUP(..., TRUE)", 0.33),
        ("=SUM(...)", 0.33),
    ]
    day = PLAYED.strftime("%-d %b")
    assert [(c.learner, c.text, c.switched) for c in digest.changes] == [
        ("Dora", f"Telegram blocked on {day}; continuing by email", True)
    ]
    assert digest.opt_outs == [] and digest.uncertain == 0
    assert digest.counts() == {
        "unanswered": 1,
        "silent": 1,
        "channel_switches": 1,
        "blocked": 1,
        "bounced": 0,
        "opt_outs": 0,
        "flagged": 0,
        "uncertain": 0,
    }
    text = render(digest, markdown=False)
    assert text.splitlines()[0] == (
        "☀️ Digest (dec): 1 unanswered · 1 silent learner · 1 channel switch · 1 blocked bot"
    )
    assert f"#{ann.id} Ann (dec), waiting 1 h: Which of the two lookups is faster?" in text
    assert "Silent (1)\nCem (dec): no answer to the last 3 prompts" in text
    assert "quiz (" in text and "67 % wrong of 3; =VLOOKUP(..., TRUE) 33 %, =SUM(...) 33 %" in text
    # Every cohort: Eve's question too, and nothing else changes.
    everyone = await digest_of(None, env)
    assert [u.learner for u in everyone.unanswered] == ["Ann", "Eve"]
    assert [s.learner for s in everyone.silent] == ["Cem"]


async def test_each_trainer_gets_the_digest_once_at_their_morning_and_answers_from_it(
    env: Env,
) -> None:
    people = await played(env)
    tess, _ = await add_trainer("tess", name="Tess", timezone="Europe/Berlin", digest_at="08:30")
    env.emulator.create_user(TESS, "Tess")
    env.emulator.start(TOKEN, TESS, invite_token(KEY, tess))
    await env.pump()
    connected = len(env.texts(TESS))

    morning = datetime(2026, 12, 5, 7, 29, tzinfo=COURSE_END.tzinfo)  # 08:29 in Berlin
    await env.at(morning)
    assert len(env.texts(TESS)) == connected, "no digest before 08:30 Berlin time"
    await env.at(morning + timedelta(minutes=1))
    digest = env.texts(TESS)[-1]
    assert digest.startswith("☀️ Digest (every cohort): 2 unanswered · 1 silent learner")
    ann, eve = await conversation_of(people["ann"]), await conversation_of(people["eve"])
    assert f"#{ann.id} Ann" in digest and f"#{eve.id} Eve" in digest
    await env.at(morning + timedelta(hours=3))
    assert len(env.texts(TESS)) == connected + 1, "one digest a day"
    [notice] = await TrainerNotice.filter(kind="digest")
    assert notice.conversations == [ann.id, eve.id]

    # A plain reply to the digest is never guessed; "#ID text" answers that learner.
    sent = env.emulator.messages(TOKEN, TESS)[-1]
    env.emulator.send_text(TOKEN, TESS, "Thanks!", reply_to_message_id=sent["message_id"])
    await env.pump()
    assert "The digest lists several conversations" in env.texts(TESS)[-1]
    env.emulator.send_text(
        TOKEN, TESS, f"#{ann.id} XLOOKUP, by far.", reply_to_message_id=sent["message_id"]
    )
    await env.pump()
    assert env.texts(ANN)[-1] == "XLOOKUP, by far."
    reply = await Message.get(conversation_id=ann.id, direction=MessageDirection.OUTBOUND)
    assert reply.author_id == tess.id  # type: ignore[attr-defined]

    # The next morning, only what still waits: Eve (Ann was answered).
    await env.at(morning + timedelta(days=1, minutes=1))
    assert env.texts(TESS)[-1].startswith("☀️ Digest (every cohort): 1 unanswered")


async def test_quiet_hours_hold_the_digest_and_nothing_waiting_sends_nothing(env: Env) -> None:
    tess, _ = await add_trainer("tess", name="Tess", digest_at="07:00")
    await Trainer.filter(id=tess.id).update(quiet_start="06:00", quiet_end="08:00")
    env.emulator.create_user(TESS, "Tess")
    env.emulator.start(TOKEN, TESS, invite_token(KEY, tess))
    await env.pump()
    connected = len(env.texts(TESS))
    await learner(env, ANN, "Ann")
    await env.at(datetime(2026, 12, 5, 6, 0, tzinfo=COURSE_END.tzinfo))
    env.emulator.send_text(TOKEN, ANN, "Hello?")
    await env.at(datetime(2026, 12, 5, 7, 30, tzinfo=COURSE_END.tzinfo))
    assert len(env.texts(TESS)) == connected, "held in quiet hours"
    await env.at(datetime(2026, 12, 5, 8, 0, tzinfo=COURSE_END.tzinfo))
    # Past the quiet hours: the batched notification of Ann's message, then the digest.
    assert env.texts(TESS)[-1].startswith("☀️ Digest (every cohort): 1 unanswered")

    # A day with nothing waiting: no message at all, but the day is marked done.
    ann = await Conversation.get()
    await reply_to_learner(ann.id, "Hi Ann!", env.clock.now())
    await env.pump()
    before = len(env.texts(TESS))
    await env.at(datetime(2026, 12, 6, 8, 0, tzinfo=COURSE_END.tzinfo))
    await env.at(datetime(2026, 12, 6, 9, 0, tzinfo=COURSE_END.tzinfo))
    assert len(env.texts(TESS)) == before
    assert await TrainerNotice.filter(kind="digest").count() == 1  # Dec 5's only
    assert (await Trainer.get(id=tess.id)).digest_sent_on == "2026-12-06"


async def test_a_trainer_without_telegram_gets_the_digest_by_email(env: Env) -> None:
    await played(env)
    await add_trainer("tom", name="Tom", email="tom@example.com", digest_at="07:00")
    await env.pump()  # first seen on the day played: the first digest is the next morning's
    assert not [m for m in env.sink.messages if "tom@example.com" in m.rcpt_tos]
    await env.at(datetime(2026, 12, 5, 7, 0, tzinfo=COURSE_END.tzinfo))
    mails = [m for m in env.sink.messages if "tom@example.com" in m.rcpt_tos]
    digest = [m.message for m in mails if str(m.message["Subject"]).startswith("dripper digest")]
    assert len(digest) == 1, [str(m.message["Subject"]) for m in mails]
    assert str(digest[0]["Subject"]) == (
        "dripper digest: 2 unanswered · 1 silent learner · 1 channel switch · 1 blocked bot"
    )
    body = digest[0].get_body(("plain",))
    text = body.get_content() if body is not None else ""
    assert "Silent (1)" in text and "Answer in dripper tui" in text, text
    assert "reply to this message" not in text  # an emailed reply would not reach anyone
