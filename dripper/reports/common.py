"""What the three read models share: the definitions' SQL, rates, names, a cohort by name."""

from __future__ import annotations

from typing import Any

from dripper.errors import DripperError
from dripper.hints import did_you_mean
from dripper.models import (
    Cohort,
    DeliveryKind,
    DeliveryState,
    EnrollmentState,
    MessageDirection,
)

STEP = DeliveryKind.STEP.value
SENT = DeliveryState.SENT.value
FAILED = DeliveryState.FAILED.value
UNCERTAIN = DeliveryState.UNCERTAIN.value
SKIPPED = DeliveryState.SKIPPED.value
NOT_SENT = DeliveryState.CANCELLED.value
CANCELLED = EnrollmentState.CANCELLED.value
INBOUND = MessageDirection.INBOUND.value

# The enrollment's state, with "completed" derived (see the module docstring). Every value in
# these fragments is one of the constants above: no user input is ever pasted into SQL.
FINISHED = f"e.state = '{EnrollmentState.ACTIVE.value}' AND e.plan_due_at IS NULL"
WAITING = (
    f"w.kind = '{STEP}' AND w.state IN ('{DeliveryState.PENDING.value}', "
    f"'{DeliveryState.CLAIMED.value}', '{DeliveryState.HELD.value}')"
)
COMPLETED = EnrollmentState.COMPLETED.value
# Per row: a lookup in the delivery index (fastest on SQLite, and for a few enrollments).
ENROLLMENT_STATE = (
    f"CASE WHEN {FINISHED} AND NOT EXISTS (SELECT 1 FROM delivery w WHERE "
    f"w.enrollment_id = e.id AND {WAITING}) THEN '{COMPLETED}' ELSE e.state END"
)
# For every enrollment on PostgreSQL: one pass over the waiting deliveries, joined as `u`. It
# estimates the lookups per row so dear that its JIT compiler takes longer than the query.
WAITING_ENROLLMENTS = f"SELECT DISTINCT w.enrollment_id FROM delivery w WHERE {WAITING}"
ENROLLMENT_STATES = (
    f"CASE WHEN {FINISHED} AND u.enrollment_id IS NULL THEN '{COMPLETED}' ELSE e.state END"
)
# One SUM per outcome rather than a GROUP BY state: SQLite sorts every row it groups.
OUTCOMES = (SENT, FAILED, UNCERTAIN, SKIPPED)
OUTCOME_SUMS = ", ".join(
    f"SUM(CASE WHEN d.state = '{state}' THEN 1 ELSE 0 END) AS {state}" for state in OUTCOMES
)
KNOWN_NAMES_SHOWN = 20


def rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def full_name(first: Any, last: Any) -> str:
    return f"{first or ''} {last or ''}".strip()


# --------------------------------------------------------------------------- cohorts


async def cohort_named(name: str) -> Cohort:
    """The cohort called `name`; an unknown name is an error that lists the known ones."""
    cohort = await Cohort.get_or_none(name=name)
    if cohort is not None:
        return cohort
    names = [str(n) for n in await Cohort.all().order_by("name").values_list("name", flat=True)]
    if not names:
        raise DripperError(
            f"no cohort named '{name}': there are no cohorts yet (`dripper enroll` creates one)"
        )
    shown = ", ".join(f"'{n}'" for n in names[:KNOWN_NAMES_SHOWN])
    more = f" and {len(names) - KNOWN_NAMES_SHOWN} more" if len(names) > KNOWN_NAMES_SHOWN else ""
    raise DripperError(
        f"no cohort named '{name}'{did_you_mean(name, names)}; known cohorts: {shown}{more}"
    )


# --------------------------------------------------------------------------- steps


# --------------------------------------------------------------------------- learners
