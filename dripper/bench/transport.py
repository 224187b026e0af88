"""Benchmark: PTB `send_message` throughput, default HTTPXRequest vs. our aiohttp transport.

The emulator runs under uvicorn in a separate process on 127.0.0.1; this process sends N messages
with a fixed concurrency through `telegram.Bot` and prints one JSON line with msgs/s per run and
the median per transport. Run as `python -m dripper.bench.transport [--n 5000]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import socket
import statistics
import time
from collections.abc import Callable

import httpx
import telegram
from telegram.request import BaseRequest, HTTPXRequest

from dripper.channels.telegram.transport import AiohttpRequest

TOKEN = "1000000001:bench-token"
USERS = 100


def _serve(host: str, port: int) -> None:
    from dripper.sandbox.server import serve
    from dripper.sandbox.telegram.emulator import TelegramEmulator

    emulator = TelegramEmulator([TOKEN])
    for user_id in range(1, USERS + 1):
        emulator.create_user(user_id, f"Learner {user_id}")
        emulator.start(TOKEN, user_id)
    serve(emulator, host, port, log_level="error")


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


async def _wait_ready(url: str, deadline: float) -> None:
    async with httpx.AsyncClient() as client:
        while True:
            try:
                response = await client.post(f"{url}/bot{TOKEN}/getMe")
                if response.status_code == 200:
                    return
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
            await asyncio.sleep(0.05)


async def _run_once(
    api_url: str, make_request: Callable[[], BaseRequest], n: int, concurrency: int
) -> tuple[float, int]:
    """Send n messages with `concurrency` workers; returns (msgs/s, failures)."""
    bot = telegram.Bot(TOKEN, base_url=api_url, request=make_request())
    failures = 0
    counter = iter(range(n))

    async def worker() -> None:
        nonlocal failures
        for index in counter:
            try:
                await bot.send_message(index % USERS + 1, f"<b>Tip {index}</b>: spaced repetition")
            except telegram.error.TelegramError:
                failures += 1

    async with bot:
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return n / elapsed, failures


async def _bench(api_url: str, n: int, concurrency: int, runs: int) -> dict[str, object]:
    transports: dict[str, Callable[[], BaseRequest]] = {
        "httpx": lambda: HTTPXRequest(connection_pool_size=concurrency + 10),
        "aiohttp": lambda: AiohttpRequest(connection_pool_size=concurrency + 10),
    }
    result: dict[str, object] = {"n": n, "concurrency": concurrency, "runs": runs}
    for name, make_request in transports.items():
        rates: list[float] = []
        failed = 0
        for _ in range(runs):
            rate, failures = await _run_once(api_url, make_request, n, concurrency)
            rates.append(round(rate, 1))
            failed += failures
        result[name] = {
            "median_msgs_per_s": round(statistics.median(rates), 1),
            "runs": rates,
            "failures": failed,
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="messages per run")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    port = _free_port(args.host)
    server = multiprocessing.get_context("spawn").Process(
        target=_serve, args=(args.host, port), daemon=True
    )
    server.start()
    try:
        url = f"http://{args.host}:{port}"
        asyncio.run(_wait_ready(url, time.monotonic() + 20))
        result = asyncio.run(_bench(f"{url}/bot", args.n, args.concurrency, args.runs))
    finally:
        server.terminate()
        server.join(5)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
