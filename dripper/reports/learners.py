"""The learners read model: one page of learners with channels, state, progress and failures."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from dripper.models import EnrollmentState, Reachability
from dripper.reports.common import cohort_named, full_name, rate
from dripper.store import reports as store
from dripper.store.curricula import curriculum_of
from dripper.store.reports import CANCELLED
from dripper.store.sql import as_datetime


@dataclass(frozen=True)
class LearnerRow:
    """One learner, for the Learners screen (figures limited to one cohort when asked)."""

    learner_id: int
    name: str
    email: str | None
    telegram: str | None  # "@handle"
    telegram_connected: bool  # the learner started the bot: dripper knows their chat
    email_status: Reachability
    telegram_status: Reachability
    timezone: str | None
    opted_out: bool
    cohorts: tuple[str, ...]  # by course end
    enrollment_ids: tuple[int, ...]  # in the same order
    state: EnrollmentState | None  # paused, else active, else completed, else cancelled
    paused_until: datetime | None  # the earliest automatic resume of a paused enrollment
    steps_sent: int
    steps_due: int  # in the outbox and due (or sent), as of `now`
    steps_total: int
    progress: float | None  # steps_sent / steps_total
    failures: int  # failed and uncertain deliveries
    last_failure: str | None  # the reason of the newest one
    last_failure_at: datetime | None
    last_reply_at: datetime | None


async def learner_count(*, cohort: str | None = None, search: str | None = None) -> int:
    """How many learners `learner_rows` pages through with the same filters."""
    cohort_id = (await cohort_named(cohort)).id if cohort is not None else None
    return await store.count_learners(cohort_id, search)


async def learner_rows(
    now: datetime,
    *,
    cohort: str | None = None,
    search: str | None = None,
    limit: int = 200,
    offset: int = 0,
) -> list[LearnerRow]:
    """A page of learners by name, with channels, enrollments, progress, failures and replies.

    `cohort` keeps the learners enrolled in it and limits every figure to that enrollment;
    `search` keeps those whose name, email or @handle contains the text (case is ignored).
    """
    cohort_id = (await cohort_named(cohort)).id if cohort is not None else None
    learners = await store.learner_page(cohort_id, search, limit, offset)
    ids = [int(row["id"]) for row in learners]
    if not ids:
        return []
    enrollments = await _enrollments(ids, cohort_id)
    sent = await _step_counts([e.id for e in enrollments], now)
    failures = await _failures(ids, cohort_id)
    replies = await _last_replies(ids, cohort_id)
    lengths = {
        version_id: len((await curriculum_of(version_id)).steps)
        for version_id in sorted({e.curriculum_id for e in enrollments})
    }
    mine: dict[int, list[_Enrolled]] = defaultdict(list)
    for enrollment in enrollments:
        mine[enrollment.learner_id].append(enrollment)
    out = []
    for row in learners:
        learner_id = int(row["id"])
        own = mine.get(learner_id, [])
        live = [e for e in own if e.state != CANCELLED]
        steps_sent = sum(sent.get(e.id, (0, 0))[0] for e in live)
        steps_due = sum(sent.get(e.id, (0, 0))[1] for e in live)
        steps_total = sum(lengths[e.curriculum_id] for e in live)
        failed = failures.get(learner_id, [])
        handle = row["telegram_username"]
        resumes = [e.resume_at for e in own if e.state == "paused" and e.resume_at is not None]
        out.append(
            LearnerRow(
                learner_id=learner_id,
                name=full_name(row["first_name"], row["last_name"]),
                email=row["email"],
                telegram=f"@{handle}" if handle else None,
                telegram_connected=row["telegram_chat_id"] is not None,
                email_status=Reachability(row["email_status"]),
                telegram_status=Reachability(row["telegram_status"]),
                timezone=row["timezone"],
                opted_out=row["opted_out_at"] is not None,
                cohorts=tuple(e.cohort for e in own),
                enrollment_ids=tuple(e.id for e in own),
                state=_summary_state(e.state for e in own),
                paused_until=min(resumes) if resumes else None,
                steps_sent=steps_sent,
                steps_due=steps_due,
                steps_total=steps_total,
                progress=rate(steps_sent, steps_total),
                failures=len(failed),
                last_failure=failed[0][0] if failed else None,
                last_failure_at=failed[0][1] if failed else None,
                last_reply_at=replies.get(learner_id),
            )
        )
    return out


_STATE_PRIORITY = (
    EnrollmentState.PAUSED,
    EnrollmentState.ACTIVE,
    EnrollmentState.COMPLETED,
    EnrollmentState.CANCELLED,
)


def _summary_state(states: Iterable[str]) -> EnrollmentState | None:
    present = set(states)
    return next((state for state in _STATE_PRIORITY if state.value in present), None)


@dataclass(frozen=True)
class _Enrolled:
    id: int
    learner_id: int
    curriculum_id: int
    cohort: str
    state: str
    resume_at: datetime | None


async def _enrollments(learner_ids: Sequence[int], cohort_id: int | None) -> list[_Enrolled]:
    rows = await store.learner_enrollments(learner_ids, cohort_id)
    return [
        _Enrolled(
            id=int(row["id"]),
            learner_id=int(row["learner_id"]),
            curriculum_id=int(row["curriculum_id"]),
            cohort=str(row["name"]),
            state=str(row["st"]),
            resume_at=as_datetime(row["resume_at"]),
        )
        for row in rows
    ]


async def _step_counts(enrollment_ids: Sequence[int], now: datetime) -> dict[int, tuple[int, int]]:
    """(sent, due) first sendings of each enrollment."""
    rows = await store.step_counts(enrollment_ids, now)
    return {
        int(row["enrollment_id"]): (int(row["sent"] or 0), int(row["due"] or 0)) for row in rows
    }


async def _failures(
    learner_ids: Sequence[int], cohort_id: int | None
) -> dict[int, list[tuple[str | None, datetime | None]]]:
    """Failed and uncertain deliveries of each learner, newest first: (reason, when)."""
    rows = await store.learner_failures(learner_ids, cohort_id)
    found: dict[int, list[tuple[str | None, datetime | None]]] = defaultdict(list)
    for row in rows:
        found[int(row["learner_id"])].append((row["last_error"], as_datetime(row["updated_at"])))
    return found


async def _last_replies(learner_ids: Sequence[int], cohort_id: int | None) -> dict[int, datetime]:
    rows = await store.last_replies(learner_ids, cohort_id)
    found = {}
    for row in rows:
        moment = as_datetime(row["t"])
        if moment is not None:
            found[int(row["learner_id"])] = moment
    return found
