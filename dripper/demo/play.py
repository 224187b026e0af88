"""`dripper demo`: the drip engine on one machine with nothing configured.

A temporary SQLite database, the local Bot API emulator and an SMTP sink (both in-process), a
local IMAP mailbox for replies (Dovecot when installed, else the embedded server; see
dripper.demo.mail), the shipped example curricula, simulated learners in different time zones,
and an accelerated clock that plays six weeks of drip in well under a minute. Everything goes
through the same code as production: the planner, the dispatcher, python-telegram-bot over the
aiohttp transport, aiosmtplib, and the IMAP poller with IDLE. One learner blocks the bot
half-way (the drip continues by email), one address bounces (the learner is marked unreachable
and the drip continues on Telegram). The Telegram learners tap answers under quizzes and
check-ins and write back to questions; an email learner replies to questions and quizzes by
email, another one's mailbox sends an out-of-office auto-reply. The trainer has connected her
own Telegram chat: she hears of each learner message there and gets a digest each morning. At
the end she answers one question by replying to its notification in her chat, and the answer
is shown arriving in that learner's chat.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dripper.channels.base import Channel
from dripper.channels.email.channel import EmailChannel
from dripper.channels.ratelimit import TokenBucket
from dripper.channels.telegram.channel import TelegramChannel
from dripper.clock import ManualClock
from dripper.config import SmtpSettings
from dripper.content.render import plain_text
from dripper.curriculum import CheckResult, check_paths
from dripper.db import open_db
from dripper.demo.mail import (
    DemoMailbox,
    EmailLearner,
    EmailLearners,
    ImapChoice,
    Receiving,
    email_summary,
    start_mailbox,
)
from dripper.engine.dispatcher import DispatcherSettings
from dripper.engine.worker import Worker
from dripper.enrollments.enroll import enroll
from dripper.inbox.canned import EXAMPLE_CANNED_REPLIES
from dripper.models import Channel as ChannelName
from dripper.models import (
    Conversation,
    Delivery,
    DeliveryKind,
    DeliveryState,
    Learner,
    Message,
    TrainerNotice,
)
from dripper.sandbox import TelegramEmulator, start_server
from dripper.sandbox.smtp import SmtpSink
from dripper.store import status
from dripper.store.reach import reach_events
from dripper.trainers.roster import add_trainer, invite_token

DEMO_TOKEN = "1000000001:SANDBOX-dripper-demo-token"
COURSE_END = datetime(2026, 11, 27, 16, 0, tzinfo=UTC)  # a Friday, 17:00 in Berlin
DAYS = 44


@dataclass(frozen=True)
class DemoLearner:
    first_name: str
    last_name: str
    timezone: str
    email: str | None
    telegram_id: int | None
    department: str
    manager: str


LEARNERS = (
    DemoLearner("Zoë", "Fischer", "Europe/Berlin", "zoe@example.com", 7001, "Sales", "Anna"),
    DemoLearner(
        "José", "García", "America/Mexico_City", "jose@example.com", None, "Support", "María"
    ),
    DemoLearner("Aiko", "Tanaka", "Asia/Tokyo", None, 7003, "Marketing", "Anna"),
    DemoLearner("Liam", "O'Connor", "America/New_York", "liam@example.com", 7004, "Sales", "Anna"),
    DemoLearner(
        "Priya", "Raman", "Asia/Kolkata", "priya@bounce.example.com", 7005, "Engineering", "Ewa"
    ),
    DemoLearner("Ana", "Souza", "America/Sao_Paulo", "ana@example.com", None, "Support", "María"),
)
BLOCKS_THE_BOT = 7004  # Liam blocks the bot after the first week
TRAINER, TRAINER_CHAT = "trainer", 7100  # the trainer's handle and her own Telegram chat
BOUNCES = "priya@bounce.example.com"
WRITES_BY_EMAIL = EmailLearner("José", "García", "jose@example.com")
ON_HOLIDAY = EmailLearner("Ana", "Souza", "ana@example.com")  # from the third week
HOLIDAY_FROM = COURSE_END + timedelta(days=14)
# Signs the Reply-To tokens of the demo's emails; the demo's database is thrown away.
DEMO_KEY = b"dripper-demo-reply-token-key-0000"


async def _learners(emulator: TelegramEmulator) -> list[Learner]:
    out = []
    for person in LEARNERS:
        if person.telegram_id is not None:
            emulator.create_user(person.telegram_id, person.first_name, person.last_name)
            emulator.start(DEMO_TOKEN, person.telegram_id)
        out.append(
            await Learner.create(
                first_name=person.first_name,
                last_name=person.last_name,
                email=person.email,
                telegram_chat_id=person.telegram_id,
                timezone=person.timezone,
                language="en",
                attributes={"department": person.department, "manager": person.manager},
            )
        )
    return out


class SimulatedLearners:
    """The Telegram learners of the demo act: they tap an answer under every quiz and check-in
    (not always the right one) and write back to every other question, once each."""

    def __init__(self, emulator: TelegramEmulator) -> None:
        self._emulator = emulator
        self._handled: set[tuple[int, int]] = set()
        self.actions = Counter[str]()

    def act(self, blocked: set[int]) -> None:
        for person in LEARNERS:
            chat = person.telegram_id
            if chat is None or chat in blocked:
                continue
            for message in self._emulator.messages(DEMO_TOKEN, chat):
                key = (chat, int(message["message_id"]))
                if key in self._handled:
                    continue
                self._handled.add(key)
                markup = message.get("reply_markup") or {}
                buttons = [b for row in markup.get("inline_keyboard", []) for b in row]
                choices = [b["callback_data"] for b in buttons if b["callback_data"][:2] == "a:"]
                text = str(message.get("text") or message.get("caption") or "")
                if choices:
                    pick = choices[(chat + key[1]) % len(choices)]
                    self._emulator.press_button(DEMO_TOKEN, chat, key[1], pick)
                    self.actions["quiz and check-in taps"] += 1
                elif "?" in text and not text.startswith("A gentle"):
                    reply = REPLIES[(chat + key[1]) % len(REPLIES)].format(name=person.first_name)
                    self._emulator.send_text(DEMO_TOKEN, chat, reply)
                    self.actions["written replies"] += 1


def _verdict(correct: bool | None) -> str:
    return "check-in" if correct is None else ("right" if correct else "wrong")


REPLIES = (
    "I rebuilt our weekly report as a table, {name} here. The totals row is magic!",
    "Not yet, to be honest. How do I start when the data has blank rows?",
    "Tried it in Monday's meeting: people actually listened <3 & asked questions.",
    "Quick question: does this also work on a Mac? ⌘ instead of Ctrl?",
)


async def _summary(emulator: TelegramEmulator, sink: SmtpSink) -> dict[str, Any]:
    chats = Counter[str]()
    for person in LEARNERS:
        if person.telegram_id is not None:
            chats[person.first_name] = len(emulator.messages(DEMO_TOKEN, person.telegram_id))
    mails = Counter(received.rcpt_tos[0] for received in sink.messages)
    quizzes = await status.quiz_answers_by_correctness()
    return {
        "inbox_messages": await status.messages_by_direction(),
        "inbox_messages_in_by_channel": await status.inbound_by_channel(),
        "quiz_answers": {_verdict(correct): n for correct, n in quizzes.items()},
        "deliveries": [
            {**row, "channel": row["channel"] or "-"}
            for row in await status.deliveries_by_channel()
        ],
        "telegram_messages_per_learner": dict(chats),
        "emails_per_address": dict(mails),
        "reachability": await status.reachability(),
        "notes": await status.delivery_notes(),
    }


async def _trainer_joins(emulator: TelegramEmulator, worker: Worker) -> None:
    """The trainer connects her own Telegram chat with the bot (`dripper trainers invite`):
    from now on she hears of every learner message there, and gets a digest each morning."""
    assert worker.telegram is not None
    trainer, _ = await add_trainer(TRAINER, name="Tess Trainer", timezone="Europe/Berlin")
    emulator.create_user(TRAINER_CHAT, "Tess", "Trainer")
    emulator.start(DEMO_TOKEN, TRAINER_CHAT, invite_token(DEMO_KEY, trainer))
    await worker.telegram.run_until_idle()


async def _trainer_answers(emulator: TelegramEmulator, worker: Worker) -> dict[str, Any]:
    """The trainer answers the first question a learner wrote on Telegram from her own chat:
    she replies to the notification about it, and the answer is shown arriving in the
    learner's chat."""
    assert worker.telegram is not None
    notices = await TrainerNotice.filter(kind="notice", sent=True).order_by("id")
    for notice in notices:
        if len(notice.conversations) != 1 or notice.telegram_message_id is None:
            continue
        question = (
            await Message.filter(id__in=notice.messages, channel=ChannelName.TELEGRAM)
            .filter(body__contains="?")
            .first()
        )
        if question is not None:
            break
    else:
        return {"arrived_in_chat": False}
    conversation = await Conversation.get(id=notice.conversations[0])
    learner = await Learner.get(id=conversation.learner_id)  # type: ignore[attr-defined]
    text = f"Good question, {learner.first_name}! I'll show you in our follow-up call on Friday."
    emulator.send_text(
        DEMO_TOKEN, TRAINER_CHAT, text, reply_to_message_id=notice.telegram_message_id
    )
    await worker.telegram.run_until_idle()
    await worker.dispatcher.run_until_idle()
    chat = learner.telegram_chat_id or 0
    arrived = any(m.get("text") == text for m in emulator.messages(DEMO_TOKEN, chat))
    return {
        "learner": learner.first_name,
        "question": question.body,
        "notification": notice.body,
        "answer": text,
        "answered_from": "the trainer's Telegram chat, replying to the notification",
        "arrived_in_chat": arrived,
    }


