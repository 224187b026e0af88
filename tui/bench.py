"""`dripper bench tui`: how fast the dashboard shows and filters a large inbox.

A temporary SQLite database gets N learners in five cohorts, one conversation each with a
learner message and, for a third of them, a trainer's answer. The dashboard then runs headless
at 120x40: first_paint_s is the time from starting the app to the inbox list holding its rows,
filter_s the time from pressing the Waiting filter key to the list holding that folder's rows;
the *_idle_s figures run until the app is idle again (the frame drawn, the counts updated).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dripper import aio
from dripper.bench.harness import peak_rss_mb
from dripper.db import connection, open_db
from dripper.enrollments.enroll import enroll
from dripper.inbox import Folder
from dripper.models import Learner
from dripper.sandbox.seed import insert_learners, one_step_curriculum
from dripper.store.sql import q, ts
from tui.app import DripperApp
from tui.screens.inbox import InboxScreen
from tui.session import DashboardConfig

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
COHORTS = 5
DEADLINE_S = 60.0


async def populate(count: int) -> None:
    """N conversations, written in a few large batches."""
    await insert_learners(count, NOW - timedelta(days=30), email=True)
    learners = await Learner.all().order_by("id")
    checked = one_step_curriculum()
    size = -(-len(learners) // COHORTS)
    for index in range(COHORTS):
        chunk = learners[index * size : (index + 1) * size]
        await enroll(checked, f"Cohort {index + 1}", NOW - timedelta(days=20), chunk, NOW)
    conn = connection()
    enrollments = await conn.execute_query_dict("SELECT id, learner_id FROM enrollment ORDER BY id")
    stamp = ts(conn, NOW)
    await conn.execute_many(
        q(
            conn,
            "INSERT INTO conversation (learner_id, enrollment_id, status, created_at, updated_at) "
            "VALUES (?, ?, 'open', ?, ?)",
        ),
        [[row["learner_id"], row["id"], stamp, stamp] for row in enrollments],
    )
    conversations = await conn.execute_query_dict("SELECT id FROM conversation ORDER BY id")
    messages = []
    for position, row in enumerate(conversations):
        at = ts(conn, NOW - timedelta(minutes=position))
        messages.append([row["id"], "in", "email", f"Question {position} about pivot tables", at])
        if position % 3 == 0:
            messages.append([row["id"], "out", "email", f"Answer {position}: try this", at])
    await conn.execute_many(
        q(
            conn,
            "INSERT INTO message (conversation_id, direction, channel, body, attachments, flags, "
            "created_at) VALUES (?, ?, ?, ?, '[]', '[]', ?)",
        ),
        messages,
    )
    mine = "FROM message m WHERE m.conversation_id = conversation.id"
    await conn.execute_script(
        "UPDATE conversation SET "
        f"last_message_id = (SELECT MAX(id) {mine}), "
        f"last_inbound_id = (SELECT MAX(id) {mine} AND m.direction = 'in'), "
        f"last_message_at = (SELECT MAX(created_at) {mine}), "
        "status = CASE WHEN id % 3 = 1 THEN 'waiting' ELSE 'open' END"
    )


async def _until(condition: Any, pilot: Any) -> None:
    deadline = time.perf_counter() + DEADLINE_S
    while not condition():
        if time.perf_counter() > deadline:
            raise TimeoutError("the dashboard did not show the inbox in time")
        # Not pause(0): a busy loop here starves the database thread of the GIL and measures
        # itself (seconds instead of tenths).
        await pilot.pause(0.005)


async def measure_once(url: str) -> dict[str, float]:
    config = DashboardConfig(url, "bench", now=lambda: NOW, live_interval=3600)
    started = time.perf_counter()
    app = DripperApp(config)
    async with app.run_test(size=(120, 40)) as pilot:

        def inbox() -> InboxScreen | None:
            screen = app.screen
            return screen if isinstance(screen, InboxScreen) else None

        await _until(lambda: (s := inbox()) is not None and s.fills > 0, pilot)
        screen = inbox()
        assert screen is not None
        first_paint = screen.filled_at - started
        await pilot.pause()
        first_idle = time.perf_counter() - started
        fills = screen.fills
        pressed = time.perf_counter()
        await pilot.press("4")
        await _until(
            lambda: screen.fills > fills and screen.query_state.folder is Folder.WAITING, pilot
        )
        filtered = screen.filled_at - pressed
        drawn = time.perf_counter() - pressed
        rows = screen.total
    return {
        "first_paint_s": first_paint,
        "first_paint_idle_s": first_idle,
        "filter_s": filtered,
        "filter_idle_s": drawn,
        "waiting_rows": rows,
    }


def run_bench(conversations: int, repeat: int) -> dict[str, Any]:
    async def main() -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="dripper-bench-tui-") as tmp:
            url = f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
            async with open_db(url):
                began = time.perf_counter()
                await populate(conversations)
                populate_s = time.perf_counter() - began
                runs = [await measure_once(url) for _ in range(repeat)]
        return {
            "bench": "tui",
            "conversations": conversations,
            "runs": repeat,
            "first_paint_s": round(statistics.median(r["first_paint_s"] for r in runs), 3),
            "filter_s": round(statistics.median(r["filter_s"] for r in runs), 3),
            "first_paint_runs_s": [round(r["first_paint_s"], 3) for r in runs],
            "first_paint_idle_s": round(
                statistics.median(r["first_paint_idle_s"] for r in runs), 3
            ),
            "filter_runs_s": [round(r["filter_s"], 3) for r in runs],
            "filter_idle_s": round(statistics.median(r["filter_idle_s"] for r in runs), 3),
            "waiting_conversations": int(runs[0]["waiting_rows"]),
            "populate_s": round(populate_s, 1),
            "targets": {"first_paint_s": 1.0, "filter_s": 0.2},
            "peak_rss_mb": peak_rss_mb(),
        }

    return aio.run(main())
