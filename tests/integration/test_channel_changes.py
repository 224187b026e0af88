"""A channel switch is an event: a blocked bot while the learner has an email address moves the
drip to email, and the conversation, `dripper status` and `dripper timeline` say so.

Real servers on loopback: the Bot API emulator with the real PTB client and an SMTP sink with
the real aiosmtplib client; the dispatcher and the Telegram poller as `dripper run` runs them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from dripper.channels.email.channel import EmailChannel
from dripper.channels.telegram.channel import TelegramChannel
from dripper.cli.report import status_data
from dripper.cli.timeline import timeline_data
from dripper.clock import ManualClock
from dripper.curriculum.checks import check_source
from dripper.curriculum.source import parse_source
from dripper.engine.dispatcher import Dispatcher
from dripper.enrollments.enroll import enroll
from dripper.inbound.telegram.poller import TelegramPoller
from dripper.inbox import EntryKind, thread
from dripper.models import Channel, Conversation, Delivery, Learner, Message, MessageDirection
from dripper.sandbox import TelegramEmulator
from dripper.sandbox.smtp import SmtpSink
from dripper.store.reach import Unreachable, sending_channels, system_line
from tests.fixtures.sandboxes import smtp_sandbox, telegram_sandbox

pytestmark = pytest.mark.filterwarnings("ignore:Please use 'Bot.getUpdates")

TOKEN = "123456:TEST-token"
LENA = 5005
COURSE_END = datetime(2026, 12, 4, 16, 0, tzinfo=UTC)  # a Friday
BERLIN = ZoneInfo("Europe/Berlin")
MONDAY = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
CURRICULUM = """\
id: mini
title: Mini course
timezone: UTC
send_window:
  send_at: "0 9 * * 1-5"
  spread: 0m
steps:
  - id: hello
    after: 1d
    kind: tip
    text: Hello {{ learner.first_name }}
  - id: second
    after: 4d
    kind: tip
    text: Second tip
