"""Read-only views of the drip: `dripper status` and `dripper timeline`."""

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
from dripper.store import problems, status
from dripper.store.curricula import curriculum_of


async def status_data(now: datetime) -> dict[str, Any]:
    next_due = await status.next_due()
    return {
        "now": now.isoformat(),
        "deliveries": await status.deliveries_by_state(),
        "by_cohort": await status.deliveries_by_cohort(),
        "by_channel": [
            row for row in await status.deliveries_by_channel() if row["channel"] is not None
        ],
        "enrollments": await status.enrollments_by_state(),
        "next_due": next_due.isoformat() if next_due else None,
        "retrying": [_jsonable(row) for row in await status.retrying()],
        "problems": [_jsonable(row) for row in await problems.problem_deliveries()],
        "flagged_inbound": [_jsonable(row) for row in await problems.flagged_items()],
        "flagged_inbound_total": await problems.count_flagged_items(),
        "unplannable": [_jsonable(row) for row in await problems.unplannable()],
    }


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (v.isoformat() if isinstance(v, datetime) else getattr(v, "value", v))
        for k, v in row.items()
    }


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_app
def status_cmd(app: AppContext, as_json: bool) -> None:
    """Deliveries per state, cohort and channel, the next due time, and what needs a look:
    failed and uncertain deliveries, enrollments that cannot be planned, mail and updates
    received but not filed."""
    data = with_db(app.settings.database_url, lambda: status_data(datetime.now(UTC)))
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    states = data["deliveries"]
    click.echo(
        "deliveries: " + (", ".join(f"{n} {state}" for state, n in states.items()) or "none yet")
    )
    click.echo(
        "enrollments: "
        + (", ".join(f"{n} {state}" for state, n in data["enrollments"].items()) or "none")
    )
    cohorts: dict[str, list[str]] = {}
    for row in data["by_cohort"]:
        cohorts.setdefault(row["cohort"], []).append(f"{row['n']} {row['state']}")
    for name, parts in cohorts.items():
        click.echo(f"  cohort {name}: {', '.join(parts)}")
    channels: dict[str, list[str]] = {}
    for row in data["by_channel"]:
        channels.setdefault(row["channel"], []).append(f"{row['n']} {row['state']}")
    for name, parts in channels.items():
        click.echo(f"  {name}: {', '.join(parts)}")
    click.echo(f"next due: {data['next_due'] or 'nothing scheduled'}")
    _show_retrying(data)
    _show_problems(data)


def _show_retrying(data: dict[str, Any]) -> None:
    """Deliveries waiting for their next try, by learner and step."""
    if not data["retrying"]:
        return
    click.echo("retrying:")
    for row in data["retrying"]:
        where = f", cohort {row['cohort']}" if row["cohort"] else ""
        click.echo(
            f"  {row['learner'] or '(no name)'}{where}, {row['step'] or row['kind']}: "
            f"attempt {row['attempts']}, next {row['available_at']}: {row['last_error']}"
        )


def _show_problems(data: dict[str, Any]) -> None:
    """What needs a trainer's look, by learner and step (never business keys)."""
    if data["problems"]:
        click.echo("deliveries that need a look (newest first):")
        for row in data["problems"]:
            what = row["step"] or row["kind"]
            where = f", cohort {row['cohort']}" if row["cohort"] else ""
            click.echo(
                f"  {row['learner'] or '(no name)'}{where}, {what}: {row['state']}: "
                f"{row['reason'] or 'no reason recorded'}"
            )
    if data["unplannable"]:
        click.echo("enrollments dripper cannot plan (retried hourly):")
        for row in data["unplannable"]:
            click.echo(
                f"  {row['learner'] or '(no name)'}, cohort {row['cohort']}: {row['reason']}"
            )
    if data["flagged_inbound"]:
        total = data["flagged_inbound_total"]
        shown = len(data["flagged_inbound"])
        more = f", the newest {shown}" if total > shown else ""
        click.echo(f"received but not filed ({total}{more}):")
        for row in data["flagged_inbound"]:
            click.echo(f"  #{row['id']} {row['channel']} {row['at']}: {row['reason']}")
    if data["problems"] or data["unplannable"] or data["flagged_inbound"]:
        click.echo(
            "deal with them in `dripper tui`, F4: retry, resend, mark sent or dismiss each one"
        )


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
    """Each step's due time for LEARNER (email or @handle), in UTC and in their local time."""
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
            f"{entry['cohort']} / {label}{extra}"
        )


COMMANDS: list[click.Command] = [status_cmd, timeline_cmd]
