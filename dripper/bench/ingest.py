"""`dripper bench ingest --channel telegram`: N learner texts received into the inbox.

The Bot API emulator runs in a child process with N enrolled learners who each wrote one text,
queued before the clock starts (no drip was sent, so each message files under the learner's
enrollment without a prompt). Time runs from the poller's start to the moment every update is
stored raw, processed and filed as an inbox message: getUpdates in batches of 100, one
transaction per batch for the raw items and the cursor, then filing through `inbox`. Each run
uses a fresh emulator and database; the figure reported is the median run.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dripper import aio
from dripper.bench.harness import BENCH_TOKEN, control, peak_rss_mb, telegram_emulator_process
from dripper.channels.telegram.channel import TelegramChannel
from dripper.db import open_db
from dripper.enrollments.enroll import enroll
from dripper.errors import DripperError
from dripper.inbound.telegram.poller import PollerSettings, TelegramPoller
from dripper.models import InboundItem, InboundState, Learner, Message
from dripper.sandbox.seed import insert_learners, one_step_curriculum

RUN_DEADLINE_S = 600


async def _counts() -> dict[str, int]:
    filed = await Message.exclude(inbound_id=None).distinct().values_list("inbound_id", flat=True)
    return {
        "stored": await InboundItem.all().count(),
        "flagged": await InboundItem.filter(state=InboundState.FLAGGED).count(),
        "messages": await Message.all().count(),
        "distinct_items": len(filed),
    }


async def _ingest_once(n: int) -> dict[str, Any]:
    async with telegram_emulator_process() as emulator:
        await control(emulator.url, "populate", token=BENCH_TOKEN, first_user_id=1, count=n)
        await control(emulator.url, "queue_texts", token=BENCH_TOKEN, first_user_id=1, count=n)
        channel = TelegramChannel(BENCH_TOKEN, f"{emulator.url}/bot")
        await channel.start()
        try:
            with tempfile.TemporaryDirectory() as tmp:
                async with open_db(f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"):
                    now = datetime.now(UTC)
                    await insert_learners(n, now, telegram=True)
                    # Enrolled, as learners who write are: messages file under the enrollment.
                    await enroll(one_step_curriculum(), "bench", now, await Learner.all(), now)
                    poller = TelegramPoller(channel.bot, settings=PollerSettings(long_poll=1))
                    stop = asyncio.Event()
                    started = time.perf_counter()
                    receiving = asyncio.create_task(poller.run(stop))
                    deadline = started + RUN_DEADLINE_S
                    while poller.stats.processed + poller.stats.flagged < n:
                        if receiving.done() or time.perf_counter() > deadline:
                            break
                        await asyncio.sleep(0.005)
                    elapsed = time.perf_counter() - started
                    stop.set()
                    await receiving
                    counts = await _counts()
        finally:
            await channel.close()
        left = len(await control(emulator.url, "pending_updates", token=BENCH_TOKEN))
    return {
        "elapsed_s": round(elapsed, 3),
        "updates_per_s": round(n / elapsed, 1),
        "stored": counts["stored"],
        "messages": counts["messages"],
        "flagged": counts["flagged"],
        "duplicates": counts["messages"] - counts["distinct_items"],
        "unconfirmed": left,
    }


async def bench_telegram_ingest(n: int, runs: int) -> dict[str, Any]:
    results = [await _ingest_once(n) for _ in range(runs)]
    median = sorted(results, key=lambda r: r["updates_per_s"])[len(results) // 2]
    return {
        "bench": "ingest",
        "channel": "telegram",
        "n": n,
        **median,
        "runs_updates_per_s": [r["updates_per_s"] for r in results],
        "median_of": runs,
        "spread_updates_per_s": round(statistics.pstdev(r["updates_per_s"] for r in results), 1),
        "peak_rss_mb": peak_rss_mb(),
    }


def run_ingest(channel: str, n: int, runs: int = 3) -> dict[str, Any]:
    """Receive N learner messages on `channel`; the median of `runs` fresh runs."""
    if channel != "telegram":
        raise DripperError(
            f"bench ingest measures the Telegram receiver; for {channel} use its own benchmark"
        )
    return aio.run(bench_telegram_ingest(n, runs))
