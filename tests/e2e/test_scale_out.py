"""Several workers on one PostgreSQL database: every delivery once, and one budget per bot.

The Bot API emulator runs in this test's event loop without enforcing limits, so its send log
shows everything the workers sent, stamped as Telegram would see it. The big test runs real
`dripper run` processes and kills one; the tests at Telegram's real 30/s run three dispatchers
in this process, each with its own channel and budget object (they share only the database),
claiming small batches so that all of them get work. Every message text names its delivery
(step and learner), so the chats tell how often each delivery arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import os
import signal
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dripper.channels.telegram.budget import shared_telegram_budget
from dripper.channels.telegram.channel import TelegramChannel
from dripper.clock import SystemClock
from dripper.curriculum.checks import CheckResult
from dripper.db import connection, open_db
from dripper.engine.dispatcher import Dispatcher, DispatcherSettings
from dripper.engine.planner import plan_due
from dripper.enrollments.enroll import enroll
from dripper.models import Channel, Learner
from dripper.sandbox import SendRecord, TelegramEmulator, start_server
from dripper.sandbox.seed import insert_learners, minute_steps_curriculum
from tests.fixtures.processes import start_dripper
from tests.fixtures.waiting import eventually

pytestmark = pytest.mark.postgres

TOKEN = "888:SCALE-test"
FINAL = ("sent", "uncertain", "failed", "skipped", "cancelled")


def curriculum(steps: int) -> CheckResult:
    return minute_steps_curriculum(steps, "scale")


@dataclass
class Sandbox:
    emulator: TelegramEmulator
    api_url: str


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    emulator = TelegramEmulator(tokens=[TOKEN])
    server = await start_server(emulator, port=0)
    try:
        yield Sandbox(emulator, server.api_url)
    finally:
        await server.aclose()


@contextlib.contextmanager
def no_collection_pauses() -> Iterator[None]:
    """The emulator stamps each send when it handles it, and the budget is judged by those
    stamps. A garbage collection of this process (it holds every message sent, and pytest's
    own objects) pauses the emulator for a few hundred milliseconds; requests arriving meanwhile
    would be stamped together afterwards, as a burst no worker sent."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@dataclass
class Worker:
    process: asyncio.subprocess.Process
    log: Path

    def stats(self) -> str:
        return self.log.read_text(errors="replace")


async def start_worker(
    url: str, api_url: str, tmp: Path, name: str, messages_per_second: int
) -> Worker:
    env = dict(
        os.environ,
        DRIPPER_DATABASE_URL=url,
        DRIPPER_TELEGRAM_TOKEN=TOKEN,
        DRIPPER_TELEGRAM_API_URL=api_url,
        DRIPPER_TELEGRAM_MESSAGES_PER_SECOND=str(messages_per_second),
        DRIPPER_TELEGRAM_ALLOW_PAID_BROADCAST="true",
        DRIPPER_LEASE_SECONDS="10",
        DRIPPER_CURRICULA_DIR=str(tmp),
    )
    log = tmp / f"{name}.log"
    process = await start_dripper("run", cwd=tmp, env=env, log=log)
    return Worker(process, log)


async def stop(workers: list[Worker]) -> None:
    for worker in workers:
        if worker.process.returncode is None:
            worker.process.send_signal(signal.SIGTERM)
    for worker in workers:
        code = await asyncio.wait_for(worker.process.wait(), 60)
        assert code in (0, -signal.SIGKILL), worker.stats()


async def states() -> Counter[str]:
    rows = await connection().execute_query_dict(
        "SELECT state, COUNT(*) AS n FROM delivery GROUP BY state"
    )
    return Counter({row["state"]: int(row["n"]) for row in rows})


