"""Media the trainer can open: what learners send is downloaded into the media folder.

Telegram through the emulator on loopback and the real PTB client (getFile and the file
download, as the Bot API serves them); email attachments out of a stored message. The fetcher
runs as `dripper run` runs it; assertions read the files back.
"""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from telegram.error import BadRequest
from tortoise.exceptions import OperationalError

from dripper.clock import ManualClock
from dripper.enrollments.enroll import enroll
from dripper.inbound.telegram.poller import TelegramPoller
from dripper.inbox import record_learner_message
from dripper.learners.privacy import erase_learner
from dripper.media.fetcher import MAX_ATTEMPTS, MediaFetcher
from dripper.media.folder import MediaFolder
from dripper.models import Channel, InboundItem, Learner, Message, MessageDirection
from dripper.sandbox import TelegramEmulator
from dripper.store import media as media_store
from dripper.store.media import fetch_mark
from tests.fixtures.sandboxes import telegram_sandbox
from tests.fixtures.telegram_data import ANN, COURSE_END, KEY, TOKEN, checked
from tests.fixtures.waiting import until_shown
from tui.app import DripperApp
from tui.screens.conversation import ConversationScreen
from tui.screens.inbox import InboxScreen
from tui.screens.pickers import Choose
from tui.session import DashboardConfig
from tui.widgets.conversation import EntryView

pytestmark = pytest.mark.filterwarnings("ignore:Please use 'Bot.getUpdates")
os.environ["PTB_TIMEDELTA"] = "1"

PHOTO = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40  # a JPEG's first bytes, then some
VOICE = b"OggS" + b"\x00\x02" * 3000
MB = 1024 * 1024


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass
class Env:
    emulator: TelegramEmulator
    poller: TelegramPoller
    fetcher: MediaFetcher
    folder: MediaFolder
    clock: ManualClock

    async def later(self, delta: timedelta) -> None:
        await self.clock.set(self.clock.now() + delta)

    async def received(self) -> None:
        await self.poller.run_until_idle()
        await self.fetcher.run_once()


@pytest.fixture
async def env(db: str, tmp_path: Path) -> AsyncIterator[Env]:
    async with telegram_sandbox(TOKEN) as sandbox:
        clock = ManualClock(COURSE_END)
        folder = MediaFolder(tmp_path / "media")
        yield Env(
            sandbox.emulator,
            TelegramPoller(sandbox.channel.bot, signing_key=KEY, now=clock.now),
            MediaFetcher(folder, 10 * MB, sandbox.channel.bot, now=clock.now),
            folder,
            clock,
        )


async def ann(env: Env) -> Learner:
    learner = await Learner.create(first_name="Ann", telegram_chat_id=ANN, timezone="UTC")
    env.emulator.create_user(ANN, "Ann")
    env.emulator.start(TOKEN, ANN)
    await enroll(checked(), "dec", COURSE_END, [learner], COURSE_END - timedelta(days=1))
    return learner


async def files_of(learner: Learner) -> list[dict[str, object]]:
    messages = await Message.filter(
        conversation__learner_id=learner.id, direction=MessageDirection.INBOUND
    ).order_by("id")
    return [attachment for message in messages for attachment in message.attachments]


async def test_a_photo_and_a_voice_note_are_kept_byte_for_byte(env: Env) -> None:
    learner = await ann(env)
    env.emulator.send_photo(TOKEN, ANN, caption="My pivot", content_b64=b64(PHOTO))
    env.emulator.send_voice(TOKEN, ANN, content_b64=b64(VOICE))
    env.emulator.send_document(TOKEN, ANN, file_name="../../etc/passwd")  # made-up bytes
    await env.received()

    photo, voice, document = await files_of(learner)
    assert photo["kind"] == "photo" and photo["stored_size"] == len(PHOTO)
    assert env.folder.path(str(photo["stored"])).read_bytes() == PHOTO
    assert env.folder.path(str(voice["stored"])).read_bytes() == VOICE
    assert str(voice["stored"]).endswith("-0-voice.ogg")
    # A learner's file name never leads out of the folder.
    kept = env.folder.path(str(document["stored"]))
    assert kept.parent == env.folder.root.resolve() / f"learner-{learner.id}"
    assert kept.name.endswith("-0-passwd") and kept.stat().st_size == 48_000
    learner = await Learner.get(id=learner.id)
    assert learner.media_bytes == len(PHOTO) + len(VOICE) + 48_000
    # Settled: a second pass downloads nothing again.
    assert await env.fetcher.run_once() == 0


