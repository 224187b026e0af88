"""The media fetcher: downloads what learners send into the media folder, in the background.

Every few seconds it reads the learner messages with attachments past its mark, per channel,
and settles each file: Telegram photos, voice notes, videos and documents through getFile and
the file download (a bot may download 20 MB at most; larger ones are listed, not kept), email
attachments out of the stored message. Each attachment records what happened, for the
dashboard: `stored` (the path in the folder) and `stored_size`, or `not_stored` with the reason
(too big, over the learner's cap, gone from Telegram). A network failure is tried again on the
next passes, `MAX_ATTEMPTS` times in all, backing off (or as long as Telegram's 429 asks).
Locations and contacts have no file. The mark never passes a file still waiting, nor a message
filed in the last minute (a lower id may still be committing).

It runs in one worker at a time (dripper.engine.singleton). One bad message never stops the
loop: its failure is recorded in its attachments and the mark moves on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from telegram import Bot
from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError

from dripper.inbound.email.parse import attachment_contents
from dripper.media.folder import MediaFolder, human_size, is_file
from dripper.models import Channel
from dripper.store import media as store

log = logging.getLogger("dripper.media")

TICK_S = 5.0
BATCH = 50  # messages read per pass and channel
MAX_ATTEMPTS = 5  # tries of one file: after 30 s, 2 min, 8 min and 32 min
RETRY_BASE = timedelta(seconds=30)
MARK_LAG = timedelta(minutes=1)
BOT_DOWNLOAD_LIMIT = 20 * 1024 * 1024  # the Bot API's getFile limit
SETTLED = ("stored", "not_stored")
TOO_BIG = "too big for a bot to download (over 20 MB): ask for it by email"


class _Transient(Exception):
    """A download that may work later (`retry_after`: not before, as Telegram asked)."""

    def __init__(self, message: str, retry_after: timedelta = timedelta(0)) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def pending(attachment: Mapping[str, Any], channel: Channel) -> bool:
    """A file not yet kept nor given up on."""
    if any(key in attachment for key in SETTLED):
        return False
    if channel is Channel.TELEGRAM:
        return is_file(attachment) and bool(attachment.get("file_id"))
    return True  # every email attachment is a file


class MediaFetcher:
    def __init__(
        self,
        folder: MediaFolder,
        cap_bytes: int,
        bot: Bot | None,
        *,
        email: bool = True,
        tick: float = TICK_S,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.folder = folder
        self._now = now
        self.cap = cap_bytes
        self._bot = bot
        self._channels = ([Channel.TELEGRAM] if bot is not None else []) + (
            [Channel.EMAIL] if email else []
        )
        self._tick = tick

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception:  # a database hiccup: the next pass tries again
                log.exception("fetching media failed; trying again in %.0f s", self._tick)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._tick)

    async def run_once(self) -> int:
        """One pass over every channel; how many files were kept."""
        kept = 0
        for channel in self._channels:
            kept += await self._pass(channel)
        return kept

    async def _pass(self, channel: Channel) -> int:
        mark = await store.fetch_mark(channel)
        rows = await store.messages_with_files(channel, mark, BATCH)
        kept = 0
        settled_upto = mark
        blocked = False  # a message still waiting holds the mark below it
        totals: dict[int, int] = {}
        now = self._now()
        for row in rows:
            learner_id = int(row["learner_id"])
            totals.setdefault(learner_id, int(row["media_bytes"] or 0))
            try:
                stored, added, waiting = await self._settle(row, channel, totals[learner_id], now)
            except _Unsaved:  # the database: this pass ends, the mark stays before the message
                log.exception("media of message %s could not be recorded", row["id"])
                break
            except Exception as exc:  # never one message for the loop
                log.exception("media of message %s could not be fetched", row["id"])
                stored, added = 0, 0
                waiting = not await self._give_up(row, channel, exc)
            totals[learner_id] += added
            kept += stored
            # A message filed in the last minute may have a lower id than one still being
            # committed (PostgreSQL hands ids out before commit): the mark waits past it.
            recent = row["created_at"] is None or now - row["created_at"] < MARK_LAG
            if waiting or recent:
                blocked = True
            elif not blocked:
                settled_upto = int(row["id"])
        if settled_upto > mark:
            await store.move_mark(channel, settled_upto)
        return kept

    async def _settle(
        self, row: Mapping[str, Any], channel: Channel, total: int, now: datetime
    ) -> tuple[int, int, bool]:
        """(files kept, bytes added, still waiting) for one message; its attachments saved."""
        attachments = [dict(a) for a in row["attachments"]]
        contents: list[bytes] | None = None
        kept = added = 0
        waiting = False
        changed = False
        for index, attachment in enumerate(attachments):
            if not pending(attachment, channel):
                continue
            retry_at = attachment.get("retry_at")
            if isinstance(retry_at, str) and datetime.fromisoformat(retry_at) > now:
                waiting = True  # backing off after a failure
                continue
            changed = True
            try:
                if channel is Channel.TELEGRAM:
                    data = await self._telegram_file(attachment)
                else:
                    if contents is None:
                        contents = await self._email_contents(row)
                    if index >= len(contents):
                        raise _NotKept("not found in the stored email")
                    data = contents[index]
                if total + added + len(data) > self.cap:
                    raise _NotKept(f"over the learner's storage cap ({human_size(self.cap)})")
                relative = self.folder.relative_path(
                    int(row["learner_id"]), int(row["id"]), index, attachment
                )
                try:
                    await asyncio.to_thread(self.folder.write, relative, data)
                except OSError as exc:  # a full disk, a folder not mounted yet
                    raise _Transient(f"could not be written to the media folder: {exc}") from exc
                attachment.update(stored=relative, stored_size=len(data))
                attachment.pop("fetch_error", None)
                kept += 1
                added += len(data)
            except _NotKept as exc:
                attachment["not_stored"] = str(exc)
            except _Transient as exc:
                attempts = int(attachment.get("fetch_attempts", 0)) + 1
                attachment["fetch_attempts"] = attempts
                if attempts >= MAX_ATTEMPTS:
                    attachment["not_stored"] = f"could not be downloaded: {exc}"
                    attachment.pop("retry_at", None)
                else:
                    attachment["fetch_error"] = str(exc)
                    delay = max(exc.retry_after, RETRY_BASE * 4 ** (attempts - 1))
                    attachment["retry_at"] = (now + delay).isoformat()
                    waiting = True
        if not changed:
            return kept, added, waiting
        try:
            saved = await store.save_attachments(
                int(row["id"]), int(row["learner_id"]), attachments, added
            )
        except Exception as exc:
            raise _Unsaved from exc
        if not saved:
            # Erased while downloading: what was just written goes too.
            for attachment in attachments:
                if "stored" in attachment:
                    self.folder.path(str(attachment["stored"])).unlink(missing_ok=True)
            return 0, 0, False
        return kept, added, waiting

    async def _telegram_file(self, attachment: Mapping[str, Any]) -> bytes:
        assert self._bot is not None
        size = attachment.get("file_size")
        if isinstance(size, int) and size > BOT_DOWNLOAD_LIMIT:
            raise _NotKept(TOO_BIG)
        try:
            file = await self._bot.get_file(str(attachment["file_id"]))
            return bytes(await file.download_as_bytearray())
        except BadRequest as exc:
            if "too big" in exc.message.lower():
                raise _NotKept(TOO_BIG) from exc
            raise _NotKept(f"Telegram: {exc.message}") from exc
        except Forbidden as exc:
            raise _NotKept(f"Telegram: {exc.message}") from exc
        except RetryAfter as exc:
            raise _Transient(f"Telegram: {exc}", _seconds(exc.retry_after)) from exc
        except TelegramError as exc:  # network errors, timeouts, 5xx
            raise _Transient(f"Telegram: {exc}") from exc

    async def _email_contents(self, row: Mapping[str, Any]) -> list[bytes]:
        if row["inbound_id"] is None:
            return []
        payload = await store.inbound_payload(int(row["inbound_id"]))
        return attachment_contents(payload) if payload else []

    async def _give_up(self, row: Mapping[str, Any], channel: Channel, exc: Exception) -> bool:
        """A message that broke the fetcher is passed over: its files stay listed, each with
        the reason it was not kept. False when even that could not be recorded (the mark then
        waits for it)."""
        attachments = [dict(a) for a in row["attachments"]]
        for attachment in attachments:
            if pending(attachment, channel):
                attachment["not_stored"] = f"could not be fetched ({type(exc).__name__}: {exc})"
        try:
            await store.save_attachments(int(row["id"]), int(row["learner_id"]), attachments, 0)
        except Exception:
            log.exception("the failure of message %s could not be recorded", row["id"])
            return False
        return True


def _seconds(value: int | timedelta) -> timedelta:
    return value if isinstance(value, timedelta) else timedelta(seconds=value)


class _NotKept(Exception):
    """A file that will never be kept; the reason is shown to the trainer."""


class _Unsaved(Exception):
    """What a message's files became could not be written to the database."""
