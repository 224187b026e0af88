"""The drip engine end to end: enroll, plan, claim, send through PTB to the emulator, record."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dripper.channels.telegram.channel import TelegramChannel
from dripper.clock import ManualClock
from dripper.curriculum.checks import CheckResult, check_source
from dripper.curriculum.source import parse_source
from dripper.engine.dispatcher import Dispatcher, DispatcherSettings
from dripper.enrollments.enroll import enroll
from dripper.enrollments.move import move_cohort
from dripper.enrollments.pause import pause, resume
from dripper.models import Channel, Delivery, DeliveryState, Enrollment, Learner
from dripper.sandbox import TelegramEmulator
from tests.fixtures.sandboxes import telegram_sandbox
from tests.fixtures.waiting import eventually

TOKEN = "123456:TEST-token"
COURSE_END = datetime(2026, 12, 4, 16, 0, tzinfo=UTC)  # a Friday

CURRICULUM = """\
id: mini
title: Mini course
timezone: Europe/Berlin
send_window:
  send_at: "0 9 * * 1-5"
  spread: 10m
  expire_after: 2d
steps:
  - id: hello
    after: 1d
    kind: tip
    text: "Hello {{ learner.first_name }} <&>"
  - id: reflect
    after: 3d
    kind: question
    text: What did you try?
    remind_after: 1d
  - id: quiz
    after: 1w
    kind: quiz
    text: Pick B
    options: [A, B]
    correct: B
