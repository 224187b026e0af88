"""`dripper apply`: move enrollments to the edited version of their curriculum, after a preview.

A file edit changes nothing by itself: enrollments keep the version they were enrolled with
until this runs. Then new steps are scheduled (a new step whose time has already passed for a
learner is recorded as skipped, not sent late), removed steps are cancelled where unsent, edited
texts are used for everything not sent yet, and sent steps are left untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from tortoise.transactions import in_transaction

from dripper.curriculum import CheckResult, Curriculum, check_paths
from dripper.enrollments.move import replan_unsent
from dripper.errors import DripperError
from dripper.models import CurriculumVersion, DeliveryKind, DeliveryState, Enrollment
from dripper.schedule.keys import step_key
from dripper.schedule.plan import learner_zone, plan_steps
from dripper.store.curricula import curriculum_of, store_version
from dripper.store.enrollments import cancel_queued_steps, repoint
from dripper.store.outbox import ADDED_LATE, NewDelivery, insert_in


@dataclass(frozen=True)
class StepChanges:
    added: tuple[str, ...]
    removed: tuple[str, ...]
    edited: tuple[str, ...]  # same id, other content or timing
    window_changed: bool

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.edited or self.window_changed)


def diff_steps(old: Curriculum, new: Curriculum) -> StepChanges:
    """What changed between two versions of a curriculum, step by step. Pure."""
    old_steps = {step.id: step for step in old.steps}
    new_steps = {step.id: step for step in new.steps}
    return StepChanges(
        added=tuple(s for s in new_steps if s not in old_steps),
        removed=tuple(s for s in old_steps if s not in new_steps),
        edited=tuple(s for s in new_steps if s in old_steps and new_steps[s] != old_steps[s]),
        window_changed=(old.send_window, old.timezone, old.anchor)
        != (new.send_window, new.timezone, new.anchor),
    )


@dataclass
class PendingApply:
    """One curriculum whose enrollments run an older version than its file."""

    checked: CheckResult
    old_version_ids: list[int]
    enrollments: int
    changes: StepChanges


@dataclass
class ApplyReport:
    enrollments: int = 0
    cancelled: int = 0
    rescheduled: int = 0
    skipped_new: int = 0
    notes: list[str] = field(default_factory=list)


async def pending_changes(curricula_dir: Path) -> list[PendingApply]:
    results, problems = check_paths([curricula_dir])
    bad = problems + [p for r in results for p in r.problems]
    if bad:
        lines = "\n".join(str(p) for p in bad)
        raise DripperError(f"fix the curricula first (`dripper check`):\n{lines}")
    pending = []
    for result in results:
        curriculum = result.curriculum
        assert curriculum is not None
        versions = await CurriculumVersion.filter(key=curriculum.id).exclude(
            content_hash=result.content_hash
        )
        old_ids = []
        total = 0
        changes: StepChanges | None = None
        for version in versions:
            count = await Enrollment.filter(
                curriculum_id=version.id, state__in=["active", "paused"]
            ).count()
            if count:
                old_ids.append(version.id)
                total += count
                change = diff_steps(await curriculum_of(version.id), curriculum)
                changes = change if changes is None else _merge(changes, change)
        if old_ids and changes is not None:
            pending.append(PendingApply(result, old_ids, total, changes))
    return pending


def _merge(a: StepChanges, b: StepChanges) -> StepChanges:
    def union(x: tuple[str, ...], y: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(x + y))

    return StepChanges(
        union(a.added, b.added),
        union(a.removed, b.removed),
        union(a.edited, b.edited),
        a.window_changed or b.window_changed,
    )


async def apply_changes(items: list[PendingApply], now: datetime) -> ApplyReport:
    report = ApplyReport()
    for item in items:
        curriculum = item.checked.curriculum
        assert curriculum is not None
        version = await store_version(item.checked)
        enrollments = await Enrollment.filter(
            curriculum_id__in=item.old_version_ids, state__in=["active", "paused"]
        ).prefetch_related("learner")
        async with in_transaction() as tx:
            for enrollment in enrollments:
                report.enrollments += 1
                await repoint(tx, enrollment.id, now, curriculum_id=version.id)
                if item.changes.removed:
                    report.cancelled += await cancel_queued_steps(
                        tx,
                        enrollment.id,
                        item.changes.removed,
                        "step removed from the curriculum by dripper apply",
                        now,
                    )
                shift = timedelta(seconds=enrollment.shift_seconds)
                anchor = enrollment.anchor_at
                report.rescheduled += await replan_unsent(
                    tx, enrollment.id, curriculum, anchor, shift, enrollment.learner.timezone, now
                )
                late = [
                    planned
                    for planned in plan_steps(
                        curriculum,
                        anchor,
                        learner_zone(enrollment.learner.timezone, curriculum),
                        enrollment.id,
                        shift,
                    )
                    if planned.step_id in item.changes.added and planned.due_at < now
                ]
                await insert_in(
                    tx,
                    [
                        NewDelivery(
                            business_key=step_key(enrollment.id, planned.step_id),
                            enrollment_id=enrollment.id,
                            learner_id=enrollment.learner.id,
                            kind=DeliveryKind.STEP.value,
                            step_id=planned.step_id,
                            occurrence=0,
                            channel_preference=curriculum.step(planned.step_id).channel,
                            due_at=planned.due_at,
                            expires_at=planned.expires_at,
                            payload={},
                            state=DeliveryState.SKIPPED,
                            last_error=ADDED_LATE,
                        )
                        for planned in late
                    ],
                    now,
                )
                report.skipped_new += len(late)
    return report
