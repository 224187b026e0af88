"""The dispatcher behind `dripper run`: plan, claim, send outside any transaction, record.

One loop claims due deliveries in batches and starts a task per delivery; the tasks send
concurrently (bounded) through their channel, and a recorder writes their outcomes in batches.
No network call happens inside a transaction. When nothing is due the loop sleeps until the
next known due time, or until new work wakes it.

Claims match what can be sent: a worker holds at most `claim_window` of its channels' budget
(30 msg/s x 3 s = 90 Telegram messages), so a crash strands little. Just before a message's
first byte is written its delivery is marked attempted (in small batches, durably). Claims carry
a lease; when a worker dies, its claims never attempted go back to pending untouched, and only
attempted ones, whose outcome is unknown, are retried once as `uncertain`.

Outcomes:
- sent: recorded with the channel's message id; a prompt with `remind_after` gets its nudge.
- retry (5xx, connection trouble, 4xx SMTP): exponential backoff with jitter, at most
  `max_attempts` tries, then failed with the last reason.
- failed: recorded with the provider's reason.
- unreachable (bot blocked, hard bounce): the learner is marked unreachable on that channel and
  the delivery continues on the other channel when there is one.
- uncertain (timeout after the request was written): retried once, then left `uncertain`.
- late beyond the curriculum's `expire_after`: skipped, with how late it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from dripper import oplog
from dripper.channels.base import Attempting, Channel, Outbound, SendResult
from dripper.channels.base import Outcome as SendOutcome
from dripper.clock import Clock
from dripper.content.compose import CourseView, LearnerView, compose_reply, compose_step
from dripper.curriculum import Curriculum
from dripper.engine.planner import plan_due
from dripper.enrollments.pause import resume_due
from dripper.inbox import ReplyContext, email_thread, reply_context
from dripper.models import Channel as ChannelName
from dripper.models import DeliveryKind, DeliveryState
from dripper.schedule.keys import nudge_key
from dripper.schedule.plan import learner_zone, plan_nudge, window_of
from dripper.store.curricula import curriculum_of
from dripper.store.enrollments import complete_finished
from dripper.store.outbox import (
    WAITING_FOR_CHAT,
    ClaimedDelivery,
    NewDelivery,
    Outcome,
    Recovered,
    claim_due,
    load_claimed,
    mark_attempted,
    next_wake,
    record,
    recover_claims,
    release,
    renew_leases,
)
from dripper.store.reach import Unreachable, found_unreachable, other_channel
from dripper.tokens import reply_token, unsubscribe_token

# How often finished enrollments are marked completed (one statement over all of them).
COMPLETE_EVERY = timedelta(minutes=1)
log = logging.getLogger("dripper.engine.dispatcher")

MARK_BATCH = 64  # a mark that finds this many queued is written at once
MARK_LINGER_S = 0.005  # how long a mark waits for others to share its statement


@dataclass(frozen=True)
class DispatcherSettings:
    batch_size: int = 500
    max_in_flight: int = 1000
    # Claims held at once: at most this much of the channels' budget (all channels unlimited:
    # max_in_flight), and at least min_claims.
    claim_window: timedelta = timedelta(seconds=3)
    min_claims: int = 10
    concurrency: int = 256
    lease: timedelta = timedelta(minutes=2)
    horizon: timedelta = timedelta(minutes=10)
    max_idle: timedelta = timedelta(minutes=1)
    max_attempts: int = 8
    backoff_base: timedelta = timedelta(seconds=30)
    backoff_cap: timedelta = timedelta(hours=1)
    uncertain_retry_delay: timedelta = timedelta(seconds=5)
    no_channel_retry: timedelta = timedelta(hours=1)
    record_batch: int = 500


@dataclass
class _Pending:
    outcome: Outcome
    nudges: list[NewDelivery] = field(default_factory=list)
    unreachable: Unreachable | None = None
    reached: tuple[int, str] | None = None


class _Release(Exception):
    """The dispatcher is stopping before this delivery was sent, or could not mark it
    attempted: give the claim back untouched."""


@dataclass
class Stats:
    sent: int = 0
    failed: int = 0
    retried: int = 0
    uncertain: int = 0
    skipped: int = 0
    other: int = 0


def backoff(attempts: int, delivery_id: int, base: timedelta, cap: timedelta) -> timedelta:
    """Exponential backoff with full jitter, deterministic per (delivery, attempt)."""
    ceiling = min(cap.total_seconds(), base.total_seconds() * 2 ** max(attempts - 1, 0))
    jitter = random.Random(delivery_id * 1_000_003 + attempts).uniform(0.5, 1.0)
    return timedelta(seconds=ceiling * jitter)


def resolve_channel(
    row: ClaimedDelivery, available: Mapping[ChannelName, Channel]
) -> ChannelName | None:
    """The learner's preferred channel if reachable, else the other one, else None."""
    telegram_ok = (
        ChannelName.TELEGRAM in available
        and row.telegram_chat_id is not None
        and row.telegram_status != "unreachable"
    )
    email_ok = (
        ChannelName.EMAIL in available and bool(row.email) and row.email_status != "unreachable"
    )
    order = (
        [ChannelName.EMAIL, ChannelName.TELEGRAM]
        if row.channel_preference == "email"
        else [ChannelName.TELEGRAM, ChannelName.EMAIL]
    )
    for name in order:
        if (name is ChannelName.TELEGRAM and telegram_ok) or (
            name is ChannelName.EMAIL and email_ok
        ):
            return name
    return None