"""


def checked(text: str = CURRICULUM) -> CheckResult:
    result = check_source(parse_source(text, "mini.yaml"))
    assert result.curriculum is not None, result.problems
    return result


@dataclass
class Env:
    emulator: TelegramEmulator
    channel: TelegramChannel
    clock: ManualClock


@contextlib.asynccontextmanager
async def served(emulator: TelegramEmulator, **channel_options: Any) -> AsyncIterator[Env]:
    async with telegram_sandbox(TOKEN, emulator, **channel_options) as sandbox:
        yield Env(sandbox.emulator, sandbox.channel, ManualClock(COURSE_END))


@pytest.fixture
async def env(db: None) -> AsyncIterator[Env]:
    async with served(TelegramEmulator(tokens=[TOKEN])) as ready:
        yield ready


async def learners_with_chats(env: Env, count: int) -> list[Learner]:
    learners = []
    for index in range(count):
        user_id = 1000 + index
        env.emulator.create_user(user_id, f"Ann{index}")
        env.emulator.start(TOKEN, user_id)
        learners.append(
            await Learner.create(
                first_name=f"Ann{index}",
                email=f"ann{index}@example.com",
                telegram_chat_id=user_id,
                timezone="America/New_York" if index % 2 else "Europe/Berlin",
            )
        )
    return learners


def dispatcher(env: Env) -> Dispatcher:
    return Dispatcher(
        {Channel.TELEGRAM: env.channel}, env.clock, "test-worker", DispatcherSettings()
    )


async def run_at(env: Env, moment: datetime) -> None:
    await env.clock.set(moment)
    await dispatcher(env).run_until_idle()
    # Whatever was sent is recorded before the dispatcher returns: no claim is left behind.
    assert await Delivery.filter(state=DeliveryState.CLAIMED).count() == 0


def texts(env: Env, chat_id: int | None) -> list[str]:
    assert chat_id is not None
    return [m["text"] or m["caption"] for m in env.emulator.messages(TOKEN, chat_id)]


async def expected_texts(learner: Learner, until: datetime) -> list[str]:
    """What the plan says this learner has received by `until` (first sendings only)."""
    from dripper.schedule.plan import learner_zone, plan_steps

    curriculum = checked().curriculum
    assert curriculum is not None
    enrollment = await Enrollment.get(learner_id=learner.id)
    planned = plan_steps(
        curriculum, COURSE_END, learner_zone(learner.timezone, curriculum), enrollment.id
    )
    bodies = {
        "hello": f"Hello {learner.first_name} <&>",
        "reflect": "What did you try?",
        "quiz": "Pick B",
    }
    return [bodies[p.step_id] for p in planned if p.due_at <= until]


async def test_steps_are_sent_once_each_at_their_time(env: Env) -> None:
    learners = await learners_with_chats(env, 4)
    report = await enroll(checked(), "dec", COURSE_END, learners, env.clock.now())
    assert report.enrolled == 4
    moments = [
        datetime(2026, 12, 5, 12, 0, tzinfo=UTC),  # Saturday: nothing (weekdays only)
        datetime(2026, 12, 7, 8, 5, tzinfo=UTC),  # Monday, inside Berlin's 09:00 spread
        datetime(2026, 12, 7, 8, 15, tzinfo=UTC),
        datetime(2026, 12, 7, 14, 15, tzinfo=UTC),  # New York's 09:00 slot
        datetime(2026, 12, 9, 15, 0, tzinfo=UTC),  # Wednesday: the nudges for "reflect"
        datetime(2026, 12, 11, 20, 0, tzinfo=UTC),  # Friday: the quiz, and the nudges
        datetime(2026, 12, 11, 20, 0, tzinfo=UTC),  # again: nothing new
    ]
    for moment in moments:
        await run_at(env, moment)
        for learner in learners:
            got = [t for t in texts(env, learner.telegram_chat_id) if not t.startswith("A gentle")]
            assert got == await expected_texts(learner, moment), (moment, learner.timezone)
    assert await Delivery.filter(state=DeliveryState.SENT, kind="step").count() == 12
    assert await Delivery.filter(state=DeliveryState.SENT, kind="nudge").count() == 4
    nudge_texts = [
        t for one in learners for t in texts(env, one.telegram_chat_id) if t.startswith("A gentle")
    ]
    assert nudge_texts == ["A gentle reminder:\n\nWhat did you try?"] * 4


async def test_catch_up_after_downtime_sends_valid_and_skips_expired(env: Env) -> None:
    [learner] = await learners_with_chats(env, 1)
    await enroll(checked(), "dec", COURSE_END, [learner], env.clock.now())
    # Down from Friday until Thursday 10 Dec 12:00 UTC: "hello" and "reflect" (Monday 7th)
    # are more than 2 days late and expire; nothing else was due yet.
    await run_at(env, datetime(2026, 12, 10, 12, 0, tzinfo=UTC))
    assert texts(env, learner.telegram_chat_id) == []
    skipped = await Delivery.filter(state=DeliveryState.SKIPPED).order_by("step_id")
    assert [d.step_id for d in skipped] == ["hello", "reflect"]
    assert all("late, past the curriculum's expire_after" in (d.last_error or "") for d in skipped)
    # Down again, but only one day past the quiz: it is still sent.
    await run_at(env, datetime(2026, 12, 12, 12, 0, tzinfo=UTC))
    assert texts(env, learner.telegram_chat_id) == ["Pick B"]


async def test_server_errors_are_retried_with_backoff(env: Env) -> None:
    [learner] = await learners_with_chats(env, 1)
    await enroll(checked(), "dec", COURSE_END, [learner], env.clock.now())
    env.emulator.inject_fault(TOKEN, "server_error", method="sendMessage", times=1)
    monday = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    await run_at(env, monday)
    retried = await Delivery.get(step_id="hello")
    # One of the two steps due met the fault; it waits for its backoff, the other went out.
    failed_once = [
        d for d in await Delivery.filter(kind="step") if d.state == DeliveryState.PENDING
    ]
    assert len(failed_once) == 1
    waiting = failed_once[0]
    assert waiting.attempts == 1
    assert waiting.available_at > monday
    assert "Internal Server Error" in (waiting.last_error or "") or "500" in (
        waiting.last_error or ""
    )
    await run_at(env, waiting.available_at)
    await waiting.refresh_from_db()
    assert waiting.state == DeliveryState.SENT
    assert waiting.attempts == 2
    assert retried is not None


async def test_chat_not_found_fails_the_delivery_with_the_reason(env: Env) -> None:
    learner = await Learner.create(first_name="Ghost", telegram_chat_id=424242)
    await enroll(checked(), "dec", COURSE_END, [learner], env.clock.now())
    await run_at(env, datetime(2026, 12, 7, 9, 0, tzinfo=UTC))
    delivery = await Delivery.get(step_id="hello")
    assert delivery.state == DeliveryState.FAILED
    assert delivery.last_error == "Telegram: Chat not found"


async def test_blocked_learner_without_email_is_marked_unreachable(env: Env) -> None:
    [learner] = await learners_with_chats(env, 1)
    learner.email = None
    await learner.save()
    await enroll(checked(), "dec", COURSE_END, [learner], env.clock.now())
    env.emulator.block(TOKEN, learner.telegram_chat_id)
    await run_at(env, datetime(2026, 12, 7, 9, 0, tzinfo=UTC))
    await learner.refresh_from_db()
    assert learner.telegram_status == "unreachable"
    failed = await Delivery.filter(kind="step", state=DeliveryState.FAILED)
    assert failed and all("blocked by the user" in (d.last_error or "") for d in failed)


async def test_timeout_after_write_is_uncertain_and_retried_once(db: None) -> None:
    emulator = TelegramEmulator(tokens=[TOKEN])
    async with served(emulator, read_timeout=0.3) as env:
        [learner] = await learners_with_chats(env, 1)
        await enroll(checked(), "dec", COURSE_END, [learner], env.clock.now())
        emulator.inject_fault(
            TOKEN, "timeout_after_write", method="sendMessage", times=2, delay=1.0
        )
        await run_at(env, datetime(2026, 12, 7, 9, 0, tzinfo=UTC))
        both = await Delivery.filter(kind="step").order_by("id")
        assert [d.state for d in both] == [DeliveryState.PENDING] * 2
        assert all(d.uncertain for d in both)
        await run_at(env, datetime(2026, 12, 7, 9, 1, tzinfo=UTC))
        for delivery in both:
            await delivery.refresh_from_db()
            assert delivery.state == DeliveryState.SENT
        # Delivered by the first attempt (Telegram got it) and again by the retry.
        assert sorted(texts(env, learner.telegram_chat_id)) == sorted(
            ["Hello Ann0 <&>", "What did you try?"] * 2
        )


async def test_a_second_unknown_outcome_is_left_uncertain(env: Env) -> None:
    [learner] = await learners_with_chats(env, 1)
    await enroll(checked(), "dec", COURSE_END, [learner], env.clock.now())
    await env.clock.set(datetime(2026, 12, 7, 9, 0, tzinfo=UTC))
    # Simulate two workers that crashed while sending: attempted claims nobody recorded.
    from dripper.engine.planner import plan_due
    from dripper.store.outbox import Recovered, claim_due, mark_attempted, recover_claims

    await plan_due(env.clock.now(), timedelta(minutes=10))
    for round_ in range(2):
        ids = await claim_due(env.clock.now(), 10, timedelta(seconds=1), "dead-worker")
        assert len(ids) == 2
        await mark_attempted(ids, "dead-worker", env.clock.now())
        await env.clock.advance(timedelta(seconds=2))
        recovered = await recover_claims(env.clock.now())
        assert recovered == (Recovered(retried=2) if round_ == 0 else Recovered(given_up=2))
    states = {d.state for d in await Delivery.filter(kind="step")}
    assert states == {DeliveryState.UNCERTAIN}


async def test_claims_never_attempted_go_back_untouched_however_often_a_worker_dies(
    env: Env,
) -> None:
    [learner] = await learners_with_chats(env, 1)
    await enroll(checked(), "dec", COURSE_END, [learner], env.clock.now())
    await env.clock.set(datetime(2026, 12, 7, 9, 0, tzinfo=UTC))
    from dripper.engine.planner import plan_due
    from dripper.store.outbox import Recovered, claim_due, mark_attempted, recover_claims

    await plan_due(env.clock.now(), timedelta(minutes=10))
    for _ in range(5):  # five crashes before either was written
        ids = await claim_due(env.clock.now(), 10, timedelta(seconds=1), "dead-worker")
        assert len(ids) == 2
        await env.clock.advance(timedelta(seconds=2))
        assert await recover_claims(env.clock.now()) == Recovered(returned=2)
    # The sixth worker dies after writing the first one only.
    first, second = await claim_due(env.clock.now(), 10, timedelta(seconds=1), "dead-worker")
    await mark_attempted([first], "dead-worker", env.clock.now())
    await env.clock.advance(timedelta(seconds=2))
    assert await recover_claims(env.clock.now()) == Recovered(returned=1, retried=1)
    rows = {d.id: d for d in await Delivery.filter(kind="step")}
    assert {d.state for d in rows.values()} == {DeliveryState.PENDING}
    assert (rows[first].uncertain, rows[first].attempts) == (True, 1)
    assert (rows[second].uncertain, rows[second].attempts) == (False, 0)
    # Both still go out: the retry of the uncertain one was not used up by the crashes.
    await run_at(env, env.clock.now())
    assert {d.state for d in await Delivery.filter(kind="step")} == {DeliveryState.SENT}


async def test_pause_holds_and_resume_shifts_the_rest(env: Env) -> None:
    [learner] = await learners_with_chats(env, 1)
    await enroll(checked(), "dec", COURSE_END, [learner], env.clock.now())
    enrollment = await Enrollment.get(learner_id=learner.id)
    await env.clock.set(datetime(2026, 12, 6, 12, 0, tzinfo=UTC))
    await pause([enrollment.id], "learner", env.clock.now())
    await run_at(env, datetime(2026, 12, 9, 12, 0, tzinfo=UTC))
    assert texts(env, learner.telegram_chat_id) == []
    await resume([enrollment.id], env.clock.now())  # paused 3 days
    await enrollment.refresh_from_db()
    assert enrollment.shift_seconds == 3 * 86400
    await run_at(env, datetime(2026, 12, 10, 12, 0, tzinfo=UTC))
    assert texts(env, learner.telegram_chat_id) == ["Hello Ann0 <&>", "What did you try?"]


async def test_cohort_move_recomputes_unsent_steps(env: Env) -> None:
    [learner] = await learners_with_chats(env, 1)
    await enroll(checked(), "dec", COURSE_END, [learner], env.clock.now())
    await run_at(env, datetime(2026, 12, 7, 9, 0, tzinfo=UTC))
    assert len(texts(env, learner.telegram_chat_id)) == 2
    report = await move_cohort("dec", COURSE_END + timedelta(weeks=1), env.clock.now())
    assert report.enrollments == 1
    await run_at(env, datetime(2026, 12, 12, 9, 0, tzinfo=UTC))  # the old quiz date
    assert texts(env, learner.telegram_chat_id)[-1] != "Pick B"
    await run_at(env, datetime(2026, 12, 18, 12, 0, tzinfo=UTC))  # the new one
    assert texts(env, learner.telegram_chat_id).count("Pick B") == 1
    assert texts(env, learner.telegram_chat_id).count("Hello Ann0 <&>") == 1


@pytest.fixture
async def pg_env(migrated_pg_url: str) -> AsyncIterator[Env]:
    from dripper.db import open_db

    async with open_db(migrated_pg_url), served(TelegramEmulator(tokens=[TOKEN])) as ready:
        yield ready


@pytest.mark.postgres
async def test_the_same_drip_on_postgresql(pg_env: Env) -> None:
    env = pg_env
    learners = await learners_with_chats(env, 3)
    await enroll(checked(), "dec", COURSE_END, learners, env.clock.now())
    for moment in (
        datetime(2026, 12, 7, 8, 15, tzinfo=UTC),
        datetime(2026, 12, 7, 14, 15, tzinfo=UTC),
        datetime(2026, 12, 7, 14, 15, tzinfo=UTC),
    ):
        await run_at(env, moment)
    for learner in learners:
        got = texts(env, learner.telegram_chat_id)
        assert got == await expected_texts(learner, datetime(2026, 12, 7, 14, 15, tzinfo=UTC))
    assert await Delivery.filter(state=DeliveryState.SENT).count() == 6


async def test_telegram_budgets_hold_against_an_enforcing_server(db: None) -> None:
    from dripper.channels.telegram.budget import ChatPacer, telegram_budget

    emulator = TelegramEmulator(tokens=[TOKEN], rate_limit=True, global_rate=30)
    async with served(emulator, budget=telegram_budget(30), pacer=ChatPacer()) as env:
        learners = await learners_with_chats(env, 30)
        await enroll(checked(), "dec", COURSE_END, learners, env.clock.now())
        await run_at(env, datetime(2026, 12, 7, 23, 0, tzinfo=UTC))  # 2 steps due for each
        assert await Delivery.filter(state=DeliveryState.SENT, kind="step").count() == 60
        assert emulator.max_sends_in_window(TOKEN, 1.0) <= 30
        assert all(
            emulator.max_sends_in_window(TOKEN, 1.0, chat_id=learner.telegram_chat_id) <= 1
            for learner in learners
        )


async def test_retry_after_pauses_the_bot_and_reschedules(env: Env) -> None:
    from dripper.channels.ratelimit import TokenBucket

    budget = TokenBucket(1000, burst=10)
    env.channel._budget = budget
    [learner] = await learners_with_chats(env, 1)
    await enroll(checked(), "dec", COURSE_END, [learner], env.clock.now())
    env.emulator.inject_fault(TOKEN, "flood", method="sendMessage", times=1, retry_after=3)
    monday = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    await run_at(env, monday)
    waiting = await Delivery.filter(state=DeliveryState.PENDING, kind="step")
    assert len(waiting) == 1
    assert waiting[0].available_at >= monday + timedelta(seconds=3)
    assert waiting[0].last_error == "Telegram: flood control exceeded, retry after 3 s"
    assert budget.paused_until is not None


ANYTIME = (
    CURRICULUM.replace('send_at: "0 9 * * 1-5"', 'send_at: "* * * * *"')
    .replace("expire_after: 2d", "spread: 0m")
    .replace("  spread: 10m\n", "")
)


async def assert_enqueued_work_wakes_an_idle_dispatcher(
    url: str, env: Env, *, from_a_loop: bool = False
) -> None:
    """A dispatcher asleep for up to ten minutes sends new work at once when notified, as
    `dripper enroll` notifies from another process (or, `from_a_loop`, as the dashboard does
    from inside its event loop)."""
    from dripper.clock import SystemClock
    from dripper.engine.wake import WakeListener, notify_wake, notify_wake_async

    [learner] = await learners_with_chats(env, 1)
    wake = asyncio.Event()
    listener = WakeListener(url, wake)
    await listener.start()
    settings = DispatcherSettings(max_idle=timedelta(minutes=10))
    dispatcher = Dispatcher(
        {Channel.TELEGRAM: env.channel}, SystemClock(), "w", settings, wake=wake
    )
    stop = asyncio.Event()
    running = asyncio.create_task(dispatcher.run(stop))
    try:
        await asyncio.wait_for(dispatcher.idle.wait(), 10)  # asleep, nothing to do
        now = datetime.now(UTC)
        await enroll(checked(ANYTIME), "now", now - timedelta(days=1), [learner], now)
        if from_a_loop:
            assert await notify_wake_async(url)
        else:
            assert await asyncio.to_thread(notify_wake, url)  # its own thread, like a CLI
        await asyncio.wait_for(
            env.emulator.wait_for_messages(TOKEN, learner.telegram_chat_id, 1), 10
        )
    finally:
        stop.set()
        await running
        await listener.close()


async def test_an_idle_dispatcher_wakes_when_work_is_enqueued(db: str, env: Env) -> None:
    await assert_enqueued_work_wakes_an_idle_dispatcher(db, env)


async def test_an_idle_dispatcher_wakes_when_the_dashboard_notifies(db: str, env: Env) -> None:
    await assert_enqueued_work_wakes_an_idle_dispatcher(db, env, from_a_loop=True)


async def test_a_failed_record_is_retried_and_nothing_is_sent_twice(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dripper.engine.dispatcher as scheduler

    learners = await learners_with_chats(env, 3)
    now = datetime.now(UTC)
    await enroll(checked(ANYTIME), "now", now - timedelta(days=1), learners, now)
    real_record = scheduler.record  # type: ignore[attr-defined]
    failures = {"left": 1}

    async def flaky_record(*args: Any, **kwargs: Any) -> int:
        if failures["left"]:
            failures["left"] -= 1
            raise OSError("database is locked (injected)")
        return await real_record(*args, **kwargs)

    monkeypatch.setattr(scheduler, "record", flaky_record)
    from dripper.clock import SystemClock

    dispatcher = Dispatcher({Channel.TELEGRAM: env.channel}, SystemClock(), "w")
    stop = asyncio.Event()
    running = asyncio.create_task(dispatcher.run(stop))

    async def recorded() -> bool:
        return await Delivery.filter(state=DeliveryState.SENT, kind="step").count() >= 3

    await eventually(recorded, seconds=20, interval=0.05, message="the outcomes to be recorded")
    stop.set()
    await running
    assert failures["left"] == 0
    assert await Delivery.filter(state=DeliveryState.CLAIMED).count() == 0
    for learner in learners:
        assert len(texts(env, learner.telegram_chat_id)) == 1


async def test_a_live_workers_claims_are_renewed_not_recovered(env: Env) -> None:
    from dripper.engine.planner import plan_due
    from dripper.store.outbox import Recovered, claim_due, recover_claims, renew_leases

    [learner] = await learners_with_chats(env, 1)
    await enroll(checked(), "dec", COURSE_END, [learner], env.clock.now())
    await env.clock.set(datetime(2026, 12, 7, 9, 0, tzinfo=UTC))
    await plan_due(env.clock.now(), timedelta(minutes=10))
    lease = timedelta(seconds=60)
    assert len(await claim_due(env.clock.now(), 10, lease, "alive")) == 2
    await env.clock.advance(timedelta(seconds=90))  # waiting behind a rate limit
    assert await recover_claims(env.clock.now(), except_worker="alive") == Recovered()
    await renew_leases("alive", env.clock.now(), lease)
    assert await recover_claims(env.clock.now()) == Recovered()  # nobody else may take them
    await env.clock.advance(timedelta(seconds=90))
    assert await recover_claims(env.clock.now()) == Recovered(returned=2)  # really gone


@pytest.fixture
async def pg_url_and_env(migrated_pg_url: str) -> AsyncIterator[tuple[str, Env]]:
    from dripper.db import open_db

    async with open_db(migrated_pg_url), served(TelegramEmulator(tokens=[TOKEN])) as ready:
        yield migrated_pg_url, ready


@pytest.mark.postgres
@pytest.mark.parametrize("from_a_loop", [False, True], ids=["cli", "dashboard"])
async def test_a_postgresql_worker_wakes_on_notify(
    pg_url_and_env: tuple[str, Env], from_a_loop: bool
) -> None:
    await assert_enqueued_work_wakes_an_idle_dispatcher(*pg_url_and_env, from_a_loop=from_a_loop)


async def test_a_full_worker_claims_again_once_its_outcomes_are_recorded(env: Env) -> None:
    """Every send of a batch done, their outcomes still being written: the worker has no room
    to claim. Recording them must make room, or it waits forever for a send to finish."""
    learners = await learners_with_chats(env, 12)
    await enroll(checked(), "dec", COURSE_END, learners, env.clock.now())
    await env.clock.set(datetime(2026, 12, 7, 23, 0, tzinfo=UTC))  # 2 steps due for each
    settings = DispatcherSettings(batch_size=4, max_in_flight=4)
    worker = Dispatcher({Channel.TELEGRAM: env.channel}, env.clock, "w", settings)
    async with asyncio.timeout(30):
        await worker.run_until_idle()
    assert await Delivery.filter(state=DeliveryState.SENT, kind="step").count() == 24


@pytest.mark.postgres
async def test_a_trainer_reply_reaches_the_chat_within_two_seconds_on_postgresql(
    pg_url_and_env: tuple[str, Env],
) -> None:
    """An idle worker (asleep for up to ten minutes) sends a dashboard reply at once: the
    dashboard's NOTIFY wakes it, so the learner has it within two seconds."""
    import time

    from dripper.clock import SystemClock
    from dripper.engine.wake import WakeListener, notify_wake_async
    from dripper.inbox import record_learner_message, reply_to_learner

    url, env = pg_url_and_env
    [learner] = await learners_with_chats(env, 1)
    question = await record_learner_message(
        learner.id, Channel.TELEGRAM, "Is there a shortcut?", datetime.now(UTC)
    )
    wake = asyncio.Event()
    listener = WakeListener(url, wake)
    await listener.start()
    settings = DispatcherSettings(max_idle=timedelta(minutes=10))
    dispatcher = Dispatcher(
        {Channel.TELEGRAM: env.channel}, SystemClock(), "w", settings, wake=wake
    )
    stop = asyncio.Event()
    running = asyncio.create_task(dispatcher.run(stop))
    try:
        await asyncio.wait_for(dispatcher.idle.wait(), 10)
        started = time.monotonic()
        await reply_to_learner(
            question.conversation_id,  # type: ignore[attr-defined]
            "Ctrl+T makes a table.",
            datetime.now(UTC),
        )
        assert await notify_wake_async(url)
        await asyncio.wait_for(
            env.emulator.wait_for_messages(TOKEN, learner.telegram_chat_id, 1), 10
        )
        assert time.monotonic() - started < 2.0
        [sent] = env.emulator.messages(TOKEN, learner.telegram_chat_id or 0)
        assert sent["text"] == "Ctrl+T makes a table."
    finally:
        stop.set()
        await running
        await listener.close()


