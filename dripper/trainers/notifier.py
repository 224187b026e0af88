"""The notifier: tells trainers of new learner messages, batched, in their waking hours, and
sends each their daily digest (dripper.trainers.digest) at their morning.

Every few seconds it reads the learner messages past the lowest trainer mark and, for each
trainer who can be reached (their own Telegram chat, else their email address, on a channel this
worker has), makes one notice of the messages meant for them (`notices.is_for`), at most one per
`batch` per trainer: the first message after a quiet spell is announced at once, the ones that
follow it within `batch` wait and go together. During a trainer's quiet hours nothing is made;
their first notice after it lists what came in meanwhile. The mark moves and the notice is
stored in one transaction; the notice is sent after, through the channel's own rate limits, and
tried again on a transient failure (at least once: a crash right after a send repeats it).

It runs in one worker at a time (dripper.engine.singleton), like the receivers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from tortoise.transactions import in_transaction

from dripper.channels.base import Channel, Outbound, Outcome
from dripper.content.compose import Content
from dripper.models import Channel as ChannelName
from dripper.models import Trainer, TrainerNotice
from dripper.store.notices import (
    advance_mark,
    claim_digest,
    learner_messages_after,
    record_failure,
    record_sent,
    unsent_notices,
)
from dripper.trainers.digest import SHOWN, gather, headline, render
from dripper.trainers.notices import Follower, NewMessage, compose, is_for
from dripper.trainers.roster import digest_time, quiet_hours

log = logging.getLogger("dripper.notify")

TICK_S = 5.0
READ_LIMIT = 500  # learner messages read per pass; more wait for the next pass
TRAINER_FOOTER = "You get this as a trainer of the course; answer in dripper tui or on Telegram."


class Notifier:
    def __init__(
        self,
        channels: Mapping[ChannelName, Channel],
        now: Callable[[], datetime],
        batch: timedelta,
        *,
        tick: float = TICK_S,
    ) -> None:
        self._channels = channels
        self._now = now
        self._batch = batch
        self._tick = tick

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception:  # one bad pass (a database hiccup) never ends the loop
                log.exception("notifying trainers failed; trying again in %.0f s", self._tick)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._tick)

    async def run_once(self) -> int:
        """Make the notices and digests due now and send every unsent one; the number sent."""
        await self.make_notices()
        await self.make_digests()
        return await self.send_notices()

    # ---- making --------------------------------------------------------------------------

    def _route(self, trainer: Trainer) -> ChannelName | None:
        if trainer.telegram_chat_id is not None and ChannelName.TELEGRAM in self._channels:
            return ChannelName.TELEGRAM
        if trainer.email and ChannelName.EMAIL in self._channels:
            return ChannelName.EMAIL
        return None

    async def make_notices(self) -> int:
        trainers = [t for t in await Trainer.filter(notify=True) if self._route(t) is not None]
        if not trainers:
            return 0
        low = min(trainer.notified_upto for trainer in trainers)
        rows = await learner_messages_after(low, READ_LIMIT)
        messages = [NewMessage.from_row(row) for row in rows]
        made = 0
        for trainer in trainers:
            mine = [message for message in messages if message.id > trainer.notified_upto]
            if mine:
                try:
                    made += await self._make_for(trainer, mine)
                except Exception:
                    log.exception("notice for trainer %s could not be made", trainer.handle)
        return made

    async def _make_for(self, trainer: Trainer, messages: list[NewMessage]) -> int:
        now = self._now()
        follower = Follower(trainer.id, frozenset(int(i) for i in trainer.follows))
        relevant = [message for message in messages if is_for(follower, message)]
        upto = messages[-1].id
        if not relevant:  # nothing for them: pass over, so they are not read again
            async with in_transaction() as tx:
                await advance_mark(tx, trainer.id, trainer.notified_upto, upto, None)
            return 0
        last = trainer.last_notice_at
        if last is not None and now - last < self._batch:
            return 0  # batched: the next notice lists these too
        quiet = quiet_hours(trainer)
        local = now.astimezone(ZoneInfo(trainer.timezone or "UTC"))
        if quiet is not None and quiet.covers(local.time()):
            return 0
        route = self._route(trainer)
        assert route is not None
        notice = compose(relevant, by_email=route is ChannelName.EMAIL)
        async with in_transaction() as tx:
            if not await advance_mark(tx, trainer.id, trainer.notified_upto, upto, now):
                return 0  # another notifier made it
            await TrainerNotice.create(
                trainer_id=trainer.id,
                channel=route,
                body=notice.markdown,
                subject=notice.subject[:200],
                conversations=list(notice.conversations),
                messages=list(notice.messages),
                using_db=tx,
            )
        return 1

    # ---- the daily digest ----------------------------------------------------------------

    async def make_digests(self) -> int:
        """Each trainer's digest, once a day at their `digest_at` (their zone), held while their
        quiet hours last; a day with nothing waiting for them sends nothing."""
        made = 0
        for trainer in await Trainer.filter(notify=True, digest_at__not_isnull=True):
            route = self._route(trainer)
            if route is None:
                continue
            try:
                made += await self._digest_for(trainer, route)
            except Exception:
                log.exception("digest for trainer %s could not be made", trainer.handle)
        return made

    async def _digest_for(self, trainer: Trainer, route: ChannelName) -> int:
        now = self._now()
        local = now.astimezone(ZoneInfo(trainer.timezone or "UTC"))
        today = local.date().isoformat()
        if trainer.digest_sent_on is None:
            # A new trainer: their first digest is tomorrow morning's, not one this minute.
            async with in_transaction() as tx:
                await claim_digest(tx, trainer.id, None, today)
            return 0
        # ISO dates compare as strings; >= also holds after a move to a zone further west.
        if trainer.digest_sent_on >= today or local.time() < digest_time(trainer):
            return 0
        quiet = quiet_hours(trainer)
        if quiet is not None and quiet.covers(local.time()):
            return 0
        digest = await gather(
            [int(i) for i in trainer.follows] or None, now, since=await self._since(trainer, now)
        )
        async with in_transaction() as tx:
            if not await claim_digest(tx, trainer.id, trainer.digest_sent_on, today):
                return 0  # another notifier made it
            if digest.empty:
                return 0
            await TrainerNotice.create(
                trainer_id=trainer.id,
                kind="digest",
                channel=route,
                body=render(digest, by_email=route is ChannelName.EMAIL),
                subject=f"dripper digest: {headline(digest)}"[:200],
                conversations=[u.conversation_id for u in digest.unanswered[:SHOWN]],
                using_db=tx,
            )
        return 1

    async def _since(self, trainer: Trainer, now: datetime) -> datetime:
        """Since the trainer's last digest (a morning the notifier missed is not lost), at
        least a day and at most a week back."""
        last = (
            await TrainerNotice.filter(trainer_id=trainer.id, kind="digest").order_by("-id").first()
        )
        since = last.created_at if last is not None else now - timedelta(days=1)
        return max(min(since, now - timedelta(days=1)), now - timedelta(days=7))

    # ---- sending -------------------------------------------------------------------------

    async def send_notices(self) -> int:
        sent = 0
        for row in await unsent_notices():
            try:
                sent += await self._send(row)
            except Exception as exc:
                log.exception("notice %s could not be sent", row["id"])
                await record_failure(int(row["id"]), f"{type(exc).__name__}: {exc}", final=False)
        return sent

    async def _send(self, row: Mapping[str, object]) -> int:
        notice_id = int(str(row["id"]))
        name = ChannelName(str(row["channel"]))
        channel = self._channels.get(name)
        if channel is None:
            await record_failure(notice_id, f"this worker has no {name} channel", final=True)
            return 0
        telegram_chat = row["telegram_chat_id"] if name is ChannelName.TELEGRAM else None
        email = str(row["email"]) if name is ChannelName.EMAIL and row["email"] else None
        if telegram_chat is None and email is None:
            await record_failure(notice_id, f"the trainer has no {name} address", final=True)
            return 0
        outbound = Outbound(
            delivery_id=0,
            business_key=f"notice:{notice_id}",
            content=Content(markdown=str(row["body"]), subject=str(row["subject"])),
            telegram_chat_id=int(str(telegram_chat)) if telegram_chat is not None else None,
            email=email,
            learner_name=str(row["name"]),
            auto_reply=True,
            footer=TRAINER_FOOTER,
        )
        result = await channel.send(outbound)
        if result.outcome is Outcome.SENT:
            await record_sent(
                notice_id, _telegram_message_id(result.provider_message_id), self._now()
            )
            log.info("notice %d sent to trainer %s by %s", notice_id, row["trainer_id"], name)
            return 1
        final = result.outcome in (Outcome.FAILED, Outcome.UNREACHABLE)
        log.warning(
            "notice %d to trainer %s: %s (%s)",
            notice_id,
            row["trainer_id"],
            result.outcome,
            result.error,
        )
        await record_failure(notice_id, result.error or str(result.outcome), final=final)
        return 0


def _telegram_message_id(provider_message_id: str | None) -> int | None:
    """The message id of "chat:message" (Telegram's provider ids); None for email."""
    if not provider_message_id or ":" not in provider_message_id:
        return None
    with contextlib.suppress(ValueError):
        return int(provider_message_id.rsplit(":", 1)[1])
    return None
