"""A trainer's answer goes back on the learner's own channel, as a real reply.

End to end through real servers on loopback: the Bot API emulator (a learner writes, the poller
files it, the trainer answers, the chat receives the answer) and an SMTP sink (the answer to an
email is threaded under it: In-Reply-To, References, "Re:" subject).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from dripper.channels.email.channel import EmailChannel
from dripper.channels.telegram.channel import TelegramChannel
from dripper.clock import ManualClock
from dripper.engine.dispatcher import Dispatcher
from dripper.enrollments.pause import pause
from dripper.inbox import record_learner_message, reply_to_learner
from dripper.models import (
    Channel,
    Delivery,
    DeliveryState,
    Enrollment,
    InboundItem,
    Message,
    MessageDirection,
)
from dripper.sandbox import TelegramEmulator
from dripper.sandbox.smtp import SmtpSink
from tests.fixtures.reply_data import NOW, TOKEN, learner_in_course, learner_wrote
from tests.fixtures.sandboxes import smtp_sandbox, telegram_sandbox

LEARNER_EMAIL = (
    b"From: Zo\xc3\xab <zoe@example.com>\r\n"
    b"To: trainer@dripper.example\r\n"
    b"Subject: =?utf-8?q?Question_about_pivots?=\r\n"
    b"Message-ID: <Learner.1@Example.COM>\r\n"
    b"In-Reply-To: <drip1@dripper.example>\r\n"
    b"References: <drip0@dripper.example> <drip1@dripper.example>\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
    b"How do I group dates by month?\r\n"
)


@pytest.fixture
async def telegram(db: str) -> AsyncIterator[tuple[TelegramEmulator, TelegramChannel]]:
    async with telegram_sandbox(TOKEN) as sandbox:
        yield sandbox.emulator, sandbox.channel


@pytest.fixture
async def smtp(db: str) -> AsyncIterator[tuple[SmtpSink, EmailChannel]]:
    async with smtp_sandbox("trainer@dripper.example") as sandbox:
        yield sandbox


async def _dispatch(channels: dict[Channel, object]) -> None:
    dispatcher = Dispatcher(channels, ManualClock(NOW), "replies")  # type: ignore[arg-type]
    await dispatcher.run_until_idle()


async def test_a_telegram_message_is_answered_in_the_learners_chat(
    telegram: tuple[TelegramEmulator, TelegramChannel],
) -> None:
    emulator, channel = telegram
    _, conversation = await learner_wrote(
        emulator, channel, 42, "Zoë", "Is <b> & 👋 allowed in pivot names?"
    )

    await reply_to_learner(conversation.id, "Yes, **any** text works, even <b> & 👋.", NOW)
    await _dispatch({Channel.TELEGRAM: channel})

    answer = emulator.messages(TOKEN, 42)[-1]
    assert answer["text"] == "Yes, any text works, even <b> & 👋."
    delivery = await Delivery.get(kind="reply")
    assert delivery.state == DeliveryState.SENT
    assert delivery.channel == Channel.TELEGRAM
    await conversation.refresh_from_db()
    assert conversation.status == "waiting"


async def test_an_email_is_answered_as_a_threaded_reply(
    smtp: tuple[SmtpSink, EmailChannel],
) -> None:
    sink, channel = smtp
    learner = await learner_in_course(email="zoe@example.com")
    item = await InboundItem.create(
        channel=Channel.EMAIL,
        account="imap:test",
        external_id="<learner.1@example.com>",
        payload=LEARNER_EMAIL,
    )
    question = await record_learner_message(
        learner.id, Channel.EMAIL, "How do I group dates by month?", NOW, inbound_id=item.id
    )

    await reply_to_learner(question.conversation_id, "Right-click a date, then *Group*.", NOW)  # type: ignore[attr-defined]
    await _dispatch({Channel.EMAIL: channel})

    [received] = await sink.wait_for(1)
    mail = received.message
    assert mail["In-Reply-To"] == "<Learner.1@Example.COM>"
    assert mail["References"].split() == [
        "<drip0@dripper.example>",
        "<drip1@dripper.example>",
        "<Learner.1@Example.COM>",
    ]
    assert str(mail["Subject"]) == "Re: Question about pivots"
    assert "Right-click a date, then Group." in mail.get_body(("plain",)).get_content()


async def test_two_trainers_answering_at_once_both_reach_the_learner(
    telegram: tuple[TelegramEmulator, TelegramChannel],
) -> None:
    emulator, channel = telegram
    _, conversation = await learner_wrote(emulator, channel, 7, "Ana", "Help?")
    await reply_to_learner(conversation.id, "From Anna: sure!", NOW)
    await reply_to_learner(conversation.id, "From Ben: happy to help.", NOW)
    await _dispatch({Channel.TELEGRAM: channel})
    texts = [m["text"] for m in emulator.messages(TOKEN, 7)]
    assert "From Anna: sure!" in texts
    assert "From Ben: happy to help." in texts
    outbound = await Message.filter(direction=MessageDirection.OUTBOUND).count()
    assert outbound == 2


async def test_a_paused_learner_still_gets_the_trainers_answer(
    telegram: tuple[TelegramEmulator, TelegramChannel],
) -> None:
    emulator, channel = telegram
    learner, conversation = await learner_wrote(
        emulator, channel, 9, "Liam", "I'm off for two weeks, one last question"
    )
    enrollment = await Enrollment.get(learner_id=learner.id)
    await pause([enrollment.id], "learner", NOW)
    await reply_to_learner(conversation.id, "Enjoy the break!", NOW)
    await _dispatch({Channel.TELEGRAM: channel})
    assert emulator.messages(TOKEN, 9)[-1]["text"] == "Enjoy the break!"