async def enroll_unplannable(env: Env, learner: Learner) -> None:
    """Enroll `learner` in cohort "broken" as a database from an older dripper would have it:
    with a stored version today's check refuses (skip dates close the window for four years),
    so that it cannot be planned any more."""
    from dripper.models import CurriculumVersion
    from dripper.store import curricula

    other = checked(CURRICULUM.replace("id: mini", "id: other"))
    await enroll(other, "broken", COURSE_END, [learner], env.clock.now())
    closed = other.source_text.replace(
        "  expire_after: 2d\n", "  expire_after: 2d\n  skip_dates: [2026-01-01..2029-12-31]\n"
    )
    await CurriculumVersion.filter(key="other").update(source=closed)
    curricula._parsed.clear()  # a fresh process: nothing parsed yet


async def test_an_enrollment_that_cannot_be_planned_is_flagged_and_the_others_run(
    env: Env,
) -> None:
    healthy, broken = await learners_with_chats(env, 2)
    await enroll(checked(), "healthy", COURSE_END, [healthy], env.clock.now())
    await enroll_unplannable(env, broken)

    await run_at(env, datetime(2026, 12, 7, 9, 30, tzinfo=UTC))  # hello and reflect are due
    assert texts(env, healthy.telegram_chat_id) == ["Hello Ann0 <&>", "What did you try?"]
    assert texts(env, broken.telegram_chat_id) == []
    stuck = await Enrollment.get(learner_id=broken.id)
    assert stuck.plan_error is not None and "skip_dates keep the send window closed" in (
        stuck.plan_error
    )
    assert stuck.plan_due_at is not None and stuck.plan_due_at > env.clock.now()
    assert (await Enrollment.get(learner_id=healthy.id)).plan_error is None