async def _trainer_chat(emulator: TelegramEmulator) -> dict[str, int]:
    """What the trainer's own chat received: notifications, digests, the bot's answers."""
    kinds = Counter(
        str(kind) for kind in await TrainerNotice.filter(sent=True).values_list("kind", flat=True)
    )
    return {
        "messages": len(emulator.messages(DEMO_TOKEN, TRAINER_CHAT)),
        "notifications": kinds.get("notice", 0),
        "digests": kinds.get("digest", 0),
    }


OpenDashboard = Callable[..., Awaitable[None]]


class Delivering:
    """While the dashboard is open: every answer the trainer sends goes out through the
    dispatcher at once (the dashboard wakes it), and the trainer is told where it arrived."""

    def __init__(self, emulator: TelegramEmulator, sink: SmtpSink, worker: Worker) -> None:
        self.emulator, self.sink, self.worker = emulator, sink, worker
        self.delivered: list[dict[str, str]] = []
        self._before: set[int] = set()  # answers that existed before the dashboard opened
        self._told: set[int] = set()

    async def run(self, tell: Callable[[str], None]) -> None:
        # Answers sent before the dashboard opened (the demo's own) are not the trainer's.
        before = await Delivery.filter(kind=DeliveryKind.REPLY).values_list("id", flat=True)
        self._before = {int(delivery_id) for delivery_id in before}  # type: ignore[call-overload]
        wake = self.worker.wake  # the dashboard wakes it when the trainer sends an answer
        while True:
            wake.clear()
            await self.worker.dispatcher.run_until_idle()
            for line in await self._arrivals():
                tell(line)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), 2)

    async def _arrivals(self) -> list[str]:
        """The answers sent since the last look, with where each one arrived."""
        replies = (
            await Delivery.filter(kind=DeliveryKind.REPLY, state=DeliveryState.SENT)
            .exclude(id__in=self._before | self._told)
            .prefetch_related("learner")
        )
        bodies = {
            message.delivery_id: message.body  # type: ignore[attr-defined]
            for message in await Message.filter(delivery_id__in=[d.id for d in replies])
        }
        lines = []
        for delivery in replies:
            self._told.add(delivery.id)
            learner, body = delivery.learner, bodies.get(delivery.id, "")
            if delivery.channel is ChannelName.TELEGRAM:
                chat = self.emulator.messages(DEMO_TOKEN, learner.telegram_chat_id or 0)
                where = f"{learner.first_name}'s Telegram chat (the emulator)"
                arrived = any(m.get("text") == plain_text(body) for m in chat)
            else:
                where = f"{learner.email}'s mailbox (the SMTP sink)"
                arrived = any(learner.email in r.rcpt_tos for r in self.sink.messages)
            self.delivered.append(
                {
                    "learner": learner.first_name,
                    "channel": delivery.channel.value if delivery.channel else "",
                    "answer": body,
                    "arrived": "yes" if arrived else "no",
                }
            )
            if arrived:
                lines.append(f"Delivered to {where}: {body}")
        return lines