class Dispatcher:
    def __init__(
        self,
        channels: Mapping[ChannelName, Channel],
        clock: Clock,
        worker_id: str,
        settings: DispatcherSettings | None = None,
        *,
        wake: asyncio.Event | None = None,
        recover_all_on_start: bool = False,
        signing_key: bytes | None = None,
    ) -> None:
        self.channels = dict(channels)
        self.clock = clock
        self.worker_id = worker_id
        self._completed_at: datetime | None = None  # last look for finished enrollments
        self.settings = settings or DispatcherSettings()
        self.wake = wake or asyncio.Event()
        self.idle = asyncio.Event()  # set while sleeping with nothing to do (tests wait on it)
        self.stats = Stats()
        self._recover_all = recover_all_on_start
        self._signing_key = signing_key
        self._stopping = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._results: list[_Pending] = []
        self._results_ready = asyncio.Event()
        self._record_lock = asyncio.Lock()  # one writer: a batch is never half-recorded
        self._closing = False
        self._capacity = asyncio.Event()
        self._send_slots = asyncio.Semaphore(self.settings.concurrency)
        self._marks: list[tuple[int, asyncio.Future[None]]] = []
        self._marks_ready = asyncio.Event()
        self._lingering = 0  # queued marks that may wait for others
        # Set by run_until_idle: the run ends once nothing is due, and a failing cycle raises.
        self._until_idle: asyncio.Event | None = None

    # ---- the loop ------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Dispatch until `stop` is set, then finish in-flight sends and return. A dispatcher
        may run again after a run has ended (the demo runs one hour of drip at a time)."""
        self._stopping = self._closing = False
        now = self.clock.now()
        _log_recovered(await recover_claims(now, expired_only=not self._recover_all))
        recorder = asyncio.create_task(self._record_loop())
        marker = asyncio.create_task(self._mark_loop())
        stop_waiter = asyncio.create_task(self._forward_stop(stop))
        renewer = asyncio.create_task(self._renew_loop())
        failures = 0
        try:
            while not stop.is_set():
                try:
                    await self._cycle(stop)
                    failures = 0
                except Exception:
                    # A database hiccup (a lock held by another process, a dropped connection)
                    # must not end `dripper run`; a run until idle (tests, --once) raises it.
                    if self._until_idle is not None:
                        raise
                    failures += 1
                    delay = min(30.0, 0.5 * 2**failures)
                    log.exception("dispatch cycle failed; trying again in %.1f s", delay)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), delay)
        finally:
            self._stopping = True
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            marker.cancel()  # only now: the sends finishing above still mark their attempts
            stop_waiter.cancel()
            # Never cancel the recorder: a cancelled write would leave sent messages claimed,
            # to be resent as uncertain after the next start. Let it write everything and end.
            self._closing = True
            self._results_ready.set()
            try:
                await recorder
            finally:
                renewer.cancel()  # only now: sends finishing after a stop are claims too

    async def _forward_stop(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._stopping = True
        self.wake.set()
        self._capacity.set()

    async def _renew_loop(self) -> None:
        """Renew this worker's leases every quarter lease while it holds claims (sends in
        flight, outcomes not yet recorded), also when none of them finishes for a while (all
        waiting out a long 429 pause): a live worker's claims must never look abandoned."""
        period = self.settings.lease / 4
        never = asyncio.Event()
        while True:
            await self.clock.sleep_until(self.clock.now() + period, never)
            if not (self._tasks or self._results):
                continue
            try:
                await renew_leases(self.worker_id, self.clock.now(), self.settings.lease)
            except Exception:
                log.warning("renewing leases failed; trying again shortly", exc_info=True)

    async def run_until_idle(self) -> Stats:
        """Process everything due at the clock's current time, then return (`dripper run
        --once`, the demo, tests and benchmarks)."""
        self._until_idle = asyncio.Event()
        try:
            await self.run(self._until_idle)
        finally:
            self._until_idle = None
        return self.stats

    def claim_limit(self) -> int:
        """How many claims this worker holds at most: `claim_window` of its channels' budget."""
        most = self.settings.max_in_flight
        rates = [channel.rate for channel in self.channels.values()]
        if not rates or None in rates:
            return most
        budget = sum(rate for rate in rates if rate is not None)
        window = math.ceil(budget * self.settings.claim_window.total_seconds())
        return min(most, max(self.settings.min_claims, window))

    async def _cycle(self, stop: asyncio.Event) -> None:
        limit = self.claim_limit()
        room = limit - len(self._tasks) - len(self._results)
        if room < max(1, min(self.settings.batch_size, limit) // 2):
            # Nothing could be claimed: wait for room before the housekeeping queries, which
            # would otherwise run once per finished send (on PostgreSQL a round trip each).
            self._capacity.clear()
            await self._capacity.wait()
            return
        now = self.clock.now()
        if self._tasks:
            await renew_leases(self.worker_id, now, self.settings.lease)
        _log_recovered(await recover_claims(now, except_worker=self.worker_id))
        await resume_due(now)
        await plan_due(now, self.settings.horizon)
        if self._completed_at is None or now - self._completed_at >= COMPLETE_EVERY:
            self._completed_at = now
            await complete_finished(now)
        # The lease runs from the claim, not from the cycle's start: the housekeeping above
        # can take seconds on a busy machine, and a lease shortened by it may run out while
        # this worker is still pacing its sends.
        now = self.clock.now()
        ids = await claim_due(
            now, min(room, self.settings.batch_size), self.settings.lease, self.worker_id
        )
        if ids:
            rows = await load_claimed(ids)
            unknown = set(ids) - {row.id for row in rows}
            if unknown:  # vanished between claim and load (a learner deleted): give them back
                await release(sorted(unknown), self.worker_id, now)
            for row in rows:
                task = asyncio.create_task(self._send_one(row))
                self._tasks.add(task)
                task.add_done_callback(self._task_done)
            return
        if self._tasks:
            self._capacity.clear()
            await self._capacity.wait()
            return
        if self._until_idle is not None:
            if self._results:  # once written, a retry on the learner's other channel is due
                await self._drain()
                return
            self._until_idle.set()
            return
        self.wake.clear()  # before looking: work enqueued from here on wakes the sleep below
        upcoming = await next_wake(now, self.settings.horizon)
        until = now + self.settings.max_idle
        if upcoming is not None and upcoming < until:
            until = max(upcoming, now)
        if not stop.is_set():
            self.idle.set()
            await self.clock.sleep_until(until, self.wake)
            self.idle.clear()

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._capacity.set()

    # ---- one delivery --------------------------------------------------------------------

    async def _send_one(self, row: ClaimedDelivery) -> None:
        started = time.monotonic()
        try:
            pending = await self._deliver(row)
        except _Release:
            await release([row.id], self.worker_id, self.clock.now())
            return
        except Exception as exc:  # a bug must not stop the loop: record it on the delivery
            log.exception("delivery %d failed with an internal error", row.id)
            pending = _Pending(
                Outcome(row.id, DeliveryState.FAILED, last_error=f"internal error: {exc!r}")
            )
        self._results.append(pending)
        self._results_ready.set()
        self._log_outcome(row, pending.outcome, time.monotonic() - started)

    def _log_outcome(self, row: ClaimedDelivery, outcome: Outcome, took: float) -> None:
        """One line per outcome: who, what, where, how it went and how long it took (the
        provider's error text for a failure, never the message's)."""
        late = (self.clock.now() - row.due_at).total_seconds()
        oplog.event(
            log,
            "delivery",
            id=row.id,
            learner=row.learner_id,
            cohort=row.cohort_name,
            kind=row.kind,
            step=row.step_id,
            occurrence=row.occurrence or None,
            channel=outcome.channel,
            state="uncertain" if outcome.mark_uncertain else outcome.state.value,
            attempt=row.attempts,  # counted by the claim already
            latency_ms=oplog.milliseconds(took),
            late_s=round(late, 1) if late > 1 else None,
            error=outcome.last_error,
        )

    async def _deliver(self, row: ClaimedDelivery) -> _Pending:
        now = self.clock.now()
        # A pause holds the drip, not a trainer's answer nor the feedback on an answer.
        drip = row.kind not in (DeliveryKind.REPLY, DeliveryKind.FEEDBACK)
        if drip and row.enrollment_state == "paused":
            return _Pending(Outcome(row.id, DeliveryState.HELD, last_error="enrollment paused"))
        # "completed" only says nothing was left to send when it was marked: a re-ask planned
        # since (an answer that came late) still goes out.
        if drip and row.enrollment_state == "cancelled":
            return _Pending(Outcome(row.id, DeliveryState.CANCELLED, last_error="enrollment ended"))
        if row.opted_out:
            return _Pending(
                Outcome(row.id, DeliveryState.CANCELLED, last_error="learner opted out")
            )
        if row.expires_at is not None and now > row.expires_at:
            late = now - row.due_at
            return _Pending(
                Outcome(
                    row.id,
                    DeliveryState.SKIPPED,
                    last_error=f"expired: {_human(late)} late, past the curriculum's expire_after",
                )
            )
        channel_name = resolve_channel(row, self.channels)
        if row.kind == DeliveryKind.FEEDBACK and channel_name is not ChannelName.EMAIL:
            # It answers an email in its thread; elsewhere it would make no sense.
            reason = "feedback on an emailed answer goes by email only, and email is unreachable"
            return _Pending(Outcome(row.id, DeliveryState.CANCELLED, last_error=reason))
        if channel_name is None:
            return self._no_channel(row, now)
        curriculum = (
            await curriculum_of(row.curriculum_version_id) if row.curriculum_version_id else None
        )
        try:
            if row.kind == DeliveryKind.REPLY:
                outbound: Outbound | None = await self._reply_outbound(row, curriculum)
            elif row.kind == DeliveryKind.FEEDBACK:
                outbound = await self._feedback_outbound(row, curriculum)
            else:
                outbound = self._outbound(row, curriculum)
        except Exception as exc:  # a template this learner's data trips (a limit, a bad value)
            log.warning("delivery %d cannot be rendered: %r", row.id, exc)
            reason = f"cannot render the message for this learner: {type(exc).__name__}: {exc}"
            return _Pending(Outcome(row.id, DeliveryState.FAILED, last_error=reason[:1000]))
        if outbound is None:
            return _Pending(
                Outcome(
                    row.id, DeliveryState.CANCELLED, last_error="step removed from the curriculum"
                )
            )
        async with self._send_slots:
            if self._stopping:
                raise _Release
            channel = self.channels[channel_name]
            # Marks wait for others to share their statement only where many sends start at
            # once; a channel of a few connections would only wait.
            linger = channel.parallel >= MARK_BATCH
            result = await channel.send(outbound, self._attempting(row.id, linger))
        return self._classify(row, channel_name, result, curriculum)

    def _attempting(self, delivery_id: int, linger: bool) -> Attempting:
        """The delivery's mark as attempted, written with others queued at the same moment
        (`linger`: with those that follow within MARK_LINGER_S)."""
        marked = False

        async def attempting() -> None:
            nonlocal marked
            if marked:
                return
            done = asyncio.get_running_loop().create_future()
            self._marks.append((delivery_id, done))
            self._lingering += linger
            self._marks_ready.set()
            await done
            marked = True

        return attempting

    async def _mark_loop(self) -> None:
        while True:
            await self._marks_ready.wait()
            self._marks_ready.clear()
            if self._lingering and len(self._marks) < MARK_BATCH:
                # Sends that are about to start share the statement: with limits lifted they
                # start one at a time as others finish, and a statement each would cost more
                # than the sends.
                await asyncio.sleep(MARK_LINGER_S)
            batch, self._marks = self._marks, []
            self._lingering = 0
            if not batch:
                continue
            try:
                marked = await mark_attempted(
                    [i for i, _ in batch], self.worker_id, self.clock.now()
                )
            except Exception:
                log.warning("marking %d sends attempted failed: not sending them", len(batch))
                for _, done in batch:
                    if not done.done():
                        done.set_exception(_Release())
                continue
            lost = [delivery_id for delivery_id, _ in batch if delivery_id not in marked]
            if lost:
                # Their lease ran out (this worker stalled) and another worker took them over:
                # it sends them; sending here too would deliver them twice.
                log.warning(
                    "%d claims were taken over by another worker before sending: not sending "
                    "them (delivery %s)",
                    len(lost),
                    ", ".join(str(i) for i in lost[:10]),
                )
            for delivery_id, done in batch:
                if done.done():
                    continue
                if delivery_id in marked:
                    done.set_result(None)
                else:
                    done.set_exception(_Release())

    def _no_channel(self, row: ClaimedDelivery, now: datetime) -> _Pending:
        may_start_bot = row.telegram_chat_id is None and row.telegram_status != "unreachable"
        if not may_start_bot or row.attempts >= self.settings.max_attempts:
            reason = "no reachable channel: Telegram blocked or not started, and no working email"
            return _Pending(Outcome(row.id, DeliveryState.FAILED, last_error=reason))
        reason = WAITING_FOR_CHAT
        return _Pending(
            Outcome(
                row.id,
                DeliveryState.PENDING,
                available_at=now + self.settings.no_channel_retry,
                last_error=reason,
            )
        )

    async def _reply_outbound(
        self, row: ClaimedDelivery, curriculum: Curriculum | None
    ) -> Outbound | None:
        """A trainer's answer from the inbox, threaded under the message it answers."""
        message_id = row.payload.get("message_id")
        if not isinstance(message_id, int):
            return None
        context = await reply_context(message_id, curriculum.title if curriculum else "Your course")
        return self._threaded(row, context, telegram_chat_id=row.telegram_chat_id)

    async def _feedback_outbound(
        self, row: ClaimedDelivery, curriculum: Curriculum | None
    ) -> Outbound | None:
        """Right or wrong and the explanation, in the thread of the email that answered."""
        inbound_id, markdown = row.payload.get("inbound_id"), row.payload.get("markdown")
        if not isinstance(inbound_id, int) or not isinstance(markdown, str):
            return None
        title = curriculum.title if curriculum else "Your course"
        context = await email_thread(inbound_id, markdown, title)
        return self._threaded(row, context, telegram_chat_id=None, auto_reply=True)

    def _threaded(
        self,
        row: ClaimedDelivery,
        context: ReplyContext,
        *,
        telegram_chat_id: int | None,
        auto_reply: bool = False,
    ) -> Outbound:
        """An answer to something the learner sent: `context`'s text, in its thread."""
        return Outbound(
            delivery_id=row.id,
            business_key=row.business_key,
            content=compose_reply(context.body, context.subject),
            telegram_chat_id=telegram_chat_id,
            email=row.email,
            learner_name=f"{row.first_name} {row.last_name}".strip(),
            conversation_token=self._reply_token(row),
            in_reply_to=context.in_reply_to,
            references=context.references,
            unsubscribe_token=self._unsubscribe_token(row),
            auto_reply=auto_reply,
        )

    def _reply_token(self, row: ClaimedDelivery) -> str:
        if self._signing_key is None or row.enrollment_id is None:
            return ""
        return reply_token(self._signing_key, row.learner_id, row.enrollment_id)

    def _unsubscribe_token(self, row: ClaimedDelivery) -> str:
        if self._signing_key is None:
            return ""
        return unsubscribe_token(self._signing_key, row.learner_id)

    def _outbound(self, row: ClaimedDelivery, curriculum: Curriculum | None) -> Outbound | None:
        if curriculum is None or row.step_id is None:
            return None  # trainer replies arrive with the inbox
        try:
            step = curriculum.step(row.step_id)
        except KeyError:
            return None
        learner = LearnerView(
            first_name=row.first_name,
            last_name=row.last_name,
            email=row.email,
            timezone=row.timezone or curriculum.timezone,
            language=row.language,
            attributes=row.attributes,
        )
        end = row.course_end.strftime("%A %-d %B %Y") if row.course_end else ""
        course = CourseView(curriculum.id, curriculum.title, row.cohort_name or "", end)
        content = compose_step(
            curriculum, step, learner, course, row.id, reminder=row.kind == DeliveryKind.NUDGE
        )
        return Outbound(
            delivery_id=row.id,
            business_key=row.business_key,
            content=content,
            telegram_chat_id=row.telegram_chat_id,
            email=row.email,
            learner_name=f"{row.first_name} {row.last_name}".strip(),
            conversation_token=self._reply_token(row),
            unsubscribe_token=self._unsubscribe_token(row),
        )

    def _classify(
        self,
        row: ClaimedDelivery,
        channel: ChannelName,
        result: SendResult,
        curriculum: Curriculum | None,
    ) -> _Pending:
        now = self.clock.now()
        kind = result.outcome
        if kind is SendOutcome.SENT:
            return _Pending(
                Outcome(
                    row.id,
                    DeliveryState.SENT,
                    channel=channel.value,
                    provider_message_id=result.provider_message_id,
                    sent_at=now,
                ),
                nudges=self._nudges_of_sent(row, curriculum, now),
                reached=(row.learner_id, channel.value),
            )
        if kind is SendOutcome.UNREACHABLE:
            other = other_channel(
                channel,
                email=row.email,
                email_status=row.email_status,
                telegram_chat_id=row.telegram_chat_id,
                telegram_status=row.telegram_status,
                available=self.channels,
            )
            if other is not None:
                reason = f"{result.error}; continuing by {other.value}"
                outcome = Outcome(
                    row.id, DeliveryState.PENDING, available_at=now, last_error=reason
                )
            else:
                outcome = Outcome(row.id, DeliveryState.FAILED, last_error=result.error)
            event = found_unreachable(row.learner_id, channel, result.error, other)
            return _Pending(outcome, unreachable=event)
        if kind is SendOutcome.UNCERTAIN:
            # Retried once, then left uncertain. The channel and the message id are kept: the
            # message may have arrived, and a bounce or a reply naming it must be known as ours.
            retry = not row.uncertain
            return _Pending(
                Outcome(
                    row.id,
                    DeliveryState.PENDING if retry else DeliveryState.UNCERTAIN,
                    available_at=now + self.settings.uncertain_retry_delay if retry else None,
                    channel=channel.value,
                    provider_message_id=result.provider_message_id,
                    last_error=result.error,
                    mark_uncertain=retry,
                )
            )
        if kind is SendOutcome.RETRY and row.attempts < self.settings.max_attempts:
            delay = backoff(
                row.attempts, row.id, self.settings.backoff_base, self.settings.backoff_cap
            )
            if result.retry_after:
                delay = max(delay, timedelta(seconds=result.retry_after))
            return _Pending(
                Outcome(
                    row.id, DeliveryState.PENDING, available_at=now + delay, last_error=result.error
                )
            )
        if kind is SendOutcome.RETRY:
            reason = f"gave up after {row.attempts} attempts: {result.error}"
            return _Pending(Outcome(row.id, DeliveryState.FAILED, last_error=reason))
        return _Pending(Outcome(row.id, DeliveryState.FAILED, last_error=result.error))

    def _nudges_of_sent(
        self, row: ClaimedDelivery, curriculum: Curriculum | None, now: datetime
    ) -> list[NewDelivery]:
        """The reminder of a sent prompt; none when it cannot be planned, for the message went
        out whatever happens to its reminder."""
        try:
            return self._nudges(row, curriculum, now)
        except Exception:
            log.exception("delivery %d: its reminder cannot be planned", row.id)
            return []

    def _nudges(
        self, row: ClaimedDelivery, curriculum: Curriculum | None, now: datetime
    ) -> list[NewDelivery]:
        if curriculum is None or row.step_id is None or row.enrollment_id is None:
            return []
        if row.kind not in (DeliveryKind.STEP, DeliveryKind.NUDGE, DeliveryKind.REASK):
            return []  # a trainer's reply is not a prompt to remind about
        number = int(row.payload.get("reminder", 0)) + 1
        step = curriculum.step(row.step_id)
        tz = learner_zone(row.timezone, curriculum)
        window = window_of(curriculum)
        due = plan_nudge(step, now, number, window, tz, row.enrollment_id)
        if due is None:
            return []
        expires = due + window.expire_after if window.expire_after else None
        return [
            NewDelivery(
                business_key=nudge_key(row.enrollment_id, row.step_id, row.occurrence, number),
                enrollment_id=row.enrollment_id,
                learner_id=row.learner_id,
                kind=DeliveryKind.NUDGE.value,
                step_id=row.step_id,
                occurrence=row.occurrence,
                channel_preference=row.channel_preference,
                due_at=due,
                expires_at=expires,
                payload={"reminder": number},
            )
        ]

    # ---- recording -----------------------------------------------------------------------

    async def _record_loop(self) -> None:
        failures = 0
        while not (self._closing and not self._results):
            await self._results_ready.wait()
            self._results_ready.clear()
            if len(self._results) < self.settings.record_batch and self._tasks:
                # Let outcomes that are about to arrive share the transaction.
                await asyncio.sleep(0.02)
            try:
                await self._drain()
                failures = 0
            except Exception:
                # The outcomes stay queued (claiming pauses while they pile up); after a few
                # minutes of failures while stopping, the leases let a restart recover them.
                failures += 1
                if self._closing and failures > 8:
                    log.error("giving up recording %d outcomes", len(self._results))
                    return
                delay = min(30.0, 0.25 * 2**failures)
                log.exception("recording outcomes failed; trying again in %.1f s", delay)
                await asyncio.sleep(delay)
                self._results_ready.set()

    async def _drain(self) -> None:
        """Record every outcome collected so far; when it returns, all of them are written."""
        async with self._record_lock:
            await self._write_results()

    async def _write_results(self) -> None:
        while self._results:
            batch = self._results[: self.settings.record_batch]
            outcomes = [p.outcome for p in batch]
            nudges = [n for p in batch for n in p.nudges]
            unreachable = [p.unreachable for p in batch if p.unreachable is not None]
            reached = [p.reached for p in batch if p.reached is not None]
            await record(
                outcomes,
                self.worker_id,
                self.clock.now(),
                new_deliveries=nudges,
                unreachable=unreachable,
                reached=reached,
            )
            # Only once written: a failed write keeps them queued for the next try.
            del self._results[: len(batch)]
            if unreachable:  # the retry on the other channel is due now: no idle wait for it
                self.wake.set()
            self._capacity.set()  # recorded outcomes make room for claims, as finished sends do
            for outcome in outcomes:
                self._count(outcome)

    def _count(self, outcome: Outcome) -> None:
        state = outcome.state
        if state is DeliveryState.SENT:
            self.stats.sent += 1
        elif state is DeliveryState.FAILED:
            self.stats.failed += 1
        elif state is DeliveryState.PENDING:
            self.stats.retried += 1
        elif state is DeliveryState.UNCERTAIN:
            self.stats.uncertain += 1
        elif state is DeliveryState.SKIPPED:
            self.stats.skipped += 1
        else:
            self.stats.other += 1


def _log_recovered(recovered: Recovered) -> None:
    if recovered:
        log.warning(
            "recovered claims of a stopped worker: %d never attempted, back in the queue; "
            "%d attempted with an unknown outcome, to retry once; %d left uncertain",
            recovered.returned,
            recovered.retried,
            recovered.given_up,
        )


def _human(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds >= 86400:
        return f"{seconds // 86400}d {seconds % 86400 // 3600}h"
    if seconds >= 3600:
        return f"{seconds // 3600}h {seconds % 3600 // 60}m"
    return f"{seconds // 60}m {seconds % 60}s"
