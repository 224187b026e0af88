"""The trainer answers from the dashboard and the learner receives it, over real servers.

Telegram: a learner writes through the Bot API emulator, the poller files it, the trainer opens
the dashboard, picks the conversation in the inbox, types an answer and presses ctrl+s; the
dispatcher sends it and the emulator shows it in that learner's chat.

Email: a learner's reply is delivered into an IMAP mailbox (Dovecot, and the embedded server),
the IMAP poller files it, the trainer answers from the dashboard, and the aiosmtpd sink receives
the answer threaded under the learner's mail.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from dripper.channels.email.channel import EmailChannel
from dripper.clock import ManualClock
from dripper.engine.dispatcher import Dispatcher
from dripper.inbound.email.poller import ImapPoller, PollerOptions
from dripper.models import Channel, Delivery, DeliveryKind, DeliveryState
from dripper.sandbox.seed import seed_course
from dripper.sandbox.smtp import SmtpSink
from tests.fixtures.mail import Mailbox, eml
from tests.fixtures.reply_data import TOKEN, learner_wrote
from tests.fixtures.sandboxes import smtp_sandbox, telegram_sandbox
from tests.fixtures.waiting import until_shown
from tui.app import DripperApp
from tui.screens.conversation import ConversationScreen
from tui.screens.inbox import InboxScreen
from tui.session import DashboardConfig

KEY = b"inbound-test-hmac-key-0123456789"
NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


async def _answer_first_conversation(url: str, text: str) -> None:
    """What a trainer does: open the dashboard, Enter on the newest conversation, r, type it,
    ctrl+s."""
    config = DashboardConfig(url, "anna", now=lambda: NOW + timedelta(minutes=5))
    app = DripperApp(config)
    async with app.run_test(size=(100, 30)) as pilot:
        await until_shown(
            pilot, lambda: isinstance(app.screen, InboxScreen) and app.screen.fills > 0
        )
        await pilot.press("enter")
        await until_shown(pilot, lambda: isinstance(app.screen, ConversationScreen))
        await pilot.press("r")
        await pilot.press(*("space" if char == " " else char for char in text))
        await pilot.press("ctrl+s")
        screen = app.screen
        assert isinstance(screen, ConversationScreen)
        await until_shown(pilot, lambda: screen.composer.text == "")  # sent: the composer cleared
        await app.workers.wait_for_complete()


async def _dispatch(channels: dict[Channel, object]) -> None:
    dispatcher = Dispatcher(channels, ManualClock(NOW + timedelta(minutes=6)), "e2e")  # type: ignore[arg-type]
    await dispatcher.run_until_idle()


async def test_a_telegram_question_is_answered_from_the_dashboard(db: str) -> None:
    async with telegram_sandbox(TOKEN) as sandbox:
        await learner_wrote(
            sandbox.emulator, sandbox.channel, 42, "Zoë", "How do I freeze the top row?"
        )
        await _answer_first_conversation(db, "View, then Freeze Panes.")
        [reply] = await Delivery.filter(kind=DeliveryKind.REPLY)
        assert reply.state is DeliveryState.PENDING
        await _dispatch({Channel.TELEGRAM: sandbox.channel})
        assert sandbox.emulator.messages(TOKEN, 42)[-1]["text"] == "View, then Freeze Panes."
        await reply.refresh_from_db()
        assert (reply.state, reply.channel) == (DeliveryState.SENT, Channel.TELEGRAM)


@pytest.fixture
async def smtp(db: str) -> AsyncIterator[tuple[SmtpSink, EmailChannel]]:
    async with smtp_sandbox("course@example.com") as sandbox:
        yield sandbox


async def test_an_email_reply_is_answered_from_the_dashboard_in_its_thread(
    db: str,
    mailbox: Mailbox,
    smtp: tuple[SmtpSink, EmailChannel],
) -> None:
    sink, channel = smtp
    [learner] = await seed_course(1, sent=("hello", "reflect"), key=KEY)
    mailbox.deliver(
        eml(
            "reply_gmail",
            **{"from": learner.email},
            to=learner.reply_to(KEY),
            in_reply_to=learner.message_ids["reflect"],
        )
    )
    poller = ImapPoller(mailbox.settings, mailbox.password, KEY, PollerOptions())
    await poller.connect()
    try:
        report = await poller.poll_once()
    finally:
        await poller.close()
    assert report.processed["reply"] == 1

    await _answer_first_conversation(db, "Great work, keep the table!")
    await _dispatch({Channel.EMAIL: channel})

    received = await sink.wait_for(1)  # the drip's own due steps go out in the same run
    [mail] = [r.message for r in received if r.message["In-Reply-To"] is not None]
    assert mail["To"].addresses[0].addr_spec == learner.email
    assert mail["In-Reply-To"] == "<CAF=+reply1.gmail@mail.gmail.com>"
    assert str(mail["Subject"]) == "Re: What did you try?"
    assert "Great work, keep the table!" in mail.get_body(("plain",)).get_content()


def test_the_demo_opens_the_dashboard_and_the_answer_arrives() -> None:
    """`dripper demo` without --headless: the dashboard opens on the played inbox; the trainer
    answers with a canned reply and the dashboard says where it arrived."""
    from typing import Any

    from dripper import aio
    from dripper.demo.play import run_demo
    from dripper.shipped import example_curricula

    told: list[str] = []

    async def trainer_at_the_keyboard(url: str, **options: Any) -> None:
        config = DashboardConfig(
            url,
            options["trainer"],
            timezone=options["timezone"],
            canned_replies=options["canned_replies"],
            now=options["now"],
        )
        app = DripperApp(config, background=options["background"])
        async with app.run_test(size=(100, 30)) as pilot:
            await until_shown(
                pilot, lambda: isinstance(app.screen, InboxScreen) and app.screen.fills > 0
            )
            await pilot.press("enter")
            await until_shown(pilot, lambda: isinstance(app.screen, ConversationScreen))
            await pilot.press("r", "ctrl+t")
            await until_shown(pilot, lambda: type(app.screen).__name__ == "Choose")
            await pilot.press("enter")  # the first canned reply: "Thanks for sharing"
            await until_shown(pilot, lambda: isinstance(app.screen, ConversationScreen))
            await pilot.press("ctrl+s")

            def delivered() -> bool:
                told[:] = [str(n.message) for n in app._notifications]
                return any(line.startswith("Delivered to") for line in told)

            await until_shown(pilot, delivered, seconds=20)

    summary = aio.run(
        run_demo(example_curricula(), imap="embedded", dashboard=trainer_at_the_keyboard)
    )
    [answer] = summary["dashboard_answers"]
    assert answer["arrived"] == "yes"
    assert answer["answer"].startswith("Thanks for sharing this, ")
    [line] = [line for line in told if line.startswith("Delivered to")]
    assert answer["learner"] in line