async def run_demo(
    curricula_dir: Path,
    *,
    on_day: Callable[[int, datetime], None] | None = None,
    imap: ImapChoice = "auto",
    dashboard: OpenDashboard | None = None,
) -> dict[str, Any]:
    """Play the drip and return the summary. With `dashboard` (the `dripper.dashboard` entry
    point), open it on the played inbox afterwards; the trainer's answers are delivered while it
    is open and listed under "dashboard_answers"."""
    results, problems = check_paths([curricula_dir])
    bad = problems + [p for r in results for p in r.problems]
    if bad:
        raise RuntimeError("the example curricula have problems:\n" + "\n".join(map(str, bad)))
    by_id = {r.curriculum.id: r for r in results if r.curriculum is not None}
    mailbox = await start_mailbox(imap)
    try:
        return await _play(by_id, mailbox, on_day, dashboard)
    finally:
        await mailbox.stop()


async def _play(
    by_id: dict[str, CheckResult],
    mailbox: DemoMailbox,
    on_day: Callable[[int, datetime], None] | None,
    dashboard: OpenDashboard | None,
) -> dict[str, Any]:
    emulator = TelegramEmulator(tokens=[DEMO_TOKEN])
    server = await start_server(emulator, port=0)
    sink = SmtpSink("127.0.0.1")
    await sink.start()
    sink.reject_recipient(BOUNCES)
    telegram = TelegramChannel(DEMO_TOKEN, server.api_url)
    clock = ManualClock(COURSE_END - timedelta(hours=1))
    email = EmailChannel(
        SmtpSettings(
            host="127.0.0.1",
            port=sink.port,
            security="none",
            from_address="trainer@dripper.example",
            from_name="Your trainer",
        ),
        signing_key=DEMO_KEY,
        limiter=TokenBucket(None),
        now=clock.now,  # emails are dated in the demo's six weeks
    )
    channels: dict[ChannelName, Channel] = {
        ChannelName.TELEGRAM: telegram,
        ChannelName.EMAIL: email,
    }
    worker_settings = DispatcherSettings(
        backoff_base=timedelta(minutes=5), no_channel_retry=timedelta(hours=6)
    )
    try:
        with tempfile.TemporaryDirectory(prefix="dripper-demo-") as tmp:
            url = f"sqlite:///{Path(tmp) / 'demo.sqlite3'}"
            worker = Worker(
                channels, clock, url, dispatcher=worker_settings, signing_key=DEMO_KEY, name="demo"
            )
            async with open_db(url), worker:
                learners = await _learners(emulator)
                for key, cohort in (
                    ("excel-essentials", "Excel, November"),
                    ("presenting-with-impact", "Presenting, November"),
                ):
                    if key in by_id:
                        await enroll(by_id[key], cohort, COURSE_END, learners, clock.now())
                summary = await _play_weeks(worker, emulator, sink, mailbox, clock, on_day)
                if dashboard is not None:
                    canned = Path(tmp) / "canned-replies.yaml"
                    canned.write_text(EXAMPLE_CANNED_REPLIES, encoding="utf-8")
                    delivering = Delivering(emulator, sink, worker)
                    await dashboard(
                        url,
                        trainer=TRAINER,
                        timezone="Europe/Berlin",
                        now=clock.now,
                        canned_replies=canned,
                        background=delivering.run,
                    )
                    summary["dashboard_answers"] = delivering.delivered
                return summary
    finally:
        await sink.stop()
        await server.aclose()


