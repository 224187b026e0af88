"""The cohorts read model: every cohort with its learners, progress and failures."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from dripper.models import CurriculumVersion, EnrollmentState
from dripper.reports.common import rate
from dripper.store import reports as store
from dripper.store.curricula import curriculum_of
from dripper.store.reports import CANCELLED
from dripper.store.sql import as_datetime


@dataclass(frozen=True)
class CohortRow:
    """One cohort, for the Cohorts screen."""

    name: str
    curriculum_key: str
    curriculum_title: str
    course_end: datetime
    paused: bool  # the whole cohort is paused
    learners: int  # enrollments, cancelled ones left out
    learners_active: int
    learners_paused: int
    learners_completed: int
    learners_cancelled: int
    steps_sent: int  # first sendings sent
    steps_due: int  # first sendings in the outbox whose time has come
    steps_total: int  # every step of every (not cancelled) enrollment's plan
    progress: float | None  # steps_sent / steps_due
    overall: float | None  # steps_sent / steps_total
    failed: int  # deliveries of any kind
    uncertain: int


async def cohort_rows(now: datetime) -> list[CohortRow]:
    """Every cohort with its learners, progress and failures, by course end."""
    cohorts = await store.cohorts()
    states = await store.enrollment_states()
    sums = await store.cohort_deliveries(now)
    by_cohort: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    versions_of: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for row in states:
        cohort_id, state, count = int(row["cohort_id"]), str(row["st"]), int(row["n"])
        by_cohort[cohort_id][state] += count
        if state != CANCELLED:
            versions_of[cohort_id][int(row["curriculum_id"])] += count
    lengths = {
        version_id: len((await curriculum_of(version_id)).steps)
        for version_id in sorted({v for counts in versions_of.values() for v in counts})
    }
    by_version, by_key = await _titles({str(row["curriculum_key"]) for row in cohorts})
    delivered = {int(row["cohort_id"]): row for row in sums}
    out = []
    for row in cohorts:
        cohort_id = int(row["id"])
        counts = by_cohort[cohort_id]
        figures = delivered.get(cohort_id, {})
        running = versions_of[cohort_id]
        sent = int(figures.get("sent") or 0)
        due = int(figures.get("due") or 0)
        total = sum(lengths[version_id] * n for version_id, n in running.items())
        key = str(row["curriculum_key"])
        newest = max(running, default=0)
        course_end = as_datetime(row["course_end"])
        assert course_end is not None
        out.append(
            CohortRow(
                name=str(row["name"]),
                curriculum_key=key,
                curriculum_title=by_version.get(newest) or by_key.get(key, key),
                course_end=course_end,
                paused=bool(row["paused"]),
                learners=sum(n for state, n in counts.items() if state != CANCELLED),
                learners_active=counts[EnrollmentState.ACTIVE.value],
                learners_paused=counts[EnrollmentState.PAUSED.value],
                learners_completed=counts[EnrollmentState.COMPLETED.value],
                learners_cancelled=counts[CANCELLED],
                steps_sent=sent,
                steps_due=due,
                steps_total=total,
                progress=rate(sent, due),
                overall=rate(sent, total),
                failed=int(figures.get("failed") or 0),
                uncertain=int(figures.get("uncertain") or 0),
            )
        )
    return out


async def _titles(keys: set[str]) -> tuple[dict[int, str], dict[str, str]]:
    """Curriculum titles by version id, and by key (the newest version's title)."""
    by_version: dict[int, str] = {}
    by_key: dict[str, str] = {}
    if keys:
        rows = (
            await CurriculumVersion.filter(key__in=sorted(keys))
            .order_by("id")
            .values("id", "key", "title")
        )
        for row in rows:
            by_version[int(row["id"])] = by_key[str(row["key"])] = str(row["title"])
    return by_version, by_key
