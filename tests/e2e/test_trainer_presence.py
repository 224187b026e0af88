"""The trainer answers from Telegram, against the real `dripper run`.

Two trainers, added and invited with the real command line: Tess follows every cohort, Tom
another one. A Telegram learner and an email learner write; Tess's own chat gets each
notification within the batching delay, Tom's gets none; Tess replies to each notification in
Telegram, and the answer reaches the learner on the learner's own channel (a Telegram message,
a threaded email), filed as Tess's reply where the dashboard reads it. A photo Lena sends is
downloaded into the media folder beside the database.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from base64 import b64encode
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

from dripper.db import open_db
from dripper.enrollments.enroll import enroll
from dripper.inbox import EntryKind, thread
from dripper.models import Cohort, Conversation, Learner
from dripper.sandbox import TelegramEmulator, start_server
from dripper.sandbox.imap import ImapServer
from dripper.sandbox.seed import minute_steps_curriculum
from dripper.sandbox.smtp import SmtpSink
from tests.fixtures.mail import PASSWORD
from tests.fixtures.processes import start_dripper
from tests.fixtures.waiting import eventually

TOKEN = "7171:PRESENCE-run"
LENA, TESS, TOM = 1101, 1201, 1202
BATCH_S = 5
KEY = "presence-run-key-0123456789abcdef"
PHOTO = b"\xff\xd8\xff\xe0" + b"desk" * 500


def _cli(*args: str, env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "dripper", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _reply_mail(to_message_id: str) -> bytes:
    mail = EmailMessage()
    mail["From"] = "Eva <eva@example.com>"
    mail["To"] = "course@example.com"
    mail["Subject"] = "Re: presence"
    mail["Message-ID"] = "<eva-question@example.com>"
    mail["In-Reply-To"] = to_message_id
    mail.set_content("Can I get the slides again?")
    return bytes(mail)


async def test_a_trainer_hears_of_each_message_and_answers_from_telegram(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'presence.sqlite3'}"
    emulator = TelegramEmulator(tokens=[TOKEN])
    for user_id, name in ((LENA, "Lena"), (TESS, "Tess"), (TOM, "Tom")):
        emulator.create_user(user_id, name)
    emulator.start(TOKEN, LENA)
    server = await start_server(emulator, port=0)
    sink = SmtpSink("127.0.0.1")
    await sink.start()
    mailbox = await ImapServer({"course": PASSWORD}).start()
    now = datetime.now(UTC)
    async with open_db(url):
        lena = await Learner.create(first_name="Lena", telegram_chat_id=LENA)
        eva = await Learner.create(first_name="Eva", email="eva@example.com")
        course = minute_steps_curriculum(1, "presence")
        await enroll(course, "presence", now - timedelta(hours=1), [lena, eva], now)
        await Cohort.create(name="other", curriculum_key="presence", course_end=now)
    imap = mailbox.settings("course")
    env = dict(
        os.environ,
        DRIPPER_DATABASE_URL=url,
        DRIPPER_TELEGRAM_TOKEN=TOKEN,
        DRIPPER_TELEGRAM_API_URL=server.api_url,
        DRIPPER_SMTP_HOST="127.0.0.1",
        DRIPPER_SMTP_PORT=str(sink.port),
        DRIPPER_SMTP_SECURITY="none",
        DRIPPER_SMTP_FROM_ADDRESS="course@example.com",
        DRIPPER_IMAP_HOST=str(imap.host),
        DRIPPER_IMAP_PORT=str(imap.port),
        DRIPPER_IMAP_SECURITY="none",
        DRIPPER_IMAP_USERNAME="course",
        DRIPPER_IMAP_PASSWORD=PASSWORD,
        DRIPPER_HMAC_KEY=KEY,
        DRIPPER_CURRICULA_DIR=str(tmp_path),
        DRIPPER_NOTIFY_BATCH_SECONDS=str(BATCH_S),
    )
    _cli("trainers", "add", "tess", "--name", "Tess", env=env, cwd=tmp_path)
    _cli("trainers", "add", "tom", "--name", "Tom", "--cohort", "other", env=env, cwd=tmp_path)
    for handle, chat in (("tess", TESS), ("tom", TOM)):
        link = _cli(
            "trainers", "invite", handle, "--bot-username", "presence_bot", env=env, cwd=tmp_path
        ).strip()
        assert link.startswith("https://t.me/")
        emulator.start(TOKEN, chat, link.rsplit("start=", 1)[1])
    log = tmp_path / "run.log"
    run = await start_dripper("run", cwd=tmp_path, env=env, log=log)

    def texts(chat: int) -> list[str]:
        return [str(m["text"]) for m in emulator.messages(TOKEN, chat)]

    async def chat_says(chat: int, words: str, what: str) -> dict[str, object]:
        async def found() -> bool:
            assert run.returncode is None, log.read_text(errors="replace")
            return any(words in text for text in texts(chat))

        await eventually(found, seconds=45, message=what)
        return next(m for m in emulator.messages(TOKEN, chat) if words in str(m["text"]))

    try:
        await chat_says(TESS, "You're connected", "Tess's chat bound")
        await chat_says(TOM, "You're connected", "Tom's chat bound")
        await chat_says(LENA, "s0 for Lena", "Lena's step")
        # Lena writes: Tess hears within the batching delay (the first goes out at once).
        written = time.monotonic()
        emulator.send_text(TOKEN, LENA, "Where is the handout?")
        notice = await chat_says(TESS, "Where is the handout?", "Tess notified of Lena")
        assert time.monotonic() - written < BATCH_S + 10, "notice slower than the batch delay"
        emulator.send_text(
            TOKEN, TESS, "It's on the course page, Lena.", int(str(notice["message_id"]))
        )
        await chat_says(LENA, "It's on the course page, Lena.", "Tess's answer reaches Lena")
        await chat_says(TESS, "Lena gets your answer on Telegram", "Tess told it went out")
        # Lena sends a photo: `dripper run` keeps it in the media folder beside the database.
        emulator.send_photo(TOKEN, LENA, caption="My desk", content_b64=b64encode(PHOTO).decode())

        async def photo_kept() -> bool:
            assert run.returncode is None, log.read_text(errors="replace")
            kept = (tmp_path / "media").rglob("*photo.jpg")
            return any(path.read_bytes() == PHOTO for path in kept)

        await eventually(photo_kept, seconds=45, message="Lena's photo in the media folder")
        # Eva answers the emailed step by email: Tess hears, answers, Eva gets a threaded email.

        async def step_mailed() -> bool:
            return any("eva@example.com" in m.rcpt_tos for m in sink.messages)

        await eventually(step_mailed, seconds=45, message="Eva's step by email")
        step = next(m for m in sink.messages if "eva@example.com" in m.rcpt_tos).message
        mailbox.deliver("course", _reply_mail(str(step["Message-ID"])))
        notice = await chat_says(TESS, "Can I get the slides again?", "Tess notified of Eva")
        emulator.send_text(TOKEN, TESS, "Sent them again, Eva.", int(str(notice["message_id"])))

        async def answer_mailed() -> bool:
            assert run.returncode is None, log.read_text(errors="replace")
            return any(
                "eva@example.com" in m.rcpt_tos and "Sent them again" in m.data.decode()
                for m in sink.messages
            )

        await eventually(answer_mailed, seconds=45, message="Tess's answer emailed to Eva")
    finally:
        if run.returncode is None:
            run.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(run.wait(), 30)
        await mailbox.stop()
        await sink.stop()
        await server.aclose()
    assert code == 0, log.read_text(errors="replace")
    answer = next(
        m.message
        for m in sink.messages
        if "eva@example.com" in m.rcpt_tos and "Sent them again" in m.data.decode()
    )
    assert answer["In-Reply-To"] == "<eva-question@example.com>"
    assert answer["Subject"] == "Re: presence"
    # Tom follows another cohort: his chat holds only the welcome.
    assert len(texts(TOM)) == 1
    # The dashboard shows both answers as Tess's replies.
    async with open_db(url):
        for learner, words in ((lena, "It's on the course page"), (eva, "Sent them again")):
            conversation = await Conversation.get(learner_id=learner.id)
            replies = [
                entry
                for entry in await thread(conversation.id)
                if entry.kind is EntryKind.TRAINER and words in entry.body
            ]
            assert [(entry.author, entry.delivery_state) for entry in replies] == [
                ("tess", "sent")
            ], replies
