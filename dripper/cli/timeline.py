"""`dripper timeline`: each step's due time for one learner, planned or sent (read only)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from dripper.cli.app import AppContext, pass_app
from dripper.cli.common import with_db
from dripper.cli.enroll import select_learners
from dripper.models import Delivery, Enrollment
from dripper.schedule.plan import learner_zone, plan_steps
from dripper.schedule.slots import local_iso
from dripper.store.curricula import curriculum_of


async def timeline_data(
    learner_key: str, curriculum_key: str | None, now: datetime
) -> list[dict[str, Any]]:
    [learner] = await select_learners((learner_key,), False, None)
    query = Enrollment.filter(learner_id=learner.id).prefetch_related("cohort")
    entries: list[dict[str, Any]] = []
    for enrollment in await query.order_by("id"):
        curriculum = await curriculum_of(enrollment.curriculum_id)  # type: ignore[attr-defined]
        if curriculum_key and curriculum.id != curriculum_key:
            continue
        zone = learner_zone(learner.timezone, curriculum)
        deliveries = await Delivery.filter(enrollment_id=enrollment.id).order_by("due_at")
        first_sending = {d.step_id: d for d in deliveries if d.kind == "step"}
        planned = plan_steps(
            curriculum,
            enrollment.anchor_at,
            zone,
            enrollment.id,
            shift=timedelta(seconds=enrollment.shift_seconds),
        )
        rows: list[tuple[datetime, dict[str, Any]]] = []
        for step in planned:
            delivery = first_sending.get(step.step_id)
            due = delivery.due_at if delivery else step.due_at
            state = delivery.state.value if delivery else _planned_state(enrollment.state.value)
            rows.append(
                (
                    due,
                    _entry(
                        curriculum.id, enrollment, step.step_id, "step", due, zone, state, delivery
                    ),
                )
            )
        for delivery in deliveries:
            if delivery.kind != "step":
                rows.append(
                    (
                        delivery.due_at,
                        _entry(
                            curriculum.id,
                            enrollment,
                            delivery.step_id or "",
                            delivery.kind.value,
                            delivery.due_at,
                            zone,
                            delivery.state.value,
                            delivery,
                        ),
                    )
                )
        entries.extend(entry for _, entry in sorted(rows, key=lambda pair: pair[0]))
    return entries


def _planned_state(enrollment_state: str) -> str:
    return "paused" if enrollment_state == "paused" else "planned"


def _entry(
    curriculum_id: str,
    enrollment: Enrollment,
    step_id: str,
    kind: str,
    due: datetime,
    zone: Any,
    state: str,
    delivery: Delivery | None,
) -> dict[str, Any]:
    return {
        "curriculum": curriculum_id,
        "cohort": enrollment.cohort.name,
        "step": step_id,
        "kind": kind,
        "due_utc": due.astimezone(UTC).isoformat(timespec="seconds"),
        "due_local": local_iso(due, zone),
        "state": state,
        "channel": delivery.channel.value if delivery and delivery.channel else None,
        "sent_at": delivery.sent_at.isoformat(timespec="seconds")
        if delivery and delivery.sent_at
        else None,
        "error": delivery.last_error if delivery else None,
    }


@click.command("timeline")
@click.argument("learner")
@click.option("--curriculum", "curriculum_key", help="Only this curriculum's steps.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@pass_app
def timeline_cmd(app: AppContext, learner: str, curriculum_key: str | None, as_json: bool) -> None:
    """Each step's due time for LEARNER (email or @handle), in UTC and in their local time,
    with the channel it went out on (- while not sent)."""
    entries = with_db(
        app.settings.database_url,
        lambda: timeline_data(learner, curriculum_key, datetime.now(UTC)),
    )
    if as_json:
        click.echo(json.dumps(entries, indent=2, ensure_ascii=False))
        return
    if not entries:
        click.echo(f"{learner} is not enrolled in anything yet")
        return
    for entry in entries:
        label = entry["step"] if entry["kind"] == "step" else f"{entry['step']} ({entry['kind']})"
        extra = f"  {entry['error']}" if entry["error"] else ""
        click.echo(
            f"{entry['due_local']:<26} {entry['due_utc']:<26} {entry['state']:<10} "
            f"{entry['channel'] or '-':<9} {entry['cohort']} / {label}{extra}"
        )