async def _play_weeks(
    worker: Worker,
    emulator: TelegramEmulator,
    sink: SmtpSink,
    mailbox: DemoMailbox,
    clock: ManualClock,
    on_day: Callable[[int, datetime], None] | None,
) -> dict[str, Any]:
    """Six weeks, an hour at a time: the worker sends what is due, learners act on what they
    got, and the worker receives their taps, texts and emails. Returns the summary."""
    assert worker.telegram is not None
    simulated = SimulatedLearners(emulator)
    by_email = EmailLearners(sink, mailbox, WRITES_BY_EMAIL, ON_HOLIDAY, HOLIDAY_FROM)
    receiving = Receiving(mailbox, DEMO_KEY, clock)
    await receiving.start()
    blocked: set[int] = set()
    await _trainer_joins(emulator, worker)
    try:
        for hour in range(DAYS * 24):
            moment = COURSE_END + timedelta(hours=hour)
            await clock.set(moment)
            if hour == 7 * 24:
                emulator.block(DEMO_TOKEN, BLOCKS_THE_BOT)
                blocked.add(BLOCKS_THE_BOT)
            await worker.dispatcher.run_until_idle()
            simulated.act(blocked)
            if await by_email.act(moment):
                await receiving.wait_stored(len(by_email.written))
            await worker.telegram.run_until_idle()
            await worker.notifier.run_once()  # the trainer hears of new messages, and at 08:00
            if on_day is not None and hour % 24 == 0:
                on_day(hour // 24, moment)
    finally:
        await receiving.stop()
    answer = await _trainer_answers(emulator, worker)
    summary = await _summary(emulator, sink)
    summary["learner_actions"] = dict(simulated.actions)
    summary["trainer_answer"] = answer
    summary["trainer_chat"] = await _trainer_chat(emulator)
    summary["channel_changes"] = [
        f"{row['learner']}: {row['body']}" for row in await reach_events(COURSE_END)
    ]
    summary["email"] = await email_summary(mailbox, by_email, receiving)
    return summary