async def test_status_names_what_needs_a_look(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    from dripper.cli.report import _show_problems, status_data
    from dripper.models import InboundItem, InboundState

    blocked, broken = await learners_with_chats(env, 2)
    await enroll(checked(), "dec", COURSE_END, [blocked], env.clock.now())
    await enroll_unplannable(env, broken)
    assert blocked.telegram_chat_id is not None
    env.emulator.block(TOKEN, blocked.telegram_chat_id)
    await InboundItem.create(
        channel=Channel.EMAIL,
        account="course",
        external_id="x",
        payload=b"",
        state=InboundState.FLAGGED,
        error="unknown sender mallory@evil.example",
        received_at=env.clock.now(),
    )
    await run_at(env, datetime(2026, 12, 7, 9, 30, tzinfo=UTC))

    data = await status_data(env.clock.now())
    _show_problems(data)
    shown = capsys.readouterr().out
    assert (
        "Ann0, cohort dec, hello: failed: Telegram: Forbidden: bot was blocked by the user"
        in (shown)
        or "Ann0, cohort dec, hello: failed" in shown
    )
    assert "Ann1, cohort broken: cannot plan" in shown
    assert "received but not filed (1):" in shown
    assert "unknown sender mallory@evil.example" in shown
    keys = [d.business_key for d in await Delivery.all()]
    assert keys and not any(key in shown for key in keys)  # names, never business keys
