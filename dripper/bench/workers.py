"""`dripper bench dispatch --database-url URL --workers W`: N deliveries due at once, sent by W
worker processes sharing one PostgreSQL database.

As in the single-process benchmark, provider limits are lifted and the emulator runs in its own
process. The benchmark never touches the database the URL names: it creates a scratch database
next to it on the same server (the role needs CREATEDB) and drops it at the end. The workers
are started first and wait, idle; the clock starts when the enrollments are in and the workers
are woken (NOTIFY), and stops when the last of the N deliveries is recorded as sent: planning,
claims, sends and records, across all workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import secrets
import signal
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from dripper.bench.harness import (
    BENCH_TOKEN,
    control,
    dispatch_figures,
    peak_rss_mb,
    telegram_emulator_process,
)
from dripper.db import open_db, redact_url
from dripper.engine.wake import notify_wake_async
from dripper.enrollments.enroll import enroll
from dripper.errors import DripperError
from dripper.models import Delivery, DeliveryState, Learner
from dripper.sandbox.seed import insert_learners, one_step_curriculum


@contextlib.asynccontextmanager
async def scratch_database(database_url: str) -> AsyncIterator[str]:
    """A new, empty database on the server of `database_url`, dropped on the way out."""
    import asyncpg  # type: ignore[import-untyped]

    parts = urlsplit(database_url.split("?", 1)[0])
    base = parts.path.lstrip("/") or "dripper"
    name = f"{base}_bench_{secrets.token_hex(4)}"
    try:
        admin = await asyncpg.connect(urlunsplit(parts), timeout=10)
    except (OSError, asyncpg.PostgresError) as exc:
        raise DripperError(f"cannot connect to {redact_url(database_url)}: {exc}") from None
    try:
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        except asyncpg.PostgresError as exc:
            raise DripperError(
                f"the benchmark creates a scratch database next to {redact_url(database_url)} "
                f"and could not ({exc}): use a role with CREATEDB"
            ) from None
        try:
            yield urlunsplit(parts._replace(path=f"/{name}"))
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def _start_worker(url: str, api_url: str) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dripper.bench.worker",
        url,
        api_url,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 60)
    if line.strip() != b"ready":
        process.kill()
        await process.wait()
        raise RuntimeError(f"a benchmark worker did not start: {line!r}")
    return process


async def _stop_workers(processes: list[asyncio.subprocess.Process]) -> list[dict[str, Any]]:
    for process in processes:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
    reports = []
    for process in processes:
        assert process.stdout is not None
        out = await asyncio.wait_for(process.stdout.read(), 60)
        await process.wait()
        lines = out.decode().strip().splitlines()
        reports.append(json.loads(lines[-1]) if lines else {})
    return reports


async def _sent() -> int:
    return await Delivery.filter(state=DeliveryState.SENT).count()


async def _until_sent(n: int, deadline: float) -> None:
    """Poll the outbox (the workers are other processes) until `n` are sent or time is up."""
    while time.perf_counter() < deadline:
        if await _sent() >= n:
            return
        await asyncio.sleep(0.02)


async def _dispatch(url: str, api_url: str, n: int, workers: int) -> dict[str, Any]:
    processes: list[asyncio.subprocess.Process] = []
    try:
        async with open_db(url):
            now = datetime.now(UTC)
            await insert_learners(n, now, telegram=True)
            processes = list(
                await asyncio.gather(*(_start_worker(url, api_url) for _ in range(workers)))
            )
            learners = await Learner.all()
            await enroll(one_step_curriculum(), "bench", now - timedelta(minutes=1), learners, now)
            started_at = datetime.now(UTC)
            started = time.perf_counter()
            await notify_wake_async(url)
            await _until_sent(n, deadline=started + max(120.0, n / 50))
            elapsed = time.perf_counter() - started
            reports = await _stop_workers(processes)
            figures = await dispatch_figures(n, started_at, elapsed)
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()
    figures["sent_per_worker"] = [report.get("sent", 0) for report in reports]
    return figures


async def bench_telegram_workers(database_url: str, n: int, workers: int) -> dict[str, Any]:
    result: dict[str, Any] = {
        "bench": "dispatch",
        "channel": "telegram",
        "n": n,
        "workers": workers,
        "database": "postgresql",
    }
    async with (
        telegram_emulator_process() as emulator,
        scratch_database(database_url) as url,
    ):
        await control(emulator.url, "populate", token=BENCH_TOKEN, first_user_id=1, count=n)
        result.update(await _dispatch(url, f"{emulator.url}/bot", n, workers))
        counts = await control(emulator.url, "send_counts", token=BENCH_TOKEN)
    result["duplicates"] = sum(max(0, c - 1) for c in counts.values())
    result["received"] = sum(counts.values())
    result["peak_rss_mb"] = peak_rss_mb()
    # The largest worker (children that have exited and been waited for).
    result["worker_peak_rss_mb"] = round(
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1
    )
    return result
