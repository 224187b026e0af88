"""`dripper run` as a real process keeps serving through a poison Telegram update, a poison
email and a cohort it cannot plan, while a healthy cohort beside them gets its step."""

from __future__ import annotations

import asyncio
import os
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dripper.db import open_db
from dripper.enrollments.enroll import enroll
from dripper.models import CurriculumVersion, Enrollment, InboundItem, InboundState, Learner
from dripper.sandbox import TelegramEmulator, start_server
from dripper.sandbox.imap import ImapServer
from dripper.sandbox.seed import minute_steps_curriculum
from tests.fixtures.mail import PASSWORD
from tests.fixtures.processes import start_dripper
from tests.fixtures.waiting import eventually

TOKEN = "5151:POISON-run"
HEALTHY, BROKEN = 801, 802
# A message Python's email package trips over (name* beside name*0*), from a stranger.
POISON_MAIL = (
    b"From: mallory@evil.example\r\nTo: course@example.com\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=\"B\"; name*=utf-8''%FF; name*0*=utf-8''%FE\r\n"
    b"\r\n--B\r\n\r\nhi\r\n--B--\r\n"
)


async def test_run_serves_a_healthy_cohort_through_poison(
    tmp_path: Path, migrated_sqlite_url: str
) -> None:
    url = migrated_sqlite_url
    emulator = TelegramEmulator(tokens=[TOKEN])
    for user_id in (HEALTHY, BROKEN):
        emulator.create_user(user_id, f"U{user_id}")
        emulator.start(TOKEN, user_id)
    server = await start_server(emulator, port=0)
    mailbox = await ImapServer({"course": PASSWORD}).start()
    now = datetime.now(UTC)
    async with open_db(url):
        healthy = await Learner.create(first_name="Healthy", telegram_chat_id=HEALTHY)
        broken = await Learner.create(first_name="Broken", telegram_chat_id=BROKEN)
        await enroll(
            minute_steps_curriculum(1, "fine"), "fine", now - timedelta(hours=1), [healthy], now
        )
        other = minute_steps_curriculum(1, "stuck")
        await enroll(other, "stuck", now - timedelta(hours=1), [broken], now)
        # A version stored by an older dripper that today's check refuses.
        closed = other.source_text.replace(
            "  spread: 0m\n", "  spread: 0m\n  skip_dates: [2020-01-01..2039-12-31]\n"
        )
        await CurriculumVersion.filter(key="stuck").update(source=closed)
    emulator.push_update(TOKEN, "message", {"message_id": 1, "date": 1, "chat": None})
    mailbox.deliver("course", POISON_MAIL)
    imap = mailbox.settings("course")
    env = dict(
        os.environ,
        DRIPPER_DATABASE_URL=url,
        DRIPPER_TELEGRAM_TOKEN=TOKEN,
        DRIPPER_TELEGRAM_API_URL=server.api_url,
        DRIPPER_IMAP_HOST=str(imap.host),
        DRIPPER_IMAP_PORT=str(imap.port),
        DRIPPER_IMAP_SECURITY="none",
        DRIPPER_IMAP_USERNAME="course",
        DRIPPER_IMAP_PASSWORD=PASSWORD,
        DRIPPER_HMAC_KEY="poison-run-key-0123456789abcdef",
        DRIPPER_CURRICULA_DIR=str(tmp_path),
    )
    log = tmp_path / "run.log"
    run = await start_dripper("run", cwd=tmp_path, env=env, log=log)
    try:
        async with open_db(url):

            async def served() -> bool:
                assert run.returncode is None, log.read_text(errors="replace")
                flagged = await InboundItem.filter(state=InboundState.FLAGGED).count()
                stuck = await Enrollment.get(learner_id=broken.id)
                return (
                    bool(emulator.messages(TOKEN, HEALTHY))
                    and flagged >= 2
                    and stuck.plan_error is not None
                )

            await eventually(
                served, seconds=60, message="the healthy step, two flags, a plan error"
            )
            items = await InboundItem.filter(state=InboundState.FLAGGED).order_by("id")
            stuck = await Enrollment.get(learner_id=broken.id)
    finally:
        if run.returncode is None:
            run.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(run.wait(), 30)
        await mailbox.stop()
        await server.aclose()
    assert code == 0, log.read_text(errors="replace")
    assert [m["text"] for m in emulator.messages(TOKEN, HEALTHY)] == ["s0 for Healthy"]
    assert emulator.messages(TOKEN, BROKEN) == []
    assert "skip_dates keep the send window closed" in (stuck.plan_error or "")
    reasons = " | ".join(item.error or "" for item in items)
    assert "malformed message" in reasons and "mallory@evil.example" in reasons, reasons
