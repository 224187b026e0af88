"""Enrolling: learners into a cohort of a checked curriculum, and finding a cohort by name.

An enrollment does not write its steps into the outbox: it records the anchor and the time of
its first step (`plan_due_at`), and the planner inside `dripper run` adds steps as they come
near. So enrolling 100,000 learners writes 100,000 rows, and moving a course date or pausing a
learner only recomputes what has not been sent yet.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from dripper.curriculum import CheckResult, Curriculum
from dripper.errors import DripperError
from dripper.models import Cohort, Enrollment, EnrollmentState, Learner
from dripper.store.curricula import store_version
from dripper.store.enrollments import NewEnrollment, insert_enrollments


@dataclass
class EnrollReport:
    cohort: str
    enrolled: int = 0
    already: int = 0
    rejected: list[str] = field(default_factory=list)


def learner_label(learner: Learner) -> str:
    handle = f"@{learner.telegram_username}" if learner.telegram_username else ""
    return learner.email or handle or f"learner {learner.id}"


def missing_attributes(curriculum: Curriculum, learner: Learner) -> list[str]:
    return [name for name in curriculum.attributes if not (learner.attributes or {}).get(name)]


async def get_or_create_cohort(
    name: str, curriculum: Curriculum, course_end: datetime
) -> tuple[Cohort, bool]:
    cohort = await Cohort.get_or_none(name=name)
    if cohort is None:
        cohort = await Cohort.create(name=name, curriculum_key=curriculum.id, course_end=course_end)
        return cohort, True
    if cohort.curriculum_key != curriculum.id:
        raise DripperError(
            f"cohort '{name}' runs curriculum '{cohort.curriculum_key}', not '{curriculum.id}'; "
            "pick another cohort name"
        )
    if cohort.course_end != course_end:
        raise DripperError(
            f"cohort '{name}' ends at {cohort.course_end:%Y-%m-%d %H:%M} UTC, not "
            f"{course_end:%Y-%m-%d %H:%M} UTC; to change it run "
            f"`dripper cohort move '{name}' --course-end ...`"
        )
    return cohort, False


async def enroll(
    checked: CheckResult,
    cohort_name: str,
    course_end: datetime,
    learners: Sequence[Learner],
    now: datetime,
) -> EnrollReport:
    """Enroll learners in a cohort of a checked curriculum; a learner already in it is skipped."""
    curriculum = checked.curriculum
    assert curriculum is not None
    version = await store_version(checked)
    cohort, _ = await get_or_create_cohort(cohort_name, curriculum, course_end)
    report = EnrollReport(cohort=cohort.name)
    rows_in_cohort = await Enrollment.filter(cohort_id=cohort.id).values("learner_id")
    existing: set[int] = {int(row["learner_id"]) for row in rows_in_cohort}
    rows: list[NewEnrollment] = []
    state = EnrollmentState.PAUSED if cohort.paused else EnrollmentState.ACTIVE
    for learner in learners:
        if learner.id in existing:
            report.already += 1
            continue
        missing = missing_attributes(curriculum, learner)
        if missing:
            report.rejected.append(
                f"{learner_label(learner)}: no value for {', '.join(missing)} "
                f"(the curriculum's texts use it; add the column to the CSV and re-import)"
            )
            continue
        existing.add(learner.id)
        rows.append(
            NewEnrollment(
                learner.id,
                cohort.id,
                version.id,
                state,
                anchor_at=course_end if curriculum.anchor == "course_end" else now,
                paused_at=now if cohort.paused else None,
                pause_reason="cohort" if cohort.paused else None,
            )
        )
    await insert_enrollments(rows, now)
    report.enrolled = len(rows)
    return report


async def cohort_named(name: str) -> Cohort:
    """The cohort, or an error that lists the names it might have meant."""
    cohort = await Cohort.get_or_none(name=name)
    if cohort is None:
        from dripper.hints import did_you_mean

        names = [c.name for c in await Cohort.all()]
        raise DripperError(f"no cohort named '{name}'{did_you_mean(name, names)}")
    return cohort
