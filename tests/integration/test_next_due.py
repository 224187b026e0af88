"""`dripper status`'s "next due": the next delivery's due time, also before the planner ran
(not the course end, when planning starts), on a real SQLite database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dripper.cli.report import status_data
from dripper.curriculum.checks import check_source
from dripper.curriculum.source import parse_source
from dripper.engine import planner
from dripper.engine.planner import next_step_due, plan_due
from dripper.enrollments.enroll import enroll
from dripper.models import Delivery, Enrollment, Learner
from dripper.schedule.plan import due_times, learner_zone
from dripper.shipped import example_curricula

COURSE_END = datetime(2026, 12, 4, 16, 0, tzinfo=UTC)
ZONES = ["Europe/Berlin", "America/Mexico_City", "Asia/Tokyo", "Pacific/Auckland"]


async def _cohort() -> list[datetime]:
    """Four learners in four zones enrolled in the Excel example; each one's first due time."""
    path = example_curricula() / "excel-essentials.yaml"
    checked = check_source(parse_source(path.read_text(encoding="utf-8"), str(path)))
    assert checked.curriculum is not None
    learners = [
        await Learner.create(
            first_name=f"L{n}",
            email=f"l{n}@example.com",
            timezone=zone,
            attributes={"department": "Sales", "manager": "Anna"},
        )
        for n, zone in enumerate(ZONES)
    ]
    await enroll(checked, "Excel Dec", COURSE_END, learners, COURSE_END - timedelta(days=1))
    firsts = []
    for learner in learners:
        enrollment = await Enrollment.get(learner_id=learner.id)
        zone = learner_zone(learner.timezone, checked.curriculum)
        firsts.append(min(due_times(checked.curriculum, COURSE_END, zone, enrollment.id)))
    return firsts


async def test_before_planning_it_is_the_first_step_not_the_course_end(db: str) -> None:
    firsts = await _cohort()
    assert await Delivery.all().count() == 0
    data = await status_data(COURSE_END - timedelta(days=1))
    assert data["next_due"] == min(firsts).isoformat()
    assert min(firsts) > COURSE_END + timedelta(hours=12)


async def test_after_planning_it_is_the_soonest_delivery_in_the_outbox(db: str) -> None:
    firsts = await _cohort()
    await plan_due(COURSE_END, timedelta(days=3))  # every first step, nothing after
    first = await Delivery.all().order_by("available_at").first()
    assert first is not None and first.available_at == min(firsts)
    data = await status_data(COURSE_END)
    assert data["next_due"] == min(firsts).isoformat()
    # Once a step is planned its enrollment's bound is exact: the next one after it.
    later = await next_step_due()
    assert later is not None and later > max(firsts)


async def test_a_capped_look_is_a_real_due_time_no_sooner_than_the_true_one(
    db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    firsts = await _cohort()
    assert await next_step_due() == min(firsts)  # the Auckland learner's, the last enrolled
    monkeypatch.setattr(planner, "NEXT_DUE_LOOKS", 1)
    found = await next_step_due()
    # One look: the first enrollment by (bound, id), Berlin's, a real due time but not the
    # soonest one.
    assert found == firsts[0] and found > min(firsts)