def all_final(total: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        counts = await states()
        return sum(counts.values()) == total and set(counts) <= set(FINAL)

    return check


def max_in_window(times: list[float], window: float = 1.0) -> int:
    best = first = 0
    for last, moment in enumerate(times):
        while moment - times[first] >= window:
            first += 1
        best = max(best, last - first + 1)
    return best


def max_per_chat_in_window(log: list[SendRecord], window: float = 1.0) -> int:
    by_chat: defaultdict[int, list[float]] = defaultdict(list)
    for record in log:
        by_chat[record.chat_id].append(record.at)
    return max(max_in_window(times, window) for times in by_chat.values())


async def prepare(sandbox: Sandbox, learners: int, steps: int) -> None:
    sandbox.emulator.populate(TOKEN, 1, learners)
    now = datetime.now(UTC)
    await insert_learners(learners, now, telegram=True)
    everyone = await Learner.all()
    await enroll(curriculum(steps), "scale", now - timedelta(hours=1), everyone, now)


async def test_three_workers_20000_deliveries_one_killed(
    migrated_pg_url: str, sandbox: Sandbox, tmp_path: Path
) -> None:
    learners, steps, rate = 10_000, 2, 1000
    total = learners * steps
    url = migrated_pg_url
    emulator = sandbox.emulator

    async def a_third_sent() -> bool:
        return len(emulator.send_log(TOKEN)) >= total // 3

    async with open_db(url):
        await prepare(sandbox, learners, steps)
        with no_collection_pauses():
            workers = [
                await start_worker(url, sandbox.api_url, tmp_path, f"w{i}", rate) for i in range(3)
            ]
            try:
                await eventually(
                    a_third_sent, seconds=60, interval=0.1, message="a third of the sends"
                )
                workers[0].process.send_signal(signal.SIGKILL)
                await workers[0].process.wait()
                killed_at = len(emulator.send_log(TOKEN))
                assert killed_at < total, "the kill came too late to test anything"
                workers.append(await start_worker(url, sandbox.api_url, tmp_path, "w3", rate))
                await eventually(
                    all_final(total),
                    seconds=120,
                    interval=0.1,
                    message="every delivery to be recorded",
                )
            finally:
                await stop(workers)
        rows = await connection().execute_query_dict(
            "SELECT d.step_id, d.state, d.uncertain, l.telegram_chat_id AS chat "
            "FROM delivery d JOIN learner l ON l.id = d.learner_id"
        )
    assert len(rows) == total
    assert {row["state"] for row in rows} <= {"sent", "uncertain"}
    received: Counter[str] = Counter()
    for chat in range(1, learners + 1):
        for message in emulator.messages(TOKEN, chat):
            received[message["text"]] += 1
    expected = {f"{row['step_id']} for Learner{row['chat']}": row for row in rows}
    assert set(received) == set(expected)
    for text, count in received.items():
        # Exactly once, unless recorded uncertain (the killed worker's claims): then at most twice.
        assert count == 1 or (count == 2 and expected[text]["uncertain"]), (text, count)
    uncertain = sum(bool(row["uncertain"]) for row in rows)
    recovered = [line for w in workers for line in w.stats().splitlines() if "recovered" in line]
    assert recovered, "nobody recovered the killed worker's claims: the kill tested nothing"

    log = emulator.send_log(TOKEN)
    busiest = max_in_window([record.at for record in log])
    assert busiest <= rate
    assert max_per_chat_in_window(log) <= 1
    twice = sum(1 for count in received.values() if count == 2)
    print(recovered[0].split("dispatcher ", 1)[-1])
    print(
        f"killed after {killed_at}/{total} sends; {uncertain} uncertain, {twice} sent twice; "
        f"busiest second {busiest} (budget {rate}), {log[-1].at - log[0].at:.1f} s of sending"
    )


@contextlib.asynccontextmanager
async def dispatchers(
    api_url: str, count: int, messages_per_second: int
) -> AsyncIterator[list[Dispatcher]]:
    """`count` workers in this process, each with its own channel, HTTP connections and budget
    object, claiming small batches so that each gets a share of the work and the messages to
    one chat go through different workers."""
    settings = DispatcherSettings(batch_size=6, max_in_flight=12, backoff_base=timedelta(seconds=1))
    channels = [
        TelegramChannel(
            TOKEN,
            api_url,
            shared_budget=shared_telegram_budget(TOKEN, messages_per_second),
        )
        for _ in range(count)
    ]
    for channel in channels:
        await channel.start()
    # The outbox filled before any of them looks: a worker that finds nothing sleeps until the
    # next due time (these workers do not LISTEN), and would sit the test out.
    await plan_due(datetime.now(UTC), timedelta(minutes=10))
    workers = [
        Dispatcher({Channel.TELEGRAM: channel}, SystemClock(), f"w{i}", settings)
        for i, channel in enumerate(channels)
    ]
    stop = asyncio.Event()
    running = [asyncio.create_task(worker.run(stop)) for worker in workers]
    try:
        yield workers
    finally:
        stop.set()
        await asyncio.gather(*running)
        for channel in channels:
            await channel.close()


async def test_the_real_budget_holds_for_all_workers_together(
    migrated_pg_url: str, sandbox: Sandbox
) -> None:
    # 30 chats x 4 steps a minute apart: the workers take the steps in due order, so a chat's
    # next message comes about 30 messages (about a second) later, often from another worker.
    learners, steps, rate = 30, 4, 30
    emulator = sandbox.emulator
    async with open_db(migrated_pg_url):
        await prepare(sandbox, learners, steps)
        with no_collection_pauses():
            async with dispatchers(sandbox.api_url, 3, rate) as workers:
                await eventually(
                    all_final(learners * steps),
                    seconds=60,
                    interval=0.1,
                    message="every delivery to be recorded",
                )
        counts = await states()
        errors = await connection().execute_query_dict(
            "SELECT last_error FROM delivery WHERE last_error IS NOT NULL"
        )
    assert counts == Counter({"sent": learners * steps})
    assert errors == []  # no 429, no retry
    assert all(worker.stats.sent > 0 for worker in workers), [w.stats for w in workers]
    log = emulator.send_log(TOKEN)
    assert len(log) == learners * steps
    assert max_in_window([record.at for record in log]) <= rate
    assert max_per_chat_in_window(log) <= 1


async def test_a_429_pauses_every_worker(migrated_pg_url: str, sandbox: Sandbox) -> None:
    learners, steps, rate = 30, 3, 30
    emulator = sandbox.emulator

    async def some_sent() -> bool:
        return len(emulator.send_log(TOKEN)) >= 20

    async with open_db(migrated_pg_url):
        await prepare(sandbox, learners, steps)
        with no_collection_pauses():
            async with dispatchers(sandbox.api_url, 3, rate):
                await eventually(some_sent, seconds=30, interval=0.1, message="the first sends")
                emulator.inject_fault(TOKEN, "flood", method="sendMessage", retry_after=2)
                await eventually(
                    all_final(learners * steps),
                    seconds=60,
                    interval=0.1,
                    message="every delivery to be recorded",
                )
        flooded = await connection().execute_query_dict(
            "SELECT last_error FROM delivery WHERE last_error LIKE '%flood%'"
        )
    assert len(flooded) == 1  # retried after the pause, and sent
    times = [record.at for record in emulator.send_log(TOKEN)]
    assert len(times) == learners * steps
    # Sends are about 37 ms apart; only a pause of the whole bot leaves a long gap. The workers
    # that did not meet the 429 may still use the one small batch of slots they hold.
    longest = max(later - earlier for earlier, later in itertools.pairwise(times))
    assert longest >= 1.6
