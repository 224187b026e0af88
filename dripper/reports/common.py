"""What the three read models share: rates, names, a cohort by name."""

from __future__ import annotations

from typing import Any

from dripper.errors import DripperError
from dripper.hints import did_you_mean
from dripper.models import Cohort

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
