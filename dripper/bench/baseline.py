"""The obvious alternative, for comparison: APScheduler 3, SQLAlchemy job store on SQLite,
one date job per delivery, each job doing the same send through the same Telegram channel.

Jobs get `misfire_grace_time=None` (APScheduler's default of 1 s would silently drop a backlog)
and `coalesce=False`, which is what a team would have to discover and set.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dripper.bench.harness import BENCH_TOKEN
from dripper.channels.base import Outbound, Outcome
from dripper.channels.telegram.channel import TelegramChannel
from dripper.content.compose import CourseView, LearnerView, compose_step
from dripper.sandbox.seed import one_step_curriculum

# The baseline can be very slow (one job store commit per job); it is measured over what it
# manages in this time, and reports how many it sent.
BASELINE_TIME_LIMIT_S = 60.0

_state: dict[str, Any] = {}


async def send_job(chat_id: int) -> None:
    """The job function: render and send one tip, as dripper does (module level: jobs pickle
    a reference to it)."""
    channel: TelegramChannel = _state["channel"]
    curriculum = _state["curriculum"]
    learner = LearnerView(f"Learner{chat_id}", "", None, "UTC", None, {})
    course = CourseView("bench", "Benchmark", "bench", "")
    content = compose_step(curriculum, curriculum.steps[0], learner, course, chat_id)
    result = await channel.send(
        Outbound(chat_id, f"aps:{chat_id}", content, chat_id, None, learner.first_name)
    )
    if result.outcome is Outcome.SENT:
        _state["sent"] += 1
    if _state["sent"] + _state["failed"] >= _state["n"]:
        _state["done"].set()


async def apscheduler_telegram(n: int, api_url: str) -> dict[str, Any]:
    from apscheduler.executors.asyncio import AsyncIOExecutor
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    channel = TelegramChannel(BENCH_TOKEN, api_url, connections=256)
    await channel.start()
    checked = one_step_curriculum()
    _state.update(
        channel=channel,
        curriculum=checked.curriculum,
        sent=0,
        failed=0,
        n=n,
        done=asyncio.Event(),
    )
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLAlchemyJobStore(url=f"sqlite:///{Path(tmp) / 'jobs.sqlite3'}")
        scheduler = AsyncIOScheduler(
            jobstores={"default": store},
            executors={"default": AsyncIOExecutor()},
            job_defaults={"misfire_grace_time": None, "coalesce": False, "max_instances": 1},
            timezone=UTC,
        )
        scheduler.start(paused=True)
        started = time.perf_counter()
        due = datetime.now(UTC)
        for chat_id in range(1, n + 1):
            scheduler.add_job(send_job, "date", run_date=due, args=[chat_id], id=f"d{chat_id}")
        added = time.perf_counter()
        scheduler.resume()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(_state["done"].wait(), timeout=BASELINE_TIME_LIMIT_S)
        finished = time.perf_counter()
        scheduler.shutdown(wait=False)
    await channel.close()
    total = finished - started
    return {
        "msgs_per_s": round(_state["sent"] / total, 1),
        "add_s": round(added - started, 3),
        "fire_s": round(finished - added, 3),
        "sent": _state["sent"],
    }
