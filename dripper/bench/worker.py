"""One worker of `dripper bench dispatch --workers W`: the worker of `dripper run` with the
provider limits lifted and no receivers, on PostgreSQL, until SIGTERM.

`python -m dripper.bench.worker DATABASE_URL API_URL` prints "ready" once it listens for
wake-ups, and its counts as one JSON line when it stops.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
import sys

from dripper import aio
from dripper.bench.harness import BENCH_TOKEN
from dripper.channels.telegram.channel import TelegramChannel
from dripper.clock import SystemClock
from dripper.db import open_db
from dripper.engine.worker import Worker
from dripper.models import Channel as ChannelName


async def work(database_url: str, api_url: str) -> None:
    channel = TelegramChannel(BENCH_TOKEN, api_url, connections=256)
    worker = Worker(
        {ChannelName.TELEGRAM: channel}, SystemClock(), database_url, receive_telegram=False
    )
    async with open_db(database_url), worker:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        print("ready", flush=True)
        await worker.run(stop)
        print(json.dumps(dataclasses.asdict(worker.dispatcher.stats)), flush=True)


if __name__ == "__main__":
    aio.run(work(sys.argv[1], sys.argv[2]))
