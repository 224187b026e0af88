"""One worker of `dripper bench dispatch --workers W`: the dispatcher of `dripper run` with the
provider limits lifted, on PostgreSQL, until SIGTERM.

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
from dripper.engine.dispatcher import Dispatcher
from dripper.engine.wake import WakeListener
from dripper.engine.worker import worker_id
from dripper.models import Channel as ChannelName


async def work(database_url: str, api_url: str) -> None:
    channel = TelegramChannel(BENCH_TOKEN, api_url, connections=256)
    await channel.start()
    try:
        async with open_db(database_url):
            wake = asyncio.Event()
            listener = WakeListener(database_url, wake)
            await listener.start()
            stop = asyncio.Event()
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
            dispatcher = Dispatcher(
                {ChannelName.TELEGRAM: channel}, SystemClock(), worker_id(), wake=wake
            )
            print("ready", flush=True)
            try:
                await dispatcher.run(stop)
            finally:
                await listener.close()
            print(json.dumps(dataclasses.asdict(dispatcher.stats)), flush=True)
    finally:
        await channel.close()


if __name__ == "__main__":
    aio.run(work(sys.argv[1], sys.argv[2]))
