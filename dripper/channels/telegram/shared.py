"""The Telegram budget of one bot token, shared by every `dripper run` on one PostgreSQL database.

Telegram counts a bot's messages whatever process sends them: about 30/s overall, 1/s per
chat, and a 429's retry_after halts the whole bot. The in-process limiters (`TokenBucket`,
`ChatPacer`) cannot see other workers, so on PostgreSQL the send slots come from the database
(`dripper.store.budget`, GCRA on a `rate_bucket` row):

- A worker reserves slots for the messages waiting in it, at most `batch_seconds` worth of the
  budget per statement, and reserves again only when that batch's last slot is about to start.
  So no worker holds more than one small batch, and one that dies wastes at most that.
- The same statement moves each chat's own row on to slot + `chat_interval`, but only if the
  chat is free by the slot; when another worker wrote to it too recently, that slot stays unused
  and the message waits until the chat is free, then queues again. A chat's spacing is thus
  measured between the slots its messages are really sent in, across all workers.
- A message sent much later than its slot could join a burst with the next ones, so a worker
  that wakes more than `LATE_SECONDS` after its slot (a busy CPU) takes a new slot instead.
- A 429 pauses this worker at once and the bot's row for everyone: other workers learn of it with
  their next reservation, which starts after the pause. A message whose slot falls inside a pause
  known by then takes a new slot after it.

Slots are on the database clock. Each answer carries the database's `now`; this worker waits for
a slot on its own monotonic clock, so workers on several machines need no synchronised clocks.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from dataclasses import dataclass

from dripper.store.budget import Reservation, pause_budget, prune_chat_buckets, reserve_slots

log = logging.getLogger("dripper.budget")

BATCH_SECONDS = 0.1  # one reservation covers at most this much of the budget
LEAD_SECONDS = 0.02  # reserve the next batch this long before the current one's last slot
# A worker that wakes this much after its slot (a busy CPU, a blocked event loop) takes a new
# one: sends that all missed their slots would otherwise leave together, as a burst.
LATE_SECONDS = 0.025
# The database clock against ours: each answer gives an offset that is too large by however
# long the answer waited for us (a busy event loop); the smallest one seen is the best. It may
# grow this fast (seconds per second) when the database's wall clock is slewed.
OFFSET_DRIFT = 0.001
PRUNE_EVERY_S = 600.0
IDLE_CHAT_S = 3600.0  # a chat's row is deleted after this long without messages


@dataclass(frozen=True)
class _Grant:
    at: float  # the slot, monotonic
    chat_free_at: float | None  # the slot was not granted: when the chat is free, monotonic


_Waiter = tuple[str, "asyncio.Future[_Grant]"]


async def _sleep_until(moment: float) -> None:
    delay = moment - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


class SharedBudget:
    """`rate` messages per second for the bot token `key` and one per `chat_interval` seconds
    per chat, across every worker that uses the same key on the same database."""

    def __init__(
        self, key: str, rate: float, chat_interval: float, *, batch_seconds: float = BATCH_SECONDS
    ) -> None:
        if math.isnan(rate) or math.isinf(rate) or rate <= 0:
            raise ValueError(f"rate must be a positive number per second, got {rate!r}")
        self.key = key
        self.interval = 1.0 / rate
        self.chat_interval = chat_interval
        self.batch_size = max(1, math.ceil(rate * batch_seconds))
        self._queue: deque[_Waiter] = deque()
        self._reserver: asyncio.Task[None] | None = None
        self._chat_free: dict[int, float] = {}  # when each chat is free, as far as we know
        self._chat_locks: dict[int, asyncio.Lock] = {}
        self._chat_users: dict[int, int] = {}
        self._paused_until = -math.inf
        self._writes: set[asyncio.Task[None]] = set()
        self._next_prune = time.monotonic() + PRUNE_EVERY_S
        self._offset = math.inf  # monotonic minus database seconds, best estimate
        self._offset_at = 0.0

    @property
    def paused_until(self) -> float | None:
        """The monotonic time the bot's pause ends at, as this worker knows it; None if none."""
        return self._paused_until if self._paused_until > time.monotonic() else None

    async def acquire(self, chat_id: int) -> None:
        """Wait until a message to `chat_id` may start."""
        while True:
            slot = await self._slot_for(chat_id)
            await _sleep_until(slot)
            now = time.monotonic()
            if self._paused_until <= now and now - slot <= LATE_SECONDS:
                return

    def pause(self, seconds: float) -> None:
        """Halt the bot's sends for `seconds` (a 429's retry_after): in this worker now, in the
        others from their next reservation."""
        self._paused_until = max(self._paused_until, time.monotonic() + max(0.0, seconds))
        task = asyncio.create_task(self._write_pause(seconds))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write_pause(self, seconds: float) -> None:
        try:
            await pause_budget(self.key, seconds)
        except Exception:
            # The other workers will then meet the 429 themselves and pause on their own.
            log.warning("could not share a Telegram pause of %g s", seconds, exc_info=True)

    async def _slot_for(self, chat_id: int) -> float:
        # One message per chat queues at a time: a reservation names each chat at most once,
        # and the next message to the chat starts from the slot the previous one got.
        lock = self._chat_locks.setdefault(chat_id, asyncio.Lock())
        self._chat_users[chat_id] = self._chat_users.get(chat_id, 0) + 1
        try:
            async with lock:
                while True:
                    free = self._chat_free.get(chat_id, -math.inf)
                    await _sleep_until(max(free, self._paused_until))
                    grant = await self._request(f"{self.key}:chat:{chat_id}")
                    if grant.chat_free_at is None:
                        self._chat_free[chat_id] = grant.at + self.chat_interval
                        return grant.at
                    self._chat_free[chat_id] = grant.chat_free_at
        finally:
            self._chat_users[chat_id] -= 1
            if not self._chat_users[chat_id]:
                del self._chat_users[chat_id]
                del self._chat_locks[chat_id]

    async def _request(self, chat_key: str) -> _Grant:
        future: asyncio.Future[_Grant] = asyncio.get_running_loop().create_future()
        self._queue.append((chat_key, future))
        if self._reserver is None or self._reserver.done():
            self._reserver = asyncio.create_task(self._reserve_loop())
        return await future

    async def _reserve_loop(self) -> None:
        failures = 0
        while self._queue:
            batch = self._take_batch()
            if not batch:
                continue
            try:
                reservation = await reserve_slots(
                    self.key, [key for key, _ in batch], self.interval, self.chat_interval
                )
            except Exception:
                # The messages wait (their claims are renewed meanwhile) until it works again.
                failures += 1
                delay = min(5.0, 0.1 * 2**failures)
                log.warning(
                    "reserving Telegram send slots failed; trying again in %.1f s",
                    delay,
                    exc_info=True,
                )
                self._queue.extendleft(reversed(batch))
                await asyncio.sleep(delay)
                continue
            failures = 0
            last = self._hand_out(batch, reservation)
            await self._prune_now_and_then()
            # Not before this batch is nearly used up: a worker never holds more than one.
            await _sleep_until(last - LEAD_SECONDS)

    def _take_batch(self) -> list[_Waiter]:
        batch: list[_Waiter] = []
        while self._queue and len(batch) < self.batch_size:
            waiter = self._queue.popleft()
            if not waiter[1].done():  # not cancelled meanwhile
                batch.append(waiter)
        return batch

    def _hand_out(self, batch: list[_Waiter], reservation: Reservation) -> float:
        """Resolve every waiter of the batch; returns the last slot, monotonic."""
        offset = self._clock_offset(reservation.db_now)
        self._paused_until = max(self._paused_until, reservation.paused_until + offset)
        last = -math.inf
        for (_, future), slot in zip(batch, reservation.slots, strict=True):
            at = slot.at + offset
            last = max(last, at)
            if future.done():
                continue  # its waiter was cancelled: the slot goes unused
            if slot.granted:
                future.set_result(_Grant(at, None))
            else:
                known = slot.chat_next_at
                # No row in our snapshot: another worker wrote its first message meanwhile.
                free = known + offset if known is not None else at + self.chat_interval
                future.set_result(_Grant(at, free))
        return last

    def _clock_offset(self, db_now: float) -> float:
        """Monotonic minus database seconds: the smallest offset seen (the answer that waited
        least), allowed to grow by OFFSET_DRIFT per second since."""
        now = time.monotonic()
        allowed = self._offset + OFFSET_DRIFT * (now - self._offset_at)
        self._offset = min(now - db_now, allowed)
        self._offset_at = now
        return self._offset

    async def _prune_now_and_then(self) -> None:
        now = time.monotonic()
        if now < self._next_prune:
            return
        self._next_prune = now + PRUNE_EVERY_S
        self._chat_free = {chat: t for chat, t in self._chat_free.items() if t > now}
        try:
            await prune_chat_buckets(self.key, IDLE_CHAT_S)
        except Exception:
            log.warning("could not prune idle chats of the Telegram budget", exc_info=True)
