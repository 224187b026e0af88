"""`dripper bench dispatch`: N deliveries due at once, sent through the real dispatcher.

Provider limits are lifted (no 30/s budget, no per-chat pacing) so the figure is dripper's own
ceiling. Time runs from "N deliveries are due and not yet in the outbox" to "all recorded": the
planner's insert of N rows, the claims, the sends through python-telegram-bot (or SMTP), and the
recording. `--baseline apscheduler` does the same N sends with APScheduler 3 and its SQLAlchemy
job store on SQLite, one job per delivery, as a team would build it without dripper.
"""

from __future__ import annotations

import importlib.util
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dripper import aio
from dripper.bench.harness import (
    BENCH_TOKEN,
    control,
    dispatch_figures,
    peak_rss_mb,
    telegram_emulator_process,
)
from dripper.channels.base import Channel
from dripper.channels.telegram.channel import TelegramChannel
from dripper.clock import SystemClock
from dripper.db import open_db
from dripper.engine.worker import Worker
from dripper.enrollments.enroll import enroll
from dripper.errors import DripperError
from dripper.models import Channel as ChannelName
from dripper.models import Learner
from dripper.sandbox.seed import insert_learners, one_step_curriculum


async def _prepare(n: int, now: datetime, channel: ChannelName) -> None:
    await insert_learners(
        n, now, telegram=channel is ChannelName.TELEGRAM, email=channel is ChannelName.EMAIL
    )
    learners = await Learner.all()
    # The course ended a minute ago: the only step is due now.
    await enroll(one_step_curriculum(), "bench", now - timedelta(minutes=1), learners, now)


async def dispatch_due(channel: Channel, n: int) -> dict[str, Any]:
    """n deliveries due at once in a new database, sent over `channel` by the worker of
    `dripper run --once`; the figures read back from the outbox."""
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        worker = Worker({channel.name: channel}, SystemClock(), url, receive_telegram=False)
        async with open_db(url), worker:
            now = datetime.now(UTC)
            await _prepare(n, now, channel.name)
            started_at = datetime.now(UTC)
            started = time.perf_counter()
            await worker.run_once()
            elapsed = time.perf_counter() - started
            # Every delivery became due when the run started: lag is how long after that it
            # went out.
            return await dispatch_figures(n, started_at, elapsed)


async def bench_telegram(n: int, baseline: str | None) -> dict[str, Any]:
    if baseline == "apscheduler":
        _require_baseline_packages()
    async with telegram_emulator_process() as emulator:
        await control(emulator.url, "populate", token=BENCH_TOKEN, first_user_id=1, count=n)
        api_url = f"{emulator.url}/bot"
        result: dict[str, Any] = {"bench": "dispatch", "channel": "telegram", "n": n}
        channel = TelegramChannel(BENCH_TOKEN, api_url, connections=256)
        result.update(await dispatch_due(channel, n))
        counts = await control(emulator.url, "send_counts", token=BENCH_TOKEN)
        result["duplicates"] = sum(max(0, c - 1) for c in counts.values())
        result["received"] = sum(counts.values())
        result["peak_rss_mb"] = peak_rss_mb()
        if baseline == "apscheduler":
            from dripper.bench.baseline import apscheduler_telegram

            await control(emulator.url, "clear_faults", token=BENCH_TOKEN)
            base = await apscheduler_telegram(n, api_url)
            base_counts = await control(emulator.url, "send_counts", token=BENCH_TOKEN)
            result["baseline"] = "apscheduler-3 sqlalchemy-sqlite job store"
            result["baseline_msgs_per_s"] = base["msgs_per_s"]
            result["baseline_add_s"] = base["add_s"]
            result["baseline_fire_s"] = base["fire_s"]
            result["baseline_sent"] = base["sent"]
            result["baseline_note"] = (
                "one SQLite commit per job (APScheduler's SQLAlchemy store, as configured by "
                "default), on the same disk as dripper's database; measured over at most "
                "60 s of firing"
            )
            result["baseline_received"] = sum(base_counts.values()) - result["received"]
            result["ratio"] = round(result["msgs_per_s"] / max(base["msgs_per_s"], 0.001), 2)
    return result


def _require_baseline_packages() -> None:
    missing = [m for m in ("apscheduler", "sqlalchemy") if importlib.util.find_spec(m) is None]
    if missing:
        raise DripperError(
            f"the APScheduler baseline needs the bench extra ({', '.join(missing)} "
            "missing): pip install -e '.[bench]'"
        )


def run_dispatch(channel: str, n: int, baseline: str | None) -> dict[str, Any]:
    if channel == "telegram":
        return aio.run(bench_telegram(n, baseline))
    from dripper.bench.email import bench_email

    return aio.run(bench_email(n, baseline))
