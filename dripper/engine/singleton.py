"""Run a piece of work in exactly one worker at a time: the Telegram poller of a bot token, the
IMAP poller of a mailbox; and, on SQLite, only one `dripper run` per database (a lock file).

On PostgreSQL the worker that holds a session advisory lock (on a connection of its own) does
the work; the others wait and try again every few seconds. When the holder dies its connection
closes, the lock is released, and another worker takes over within `retry` seconds. On SQLite a
lock file already keeps `dripper run` to one process per database, so the work simply runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

from dripper.db import redact_url
from dripper.errors import DripperError

log = logging.getLogger("dripper.engine.singleton")

RETRY_SECONDS = 5.0


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for a name such as "telegram:<bot id>"."""
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def run_exclusively(
    name: str,
    database_url: str,
    work: Callable[[asyncio.Event], Awaitable[None]],
    stop: asyncio.Event,
    *,
    retry: float = RETRY_SECONDS,
) -> None:
    """Run `work(stop)` while holding the lock `name`, waiting for it as long as another worker
    holds it; returns when `stop` is set."""
    if not database_url.startswith(("postgres://", "postgresql://")):
        await work(stop)
        return
    import asyncpg  # type: ignore[import-untyped]

    key = lock_key(name)
    while not stop.is_set():
        try:
            connection = await asyncpg.connect(database_url.split("?", 1)[0], timeout=10)
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("%s: cannot reach %s (%s)", name, redact_url(database_url), exc)
            await _wait(stop, retry)
            continue
        try:
            if not await connection.fetchval("SELECT pg_try_advisory_lock($1)", key):
                await _wait(stop, retry)
                continue
            log.info("%s: this worker holds the lock", name)
            await _work_while_held(connection, work, stop)
        finally:
            with contextlib.suppress(Exception):
                await connection.close()


async def _work_while_held(
    connection: object, work: Callable[[asyncio.Event], Awaitable[None]], stop: asyncio.Event
) -> None:
    """Run the work until `stop`, or until the lock's connection breaks (then another worker
    may already hold it: stop working and compete again)."""
    lost = asyncio.Event()
    done = asyncio.Event()
    add_listener = getattr(connection, "add_termination_listener", None)
    if add_listener is not None:
        add_listener(lambda _: lost.set())

    async def relay() -> None:
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(lost.wait())]
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()
        done.set()

    relaying = asyncio.create_task(relay())
    try:
        await work(done)
    finally:
        relaying.cancel()


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


def sqlite_path(database_url: str) -> Path | None:
    if not database_url.startswith("sqlite://") or ":memory:" in database_url:
        return None
    return Path(database_url.removeprefix("sqlite://").split("?", 1)[0])


@contextlib.contextmanager
def single_runner(database_url: str) -> Iterator[bool]:
    """On SQLite, only one `dripper run` per database: yields True when this process holds the
    lock (so every claim in the database belongs to a dead process). PostgreSQL runs several
    workers and yields False."""
    path = sqlite_path(database_url)
    if path is None:
        yield False
        return
    lock_path = path.with_name(path.name + ".run.lock")
    with open(lock_path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise DripperError(
                f"another `dripper run` ({holder}) is already using {path}; with SQLite one "
                "runner per database (use PostgreSQL to run several workers)"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