async def test_too_big_for_a_bot_and_over_the_cap_are_listed_not_kept(
    db: str, tmp_path: Path
) -> None:
    async with telegram_sandbox(TOKEN) as sandbox:
        clock = ManualClock(COURSE_END)
        env = Env(
            sandbox.emulator,
            TelegramPoller(sandbox.channel.bot, signing_key=KEY, now=clock.now),
            MediaFetcher(MediaFolder(tmp_path / "m"), 100_000, sandbox.channel.bot),
            MediaFolder(tmp_path / "m"),
            clock,
        )
        learner = await ann(env)
        env.emulator.send_video(TOKEN, ANN, file_size=21 * MB)  # Telegram's 20 MB bot limit
        env.emulator.send_document(TOKEN, ANN, file_name="a.pdf", file_size=60_000)
        env.emulator.send_document(TOKEN, ANN, file_name="b.pdf", file_size=60_000)  # over cap
        await env.received()
        video, first, second = await files_of(learner)
        assert "stored" not in video and "too big for a bot" in str(video["not_stored"])
        assert "stored" in first
        assert second["not_stored"] == "over the learner's storage cap (98 KB)"
        assert (await Learner.get(id=learner.id)).media_bytes == 60_000


async def test_a_failed_download_is_tried_again_later_and_holds_the_mark(env: Env) -> None:
    learner = await ann(env)
    env.emulator.send_photo(TOKEN, ANN, content_b64=b64(PHOTO))
    env.emulator.send_voice(TOKEN, ANN, content_b64=b64(VOICE))
    await env.poller.run_until_idle()
    env.emulator.inject_fault(TOKEN, "server_error", method="getFile", times=1)  # the photo's
    await env.later(timedelta(minutes=5))  # both messages are settled in the database by now
    await env.fetcher.run_once()
    photo, voice = await files_of(learner)
    assert photo["fetch_attempts"] == 1 and "stored" not in photo
    assert "stored" in voice, "the message after a waiting one is fetched all the same"
    assert await fetch_mark(Channel.TELEGRAM) == 0, "the mark waits for the photo"
    await env.fetcher.run_once()  # too soon: backing off
    assert "stored" not in (await files_of(learner))[0]
    await env.later(timedelta(seconds=31))
    await env.fetcher.run_once()
    photo, _ = await files_of(learner)
    assert env.folder.path(str(photo["stored"])).read_bytes() == PHOTO
    last = await Message.filter(direction=MessageDirection.INBOUND).order_by("-id").first()
    assert last is not None and await fetch_mark(Channel.TELEGRAM) == last.id
    # One that never works is given up on after MAX_ATTEMPTS tries, further and further apart.
    env.emulator.send_photo(TOKEN, ANN, content_b64=b64(PHOTO))
    await env.poller.run_until_idle()
    env.emulator.inject_fault(TOKEN, "server_error", method="getFile", times=MAX_ATTEMPTS)
    for _ in range(MAX_ATTEMPTS):
        await env.fetcher.run_once()
        await env.later(timedelta(hours=1))
    *_, again = await files_of(learner)
    assert str(again["not_stored"]).startswith("could not be downloaded: Telegram:")
    assert await env.fetcher.run_once() == 0
    assert await fetch_mark(Channel.TELEGRAM) > last.id, "given up on: the mark moves on"


async def test_a_message_filed_in_the_last_minute_holds_the_mark(env: Env) -> None:
    """PostgreSQL hands out ids before commit: a lower id may still be on its way."""
    await ann(env)
    env.emulator.send_photo(TOKEN, ANN, content_b64=b64(PHOTO))
    await env.received()
    assert await fetch_mark(Channel.TELEGRAM) == 0
    await env.later(timedelta(minutes=2))
    await env.fetcher.run_once()
    assert await fetch_mark(Channel.TELEGRAM) > 0


async def test_the_emulator_answers_getfile_like_the_bot_api(env: Env) -> None:
    with pytest.raises(BadRequest, match=r"(?i)invalid file_id"):
        await env.poller.bot.get_file("no-such-file")
    await ann(env)
    env.emulator.send_voice(TOKEN, ANN, file_id="VOICE-1", content_b64=b64(VOICE))
    file = await env.poller.bot.get_file("VOICE-1")
    assert file.file_size == len(VOICE) and str(file.file_path).endswith(".oga")
    assert "/file/bot" in str(file.file_path)
    assert bytes(await file.download_as_bytearray()) == VOICE
    assert (await env.poller.bot.get_file("VOICE-1")).file_path == file.file_path


