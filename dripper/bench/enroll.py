"""`dripper bench enroll`: how long enrolling N learners in a long curriculum takes.

`elapsed_s` is the enrollment itself (cohort, version, N rows, each with its first due time to
plan). `plan_s` is the planner's later pass that computes all N x steps due times and puts
the ones due first into the outbox; it runs inside `dripper run`, spread over the course.
"""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dripper import aio
from dripper.bench.harness import peak_rss_mb
from dripper.db import open_db
from dripper.engine.planner import plan_due
from dripper.enrollments.enroll import enroll
from dripper.models import Enrollment, Learner
from dripper.sandbox.seed import insert_learners, many_step_curriculum


async def _run(n: int, steps: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        async with open_db(url):
            now = datetime.now(UTC)
            await insert_learners(n, now, email=True)
            learners = await Learner.all()
            checked = many_step_curriculum(steps)
            started = time.perf_counter()
            report = await enroll(checked, "bench", now, learners, now)
            elapsed = time.perf_counter() - started
            planning = time.perf_counter()
            planned = await plan_due(now + timedelta(days=1), timedelta(0))
            plan_s = time.perf_counter() - planning
            rows = await Enrollment.all().count()
    return {
        "bench": "enroll",
        "n": n,
        "steps": steps,
        "elapsed_s": round(elapsed, 3),
        "rows": rows,
        "enrolled": report.enrolled,
        "enrollments_per_s": round(report.enrolled / elapsed, 1),
        "plan_s": round(plan_s, 3),
        "planned_deliveries": planned,
        "due_times_computed": n * steps,
        "peak_rss_mb": peak_rss_mb(),
    }


def run_enroll(n: int, steps: int) -> dict[str, Any]:
    return aio.run(_run(n, steps))
