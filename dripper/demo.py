"""`dripper demo`: the drip engine on one machine with nothing configured.

A temporary SQLite database, the local Bot API emulator and an SMTP sink (both in-process), the
shipped example curricula, simulated learners in different time zones, and an accelerated clock
that plays six weeks of drip in well under a minute. Everything goes through the same code as
production: the planner, the dispatcher, python-telegram-bot over the aiohttp transport,
aiosmtplib. One learner blocks the bot half-way (the drip continues by email), one address
bounces (the learner is marked unreachable and the drip continues on Telegram).
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dripper.channels.base import Channel
from dripper.channels.email import EmailChannel
from dripper.channels.telegram import TelegramChannel
from dripper.clock import ManualClock
from dripper.config import SmtpSettings
from dripper.curriculum import check_paths
from dripper.db import connection, open_db
from dripper.enrollment import enroll
from dripper.models import Channel as ChannelName
from dripper.models import Learner
from dripper.ratelimit import TokenBucket
from dripper.sandbox import TelegramEmulator, start_server
from dripper.sandbox.smtp import SmtpSink
from dripper.scheduler import Dispatcher, DispatcherSettings

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
BOUNCES = "priya@bounce.example.com"


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


async def _summary(emulator: TelegramEmulator, sink: SmtpSink) -> dict[str, Any]:
    conn = connection()
    by_state = await conn.execute_query_dict(
        "SELECT COALESCE(channel, '-') AS channel, state, COUNT(*) AS n FROM delivery "
        "GROUP BY channel, state ORDER BY channel, state"
    )
    problems = await conn.execute_query_dict(
        "SELECT l.first_name AS learner, d.step_id AS step, d.state AS state, "
        "d.last_error AS error FROM delivery d JOIN learner l ON l.id = d.learner_id "
        "WHERE d.last_error IS NOT NULL ORDER BY d.due_at"
    )
    reach = await conn.execute_query_dict(
        "SELECT first_name, telegram_status, email_status FROM learner ORDER BY id"
    )
    chats = Counter[str]()
    for person in LEARNERS:
        if person.telegram_id is not None:
            chats[person.first_name] = len(emulator.messages(DEMO_TOKEN, person.telegram_id))
    mails = Counter(received.rcpt_tos[0] for received in sink.messages)
    return {
        "deliveries": [dict(row) for row in by_state],
        "telegram_messages_per_learner": dict(chats),
        "emails_per_address": dict(mails),
        "reachability": [dict(row) for row in reach],
        "notes": [dict(row) for row in problems],
    }


async def run_demo(
    curricula_dir: Path, *, on_day: Callable[[int, datetime], None] | None = None
) -> dict[str, Any]:
    results, problems = check_paths([curricula_dir])
    bad = problems + [p for r in results for p in r.problems]
    if bad:
        raise RuntimeError("the example curricula have problems:\n" + "\n".join(map(str, bad)))
    by_id = {r.curriculum.id: r for r in results if r.curriculum is not None}
    emulator = TelegramEmulator(tokens=[DEMO_TOKEN])
    server = await start_server(emulator, port=0)
    sink = SmtpSink("127.0.0.1")
    await sink.start()
    sink.reject_recipient(BOUNCES)
    telegram = TelegramChannel(DEMO_TOKEN, server.api_url)
    email = EmailChannel(
        SmtpSettings(
            host="127.0.0.1",
            port=sink.port,
            security="none",
            from_address="trainer@dripper.example",
            from_name="Your trainer",
        ),
        limiter=TokenBucket(None),
    )
    channels: dict[ChannelName, Channel] = {
        ChannelName.TELEGRAM: telegram,
        ChannelName.EMAIL: email,
    }
    try:
        await telegram.start()
        await email.start()
        with tempfile.TemporaryDirectory(prefix="dripper-demo-") as tmp:
            async with open_db(f"sqlite:///{Path(tmp) / 'demo.sqlite3'}"):
                clock = ManualClock(COURSE_END - timedelta(hours=1))
                learners = await _learners(emulator)
                for key, cohort in (
                    ("excel-essentials", "Excel, November"),
                    ("presenting-with-impact", "Presenting, November"),
                ):
                    if key in by_id:
                        await enroll(by_id[key], cohort, COURSE_END, learners, clock.now())
                dispatcher_settings = DispatcherSettings(
                    backoff_base=timedelta(minutes=5), no_channel_retry=timedelta(hours=6)
                )
                for hour in range(DAYS * 24):
                    moment = COURSE_END + timedelta(hours=hour)
                    await clock.set(moment)
                    if hour == 7 * 24:
                        emulator.block(DEMO_TOKEN, BLOCKS_THE_BOT)
                    dispatcher = Dispatcher(channels, clock, "demo", dispatcher_settings)
                    await dispatcher.run_until_idle()
                    if on_day is not None and hour % 24 == 0:
                        on_day(hour // 24, moment)
                return await _summary(emulator, sink)
    finally:
        await telegram.close()
        await email.close()
        await sink.stop()
        await server.aclose()
