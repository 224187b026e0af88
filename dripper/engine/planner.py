"""Put the steps that fall due soon into the outbox, for every active enrollment.

Runs inside the dispatcher loop. Work per enrollment is pure (`plan.plan_steps`); the database
only sees one short transaction per batch of enrollments.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from dripper.curriculum import Curriculum
from dripper.models import DeliveryKind
from dripper.schedule.keys import step_key
from dripper.schedule.plan import due_times, learner_zone, window_of
from dripper.schedule.slots import expires_at
from dripper.store.curricula import curriculum_of
from dripper.store.outbox import NewDelivery, insert_in
from dripper.store.planning import (
    EnrollmentToPlan,
    lock_due_enrollments,
    planned_steps,
    set_plan_due,
    soonest_to_plan,
)

PLAN_BATCH = 500
RETRY_UNPLANNABLE = timedelta(hours=1)
log = logging.getLogger("dripper.engine.planner")


async def plan_due(now: datetime, horizon: timedelta, batch: int = PLAN_BATCH) -> int:
    """Insert every step due before now + horizon; returns how many deliveries were added."""
    until = now + horizon
    added = 0
    while True:
        async with in_transaction() as tx:
            enrollments = await lock_due_enrollments(tx, until, batch)
            if not enrollments:
                return added
            done = await planned_steps(tx, [e.id for e in enrollments])
            new: list[NewDelivery] = []
            updates: list[tuple[int, datetime | None]] = []
            errors: dict[int, str] = {}
            for enrollment in enrollments:
                try:
                    steps, later = await _plan_one(enrollment, done, until, tx)
                except Exception as exc:
                    # One enrollment that cannot be planned (a curriculum whose window never
                    # opens, a stored version that no longer loads) must not stop every other
                    # learner's drip: record why, try again in an hour.
                    log.exception("enrollment %d cannot be planned", enrollment.id)
                    errors[enrollment.id] = f"cannot plan: {type(exc).__name__}: {exc}"[:1000]
                    updates.append((enrollment.id, until + RETRY_UNPLANNABLE))
                    continue
                new.extend(steps)
                updates.append((enrollment.id, later))
            if new:
                await insert_in(tx, new, now)
            await set_plan_due(tx, updates, now, errors)
            added += len(new)
        if len(enrollments) < batch:
            return added


async def _plan_one(
    enrollment: EnrollmentToPlan,
    done: set[tuple[int, str]],
    until: datetime,
    tx: BaseDBAsyncClient,
) -> tuple[list[NewDelivery], datetime | None]:
    """The enrollment's steps due by `until` not yet in the outbox, and when its next step
    falls due after that (None: every step is planned)."""
    curriculum = await curriculum_of(enrollment.curriculum_version_id, tx)
    window = window_of(curriculum)
    later: datetime | None = None
    new: list[NewDelivery] = []
    for step, due in zip(curriculum.steps, _dues(enrollment, curriculum), strict=True):
        if due > until:
            if later is None or due < later:
                later = due
        elif (enrollment.id, step.id) not in done:
            new.append(
                NewDelivery(
                    business_key=step_key(enrollment.id, step.id),
                    enrollment_id=enrollment.id,
                    learner_id=enrollment.learner_id,
                    kind=DeliveryKind.STEP.value,
                    step_id=step.id,
                    occurrence=0,
                    channel_preference=step.channel,
                    due_at=due,
                    expires_at=expires_at(due, window),
                    payload={},
                )
            )
    return new, later


NEXT_DUE_LOOKS = 2_000  # enrollments `next_step_due` plans at most (a fresh cohort is all alike)


async def next_step_due(before: datetime | None = None) -> datetime | None:
    """When the next step not yet in the outbox falls due, exactly (as the planner will plan
    it), if it is before `before`; None when none is.

    An enrollment's `plan_due_at` is a lower bound of that moment (the course end, before its
    first pass), so enrollments are planned in its order until the next one's bound is no
    sooner than the best due time found. At most NEXT_DUE_LOOKS of them: past that (a cohort
    of thousands enrolled at once) the answer is the soonest among those, later than the true
    one by at most the send window's spread.
    """
    best = before
    found: datetime | None = None
    for bound, enrollment in await soonest_to_plan(before, NEXT_DUE_LOOKS):
        if best is not None and bound >= best:
            break
        try:
            curriculum = await curriculum_of(enrollment.curriculum_version_id)
        except Exception:  # an unloadable version: the planner flags it (plan_error)
            continue
        upcoming = [due for due in _dues(enrollment, curriculum) if due >= bound]
        if upcoming and (best is None or min(upcoming) < best):
            best = found = min(upcoming)
    return found


def _dues(enrollment: EnrollmentToPlan, curriculum: Curriculum) -> list[datetime]:
    """Every step's due time for the enrollment, in step order."""
    return due_times(
        curriculum,
        enrollment.anchor_at,
        learner_zone(enrollment.timezone, curriculum),
        enrollment.id,
        timedelta(seconds=enrollment.shift_seconds),
    )
