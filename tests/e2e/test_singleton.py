"""One poller per bot token across workers: a PostgreSQL advisory lock, taken over on death."""

from __future__ import annotations

import asyncio
import signal
import sys

import pytest

from dripper.engine.singleton import lock_key, run_exclusively
from tests.fixtures.waiting import eventually

pytestmark = pytest.mark.postgres

HOLDER = """
import asyncio, sys, asyncpg
async def main():
    connection = await asyncpg.connect(sys.argv[1])
    assert await connection.fetchval("SELECT pg_try_advisory_lock($1)", int(sys.argv[2]))
    print("locked", flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


async def test_only_one_worker_runs_and_another_takes_over_when_it_dies(pg_url: str) -> None:
    name = "telegram:takeover-test"
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        HOLDER,
        pg_url,
        str(lock_key(name)),
        stdout=asyncio.subprocess.PIPE,
    )
    assert holder.stdout is not None
    assert (await asyncio.wait_for(holder.stdout.readline(), 20)).strip() == b"locked"

    running = asyncio.Event()

    async def work(stop: asyncio.Event) -> None:
        running.set()
        await stop.wait()

    stop = asyncio.Event()
    waiter = asyncio.create_task(run_exclusively(name, pg_url, work, stop, retry=0.2))
    try:
        with pytest.raises(TimeoutError):  # the other worker holds the lock
            await asyncio.wait_for(asyncio.shield(running.wait()), 1.0)
        holder.send_signal(signal.SIGKILL)
        await holder.wait()
        await asyncio.wait_for(running.wait(), 10)  # taken over within 10 s
    finally:
        stop.set()
        await asyncio.wait_for(waiter, 10)


async def test_two_workers_in_turn(pg_url: str) -> None:
    name = "imap:turns-test"
    active: list[str] = []
    stops = {"a": asyncio.Event(), "b": asyncio.Event()}

    def work_of(label: str):  # type: ignore[no-untyped-def]
        async def work(stop: asyncio.Event) -> None:
            active.append(label)
            await stop.wait()
            active.remove(label)

        return work

    first = asyncio.create_task(run_exclusively(name, pg_url, work_of("a"), stops["a"], retry=0.1))
    await eventually(lambda: active == ["a"], seconds=10, interval=0.05, message="the first worker")
    second = asyncio.create_task(run_exclusively(name, pg_url, work_of("b"), stops["b"], retry=0.1))
    with pytest.raises(TimeoutError):  # five retries pass and the second worker never starts
        await eventually(
            lambda: "b" in active, seconds=0.5, interval=0.05, message="the second worker"
        )
    assert active == ["a"]
    stops["a"].set()
    await first
    await eventually(
        lambda: active == ["b"], seconds=10, interval=0.05, message="the second worker to take over"
    )
    stops["b"].set()
    await second
