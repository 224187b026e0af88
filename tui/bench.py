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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dripper import aio
from dripper.bench.harness import peak_rss_mb
from dripper.db import open_db
from dripper.inbox import Folder
from dripper.sandbox.seed import seed_inbox
from tui.app import DripperApp
from tui.screens.inbox import InboxScreen
from tui.session import DashboardConfig

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
COHORTS = 5
DEADLINE_S = 60.0


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
                await seed_inbox(conversations, NOW, cohorts=COHORTS)
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
