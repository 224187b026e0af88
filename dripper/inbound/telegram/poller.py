"""The Telegram receiver: our own durable getUpdates loop, then processing of what it stored.

Not PTB's Updater: its offset lives in memory and moves before handlers run, so a crash loses
updates. Here every batch goes

1. `getUpdates(offset=cursor, timeout, allowed_updates)`: asking with the cursor also confirms
   everything before it to Telegram;
2. one transaction: each update stored raw (its JSON bytes) as an `InboundItem` keyed by
   update_id (a re-fetched update is absorbed by the unique key) and the cursor moved past the
   batch in `ChannelCursor`;
3. the stored pending items are processed after the commit, in update order, each marked
   processed, or flagged with the reason (an error never stops the loop).

A crash before 2 re-fetches the batch; after 2 the next start processes what is pending and
confirms with the stored cursor. Nothing is lost and nothing is filed twice: a message is filed
with its inbound item's id, and an item whose message exists is not filed again.

Only one poller may use a bot token: Telegram answers 409 Conflict to the other one, which then
stops with a DripperError saying so. Network trouble is retried with capped exponential backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from telegram import Bot
from telegram.error import (
    Conflict,
    InvalidToken,
    RetryAfter,
    TelegramError,
)
from telegram.warnings import PTBUserWarning
from tortoise.transactions import in_transaction

from dripper import oplog
from dripper.errors import DripperError
from dripper.inbound.telegram.actions import Batch, TelegramActions
from dripper.inbound.telegram.events import ALLOWED_UPDATES, Event, classify
from dripper.inbox import IncomingMessage, record_learner_messages
from dripper.models import Channel
from dripper.store.inbound import (
    FILING_FAILED,
    PROCESSING_FAILED,
    RawItem,
    failure_note,
    filed_item_ids,
    last_pending_id,
    load_cursor,
    mark_items,
    pending_items,
    store_items,
)
from dripper.store.sql import as_datetime

FILING_TRIES = 3  # an item whose message cannot be filed alone this often is flagged

log = logging.getLogger("dripper.inbound.telegram.poller")

# getUpdates is called raw (do_api_request) on purpose: PTB would parse every update into
# objects, and one update it cannot parse would make the whole batch fail forever.
warnings.filterwarnings(
    "ignore", message=r"Please use 'Bot\.getUpdates", category=PTBUserWarning, module=__name__
)


@dataclass(frozen=True)
class PollerSettings:
    long_poll: int = 25  # seconds Telegram may hold a getUpdates open
    limit: int = 100  # updates per getUpdates (Telegram's maximum)
    process_batch: int = 200  # pending items loaded per processing round
    concurrency: int = 16  # chats processed side by side within a round
    backoff_base: float = 0.5
    backoff_cap: float = 60.0


@dataclass
class PollStats:
    fetched: int = 0  # updates returned by getUpdates (re-fetches included)
    stored: int = 0  # new inbound items
    processed: int = 0
    flagged: int = 0
    flags: list[tuple[int, str]] = field(default_factory=list)  # (inbound id, reason)


def conflict_error(exc: Conflict) -> DripperError:
    webhook = "webhook" in exc.message.lower()
    hint = (
        "a webhook is set for this bot (dripper never deletes one: it may be another "
        "program's): to receive through it set [telegram] webhook_url and webhook_secret; to "
        "poll instead remove it with the Bot API call deleteWebhook; or give dripper its own bot"
        if webhook
        else "another `dripper run`, or another program or bot instance, is polling with this "
        "token: stop it, or create a separate bot for dripper with @BotFather"
    )
    return DripperError(
        f"Telegram refused to deliver updates (409 Conflict: {exc.message}); {hint}"
    )


class TelegramPoller:
    """Receives one bot's updates into the inbox. `run(stop)` until stopped; `poll_once()` and
    `process_pending()` are the two halves, for tests and benchmarks."""

    def __init__(
        self,
        bot: Bot,
        *,
        signing_key: bytes | None = None,
        now: Callable[[], datetime] | None = None,
        wake: asyncio.Event | None = None,
        settings: PollerSettings | None = None,
    ) -> None:
        self.bot = bot
        self.settings = settings or PollerSettings()
        self.account = bot.token.split(":", 1)[0]  # the bot's user id
        self.stats = PollStats()
        self._now = now or (lambda: datetime.now(UTC))
        self._actions = TelegramActions(bot, self._now, signing_key, wake)
        self._offset: int | None = None
        # Set when there is something to process: a batch stored, or `nudge`.
        self.stored = asyncio.Event()
        self._stopping = False
        # Pending items up to this id may have been processed in part by an earlier run.
        self._resumed_upto: int | None = None
        self._filing_failures: dict[int, int] = {}

    # ---- the loop ------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Poll and process until `stop` is set; raises DripperError on a 409 Conflict or a
        rejected token. Processing runs beside the next long poll (which confirms the batch to
        Telegram), so a slow batch does not hold up receiving."""
        processor = asyncio.create_task(self._process_loop(stop))
        failures = 0
        try:
            self.stored.set()  # whatever a previous run stored but did not process
            while not stop.is_set() and not processor.done():
                try:
                    # Only the network call is abandoned on stop, never a transaction.
                    updates = await _until_stopped(stop, self.fetch(self.settings.long_poll))
                except RetryAfter as exc:
                    await _sleep(stop, _seconds(exc.retry_after))
                    continue
                except Conflict as exc:
                    log.error("getUpdates: %s", exc.message)
                    raise conflict_error(exc) from None
                except InvalidToken as exc:
                    raise DripperError(
                        "Telegram rejected the bot token while receiving updates: set "
                        "DRIPPER_TELEGRAM_TOKEN to the token @BotFather gave you"
                    ) from exc
                except TelegramError as exc:
                    failures += 1
                    delay = min(
                        self.settings.backoff_cap, self.settings.backoff_base * 2 ** (failures - 1)
                    ) * random.uniform(0.5, 1.0)
                    log.warning("getUpdates failed (%s); retrying in %.1f s", exc.message, delay)
                    await _sleep(stop, delay)
                    continue
                failures = 0
                if updates:
                    await self.store(updates)
                    self.stored.set()
        finally:
            self._stopping = True
            self.stored.set()
            await asyncio.wait({processor})
        if processor.exception() is not None:
            raise processor.exception()  # type: ignore[misc]

    async def _process_loop(self, stop: asyncio.Event) -> None:
        await self.process_when_stored(self.stored, stop)

    def nudge(self) -> None:
        """Look for pending items now (a trainer put a flagged one back to be processed)."""
        self.stored.set()

    async def process_when_stored(self, stored: asyncio.Event, stop: asyncio.Event) -> None:
        """Process the pending items each time `stored` is set, until `stop` is set (or this
        poller stops receiving). Never raises: a database that does not answer is tried again
        with backoff, and one bad item is flagged by `_process_round`."""
        failures = 0
        while True:
            await stored.wait()
            stored.clear()
            if stop.is_set() or self._stopping:
                return
            try:
                await self.process_pending(stop)
                failures = 0
            except Exception:
                # The database went away mid-round: the items stay pending, try again later.
                # (One bad item never gets here: _process_round flags it and goes on.)
                failures += 1
                delay = min(self.settings.backoff_cap, self.settings.backoff_base * 2**failures)
                log.exception("processing updates failed; trying again in %.1f s", delay)
                await _sleep(stop, delay)
                stored.set()

    async def run_until_idle(self) -> PollStats:
        """Fetch, store and process until getUpdates has nothing more (`dripper run --once`,
        tests, benchmarks); a 409 Conflict is a DripperError saying what to do."""
        await self.process_pending()
        try:
            while await self.poll_once(0):
                await self.process_pending()
        except Conflict as exc:
            raise conflict_error(exc) from None
        return self.stats

    # ---- one batch -----------------------------------------------------------------------

    async def poll_once(self, wait: int = 0) -> int:
        """One getUpdates with the stored cursor, then the batch stored with the moved cursor in
        one transaction. Returns how many updates came (0: none)."""
        updates = await self.fetch(wait)
        if updates:
            await self.store(updates)
        return len(updates)

    async def fetch(self, wait: int) -> list[Any]:
        """getUpdates from the cursor (which confirms everything before it to Telegram)."""
        if self._offset is None:
            self._offset = await self._load_offset()
        updates = await self.bot.do_api_request(
            "getUpdates",
            api_kwargs={
                "offset": self._offset,
                "limit": self.settings.limit,
                "timeout": wait,
                "allowed_updates": list(ALLOWED_UPDATES),
            },
            read_timeout=wait + 10,
        )
        return updates if isinstance(updates, list) else []

    async def store(self, updates: list[Any]) -> int:
        """Store raw updates and the cursor past them in one transaction; returns new items."""
        items: list[RawItem] = []
        last = (self._offset or 0) - 1
        for update in updates:
            raw = json.dumps(update, ensure_ascii=False, separators=(",", ":")).encode()
            update_id = update.get("update_id") if isinstance(update, dict) else None
            if isinstance(update_id, int):
                last = max(last, update_id)
                external_id = str(update_id)
            else:  # never seen from Telegram; kept (and flagged when processed), not keyed
                external_id = f"no-update-id:{time.time_ns()}:{len(items)}"
            items.append(RawItem(external_id, raw))
        offset = last + 1
        async with in_transaction() as tx:
            added = await store_items(
                tx, Channel.TELEGRAM, self.account, items, {"offset": offset}, self._now()
            )
        self._offset = offset
        self.stats.fetched += len(updates)
        self.stats.stored += added
        return added

    async def _load_offset(self) -> int:
        position = await load_cursor(Channel.TELEGRAM, self.account)
        return int(position.get("offset", 0)) if position else 0

    # ---- processing ----------------------------------------------------------------------

    async def process_pending(self, stop: asyncio.Event | None = None) -> int:
        """Process every pending item of this bot, oldest first, in rounds (stopping between
        two rounds once `stop` is set); returns how many."""
        done = 0
        while stop is None or not stop.is_set():
            rows = await pending_items(Channel.TELEGRAM, self.account, self.settings.process_batch)
            if not rows:
                return done
            if self._resumed_upto is None:
                self._resumed_upto = await last_pending_id(Channel.TELEGRAM, self.account)
            await self._process_round(rows)
            done += len(rows)
        return done

    async def _process_round(self, rows: list[dict[str, Any]]) -> None:
        ids = [int(row["id"]) for row in rows]
        events = [self._decode(int(row["id"]), row["payload"]) for row in rows]
        # Only items left pending by an earlier run can have been filed already: items stored
        # by this run are processed once, and checking costs a look at the message table.
        resumed = [item_id for item_id in ids if item_id <= (self._resumed_upto or 0)]
        try:
            batch = await Batch.load(
                await filed_item_ids(resumed),
                [chat for chat in (getattr(e, "chat_id", None) for e in events) if chat],
            )
        except Exception as exc:
            # Nothing happened yet: find the item it trips over by loading each alone.
            if len(rows) > 1:
                log.warning("loading a round of %d updates failed; one by one now", len(rows))
                for row in rows:
                    await self._process_round([row])
                return
            log.exception("inbound item %d could not be loaded", ids[0])
            await self._mark([(ids[0], failure_note(PROCESSING_FAILED, exc))])
            return
        flags: dict[int, str | None] = {}
        # Different chats are independent: their items are processed side by side, each chat's
        # in order (a /start must bind the chat before the text that follows it).
        by_chat: dict[object, list[tuple[int, Event | str]]] = {}
        for item_id, event in zip(ids, events, strict=True):
            key = getattr(event, "chat_id", ("item", item_id))
            by_chat.setdefault(key, []).append((item_id, event))
        slots = asyncio.Semaphore(self.settings.concurrency)

        async def one_chat(items: list[tuple[int, Event | str]]) -> None:
            async with slots:
                for item_id, event in items:
                    flags[item_id] = await self._process_one(item_id, event, batch)

        await asyncio.gather(*(one_chat(items) for items in by_chat.values()))
        filing_flags, retry = await self._file(batch.to_file)
        flags.update(filing_flags)
        try:
            await batch.save()
        except Exception:  # only first-contact marks: the next message sets them again
            log.warning("marking learners reachable failed", exc_info=True)
        await self._mark([(item_id, flags[item_id]) for item_id in ids if item_id not in retry])
        now = self._now()
        for row, event in zip(rows, events, strict=True):
            item_id = int(row["id"])
            chat_id = getattr(event, "chat_id", None)
            received = as_datetime(row.get("received_at")) or now
            oplog.event(
                log,
                "inbound",
                id=item_id,
                channel="telegram",
                kind=_event_kind(event),
                learner=batch.known_learner(chat_id) if chat_id else None,
                state="pending"
                if item_id in retry
                else ("flagged" if flags[item_id] is not None else "processed"),
                latency_ms=oplog.milliseconds(max(0.0, (now - received).total_seconds())),
                reason=flags[item_id],
            )

    async def _file(self, messages: list[IncomingMessage]) -> tuple[dict[int, str], set[int]]:
        """File the round's learner messages together; when that fails, each alone. Returns the
        flags of items whose message failed alone `FILING_TRIES` times, and the items to leave
        pending for another try (their failure may be the database's, not theirs)."""
        try:
            await record_learner_messages(messages, self._now())
            return {}, set()
        except Exception:
            log.warning("filing %d messages failed; one by one now", len(messages), exc_info=True)
        flags: dict[int, str] = {}
        retry: set[int] = set()
        for message in messages:
            item_id = message.inbound_id
            try:
                await record_learner_messages([message], self._now())
            except Exception as exc:
                if item_id is None:
                    raise
                tries = self._filing_failures[item_id] = self._filing_failures.get(item_id, 0) + 1
                if tries < FILING_TRIES:
                    retry.add(item_id)
                    continue
                log.exception("inbound item %d could not be filed; flagged", item_id)
                flags[item_id] = failure_note(FILING_FAILED, exc)
            self._filing_failures.pop(item_id or 0, None)
        if retry:
            # Filed ones of this round are checked for when their items come round again.
            self._resumed_upto = None
        return flags, retry

    @staticmethod
    def _decode(item_id: int, payload: Any) -> Event | str:
        """The item's event, or why it cannot be read."""
        try:
            update = json.loads(bytes(payload))
        except ValueError as exc:
            return f"not JSON: {exc}"
        if not isinstance(update, dict):
            return "an update that is not a JSON object"
        return classify(update)  # never raises

    async def _process_one(self, item_id: int, event: Event | str, batch: Batch) -> str | None:
        if isinstance(event, str):
            return event
        try:
            return await self._actions.handle(event, item_id, batch)
        except Exception as exc:  # a bug or bad data must not stop receiving: flag the item
            log.exception("inbound item %d could not be processed", item_id)
            return failure_note(PROCESSING_FAILED, exc)

    async def _mark(self, outcomes: list[tuple[int, str | None]]) -> None:
        async with in_transaction() as tx:
            await mark_items(tx, outcomes, self._now())
        flagged = [(item_id, flag) for item_id, flag in outcomes if flag is not None]
        self.stats.processed += len(outcomes) - len(flagged)
        self.stats.flagged += len(flagged)
        self.stats.flags.extend(flagged)


def _event_kind(event: Event | str) -> str:
    """command, message, tap, member... for log lines (the text is never logged)."""
    if isinstance(event, str):
        return "unreadable"
    return re.sub(r"(?<!^)(?=[A-Z])", "-", type(event).__name__).lower()


async def _until_stopped(stop: asyncio.Event, work: Any) -> Any:
    """Await `work`, but give up (cancelling it, returning None) as soon as `stop` is set."""
    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return None
    return task.result()


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


def _seconds(value: Any) -> float:
    return float(value if isinstance(value, int | float) else value.total_seconds())
