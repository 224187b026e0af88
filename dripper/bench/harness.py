"""What every benchmark needs: sandbox servers in their own processes, a database of learners.

The Bot API emulator (and the SMTP sink) run in child processes so that they do not share the
dispatcher's core; the numbers are then what a real deployment talking to a fast provider sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import socket
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp

from dripper.store import status

BENCH_TOKEN = "424242:BENCH-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def percentile(values: Sequence[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


@dataclass
class ChildServer:
    process: asyncio.subprocess.Process
    url: str

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.process.wait(), 10)
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


@contextlib.asynccontextmanager
async def telegram_emulator_process() -> AsyncIterator[ChildServer]:
    """`dripper sandbox telegram` in a child process, ready to answer."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dripper.cli.sandbox",
        "telegram",
        "--port",
        str(port),
        "--token",
        BENCH_TOKEN,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    server = ChildServer(process, f"http://127.0.0.1:{port}")
    try:
        await _wait_ready(f"{server.url}/bot{BENCH_TOKEN}/getMe")
        yield server
    finally:
        await server.stop()


async def _wait_ready(url: str, seconds: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"the sandbox at {url} did not start")
            await asyncio.sleep(0.05)


async def control(base_url: str, method: str, **arguments: Any) -> Any:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{base_url}/_control/{method}", json=arguments) as response,
    ):
        body = json.loads(await response.read())
        if not body.get("ok"):
            raise RuntimeError(f"control {method} failed: {body}")
        return body["result"]


async def dispatch_figures(n: int, started_at: datetime, elapsed: float) -> dict[str, Any]:
    """The dispatch benchmarks' figures, read from the outbox: throughput, lag (from the moment
    all n deliveries fell due), and what was not sent."""
    states = await status.deliveries_by_state()
    lags = [(moment - started_at).total_seconds() for moment in await status.sent_times()]
    return {
        "elapsed_s": round(elapsed, 3),
        "msgs_per_s": round(states.get("sent", 0) / elapsed, 1),
        "lag_p50_s": round(percentile(lags, 0.5), 3),
        "lag_p99_s": round(percentile(lags, 0.99), 3),
        "sent": states.get("sent", 0),
        "failed": states.get("failed", 0) + states.get("uncertain", 0),
        "not_sent": n - states.get("sent", 0),
    }