"""


@dataclass
class Env:
    emulator: TelegramEmulator
    telegram: TelegramChannel
    sink: SmtpSink
    email: EmailChannel
    clock: ManualClock

    async def dispatch_at(self, moment: datetime) -> None:
        await self.clock.set(moment)
        channels = {Channel.TELEGRAM: self.telegram, Channel.EMAIL: self.email}
        await Dispatcher(channels, self.clock, "test").run_until_idle()  # type: ignore[arg-type]


@pytest.fixture
async def env(db: str) -> AsyncIterator[Env]:
    async with (
        telegram_sandbox(TOKEN) as sandbox,
        smtp_sandbox("course@dripper.example") as (sink, email),
    ):
        yield Env(sandbox.emulator, sandbox.channel, sink, email, ManualClock(COURSE_END))


async def lena(env: Env) -> Learner:
    env.emulator.create_user(LENA, "Lena")
    env.emulator.start(TOKEN, LENA)
    learner = await Learner.create(
        first_name="Lena", email="lena@example.com", telegram_chat_id=LENA, timezone="UTC"
    )
    result = check_source(parse_source(CURRICULUM, "mini.yaml"))
    assert result.curriculum is not None, result.problems
    await enroll(result, "dec", COURSE_END, [learner], env.clock.now())
    return learner


async def test_a_blocked_bot_is_one_line_and_the_drip_goes_on_by_email(env: Env) -> None:
    learner = await lena(env)
    poller = TelegramPoller(env.telegram.bot, signing_key=b"k" * 32, now=env.clock.now)
    await poller.run_until_idle()  # her /start
    env.emulator.block(TOKEN, LENA)
    await env.dispatch_at(MONDAY)

    [mail] = await env.sink.wait_for(1)
    assert mail.rcpt_tos == ("lena@example.com",)
    hello = await Delivery.get(step_id="hello")
    assert hello.channel == Channel.EMAIL
    [line] = await Message.filter(direction=MessageDirection.SYSTEM)
    assert line.body == "Telegram blocked on 7 Dec; continuing by email"
    assert line.flags == ["blocked", "switched"]

    # The my_chat_member update of the same block, and the next step: still one line.
    await poller.run_until_idle()
    await env.dispatch_at(datetime(2026, 12, 8, 9, 0, tzinfo=UTC))
    await env.sink.wait_for(2)
    assert [m.body for m in await Message.filter(direction=MessageDirection.SYSTEM)] == [line.body]

    conversation = await Conversation.get(learner_id=learner.id)
    entries = await thread(conversation.id)
    system = [e for e in entries if e.kind is EntryKind.SYSTEM]
    assert [(e.body, e.channel) for e in system] == [(line.body, "telegram")]

    status = await status_data(datetime(2026, 12, 8, 10, 0, tzinfo=UTC))
    assert [(c["learner"], c["body"]) for c in status["channel_changes"]] == [
        ("Lena", "Telegram blocked on 7 Dec; continuing by email")
    ]
    steps = await timeline_data("lena@example.com", None, datetime(2026, 12, 8, tzinfo=UTC))
    assert [(s["step"], s["channel"]) for s in steps] == [("hello", "email"), ("second", "email")]


async def test_a_week_later_status_no_longer_lists_the_change(env: Env) -> None:
    await lena(env)
    env.emulator.block(TOKEN, LENA)
    await env.dispatch_at(MONDAY)
    assert (await status_data(datetime(2026, 12, 14, 8, 0, tzinfo=UTC)))["channel_changes"]
    assert not (await status_data(datetime(2026, 12, 14, 10, 0, tzinfo=UTC)))["channel_changes"]


def test_the_line_keeps_the_providers_words_short_and_says_when_nothing_is_left() -> None:
    refused = "550 5.1.1 <lena@example.com>: Recipient address rejected: " + "x" * 200
    event = Unreachable(1, Channel.EMAIL, "bounced", refused, None, decided=True)
    text = system_line(event, datetime(2026, 12, 3, 23, 30, tzinfo=UTC), UTC)
    assert text.startswith("Email bounced on 3 Dec (550 5.1.1 <lena@example.com>:")
    assert text.endswith(
        "…); no other channel, so drip messages fail until the learner is reachable again"
    )
    # The date is the learner's: 23:30 UTC on 3 Dec is 4 Dec in Berlin.
    moved = Unreachable(1, Channel.EMAIL, "bounced", None, Channel.TELEGRAM, decided=True)
    assert system_line(moved, datetime(2026, 12, 3, 23, 30, tzinfo=UTC), BERLIN) == (
        "Email bounced on 4 Dec; continuing on Telegram"
    )


@pytest.mark.parametrize(
    ("sending", "opted_out", "rest"),
    [
        ({Channel.TELEGRAM, Channel.EMAIL}, False, "; continuing by email"),
        ({Channel.TELEGRAM}, False, "; no other channel, so drip messages fail until the "),
        ({Channel.TELEGRAM, Channel.EMAIL}, True, ""),
    ],
    ids=["email-too", "telegram-only", "opted-out"],
)
async def test_a_block_seen_first_by_the_receiver_says_only_what_will_happen(
    env: Env, sending: set[Channel], opted_out: bool, rest: str
) -> None:
    """The my_chat_member update comes before any send fails: the line promises email only
    when this worker sends email, and nothing for a learner who asked for no more."""
    learner = await lena(env)
    poller = TelegramPoller(env.telegram.bot, signing_key=b"k" * 32, now=env.clock.now)
    await poller.run_until_idle()  # her /start
    if opted_out:  # as /stop does
        await Learner.filter(id=learner.id).update(opted_out_at=COURSE_END)
    env.emulator.block(TOKEN, LENA)
    token = sending_channels.set(frozenset(sending))
    try:
        await poller.run_until_idle()
    finally:
        sending_channels.reset(token)
    [line] = await Message.filter(direction=MessageDirection.SYSTEM)
    day = COURSE_END.strftime("%-d %b")
    assert line.body.startswith(f"Telegram blocked on {day}{rest}"), line.body
    if not rest:
        assert line.body == f"Telegram blocked on {day}"