async def test_an_email_attachment_is_taken_out_of_the_stored_mail(tmp_path: Path, db: str) -> None:
    learner = await Learner.create(first_name="Eva", email="eva@example.com")
    sheet = b"PK\x03\x04" + b"spreadsheet" * 100
    raw = (
        b"From: Eva <eva@example.com>\r\nTo: course@example.com\r\nSubject: My file\r\n"
        b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nHere it is.\r\n"
        b"--b\r\nContent-Type: application/vnd.ms-excel\r\n"
        b'Content-Disposition: attachment; filename="sales.xlsx"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(sheet) + b"--b--\r\n"
    )
    item = await InboundItem.create(
        channel=Channel.EMAIL, account="imap:test", external_id="<m1@example.com>", payload=raw
    )
    await record_learner_message(
        learner.id,
        Channel.EMAIL,
        "Here it is.",
        COURSE_END,
        attachments=[
            {"filename": "sales.xlsx", "mime_type": "application/vnd.ms-excel", "size": len(sheet)}
        ],
        inbound_id=item.id,
    )
    folder = MediaFolder(tmp_path / "media")
    assert await MediaFetcher(folder, 10 * MB, None).run_once() == 1
    [attachment] = await files_of(learner)
    assert folder.path(str(attachment["stored"])).read_bytes() == sheet

    erasure = await erase_learner(learner.id, COURSE_END, media=folder)
    assert erasure.files_deleted == 1
    assert not (folder.root / f"learner-{learner.id}").exists()


async def test_the_dashboard_opens_the_photo_and_the_voice_note(
    env: Env, db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No desktop to show them (a terminal over SSH): `o` saves a copy, which is read back."""
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    await ann(env)
    env.emulator.send_photo(TOKEN, ANN, caption="My pivot", content_b64=b64(PHOTO))
    env.emulator.send_voice(TOKEN, ANN, content_b64=b64(VOICE))
    await env.received()
    [message, _] = await Message.filter(direction=MessageDirection.INBOUND).order_by("id")
    saved = tmp_path / "saved"
    config = DashboardConfig(
        db, "anna", media_folder=env.folder.root, saves_to=saved, live_interval=60.0
    )
    app = DripperApp(config)
    async with app.run_test(size=(100, 30)) as pilot:
        await until_shown(pilot, lambda: isinstance(app.screen, InboxScreen))
        screen = ConversationScreen(message.conversation_id)  # type: ignore[attr-defined]
        await app.push_screen(screen)
        await until_shown(pilot, lambda: bool(screen._entries))
        shown = [str(e.visual) for e in screen.query(EntryView)]
        assert any("📎 photo.jpg (o opens)" in text for text in shown), shown
        for keys, name, data in (
            (("enter",), "voice.ogg", VOICE),
            (("down", "enter"), "photo.jpg", PHOTO),
        ):
            await pilot.press("o")
            await until_shown(pilot, lambda: isinstance(app.screen, Choose))
            await pilot.press(*keys)
            target = saved / f"Ann-{name}"
            await until_shown(pilot, target.exists)
            assert target.read_bytes() == data
        await app.workers.wait_for_complete()


async def test_a_database_error_ends_the_pass_and_gives_nothing_up(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database failing to record a download (a lock, a restart) is not the file's fault:
    nothing is marked as not kept, and the next pass fetches it again."""
    learner = await ann(env)
    env.emulator.send_photo(TOKEN, ANN, content_b64=b64(PHOTO))
    await env.poller.run_until_idle()
    await env.later(timedelta(minutes=5))
    real = media_store.save_attachments
    calls = 0

    async def locked_once(*args: Any) -> bool:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OperationalError("database is locked")
        return await real(*args)

    monkeypatch.setattr(media_store, "save_attachments", locked_once)
    assert await env.fetcher.run_once() == 0
    [photo] = await files_of(learner)
    assert not {"stored", "not_stored"} & set(photo)
    assert await fetch_mark(Channel.TELEGRAM) == 0
    await env.fetcher.run_once()
    [photo] = await files_of(learner)
    assert env.folder.path(str(photo["stored"])).read_bytes() == PHOTO
    assert (await Learner.get(id=learner.id)).media_bytes == len(PHOTO)
