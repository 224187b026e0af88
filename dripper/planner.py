"""Put the steps that fall due soon into the outbox, for every active enrollment.

Runs inside the dispatcher loop. Work per enrollment is pure (`plan.plan_steps`); the database
only sees one short transaction per batch of enrollments.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from tortoise.transactions import in_transaction

from dripper.models import DeliveryKind
from dripper.plan import learner_zone, plan_steps
from dripper.store.outbox import NewDelivery, insert_in
from dripper.store.planning import lock_due_enrollments, planned_steps, set_plan_due
from dripper.versions import curriculum_of

PLAN_BATCH = 500


def step_key(enrollment_id: int, step_id: str, occurrence: int = 0) -> str:
    return f"{enrollment_id}:{step_id}:{occurrence}"


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
            for enrollment in enrollments:
                curriculum = await curriculum_of(enrollment.curriculum_version_id, tx)
                later: datetime | None = None
                planned = plan_steps(
                    curriculum,
                    enrollment.anchor_at,
                    learner_zone(enrollment.timezone, curriculum),
                    enrollment.id,
                    timedelta(seconds=enrollment.shift_seconds),
                )
                for step in planned:
                    if (enrollment.id, step.step_id) in done:
                        continue
                    if step.due_at <= until:
                        new.append(
                            NewDelivery(
                                business_key=step_key(enrollment.id, step.step_id),
                                enrollment_id=enrollment.id,
                                learner_id=enrollment.learner_id,
                                kind=DeliveryKind.STEP.value,
                                step_id=step.step_id,
                                occurrence=0,
                                channel_preference=curriculum.step(step.step_id).channel,
                                due_at=step.due_at,
                                expires_at=step.expires_at,
                                payload={},
                            )
                        )
                    elif later is None or step.due_at < later:
                        later = step.due_at
                updates.append((enrollment.id, later))
            if new:
                await insert_in(tx, new, now)
            await set_plan_due(tx, updates, now)
            added += len(new)
        if len(enrollments) < batch:
            return added
