"""`dripper status`: what was sent, what is due, what went wrong (read only)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from dripper.cli.app import AppContext, pass_app
from dripper.cli.common import with_db

CHANGES_SHOWN = timedelta(days=7)  # how far back `status` lists channel changes


async def status_data(now: datetime) -> dict[str, Any]:
    # The ORM: not for `dripper status --help`.
    from dripper.store import planning, problems, status
    from dripper.store.reach import reach_events

    pending = await status.next_pending()
    planned = None
    if await planning.soonest_to_plan(pending, 1):
        # The planner and the curricula, only when a step not yet in the outbox may come first.
        from dripper.engine.planner import next_step_due

        planned = await next_step_due(before=pending)
    next_due = min((moment for moment in (pending, planned) if moment), default=None)
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
        "channel_changes": [
            _jsonable(row) for row in await reach_events(now - CHANGES_SHOWN, limit=20)
        ],
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
    """Deliveries per state, cohort and channel, the next due time, learners who changed
    channel this week, and what needs a look: failed and uncertain deliveries, enrollments that
    cannot be planned, mail and updates received but not filed."""
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
    if data["channel_changes"]:
        click.echo("channel changes (last 7 days):")
        for row in data["channel_changes"]:
            click.echo(f"  {row['learner'] or '(no name)'}: {row['body']}")
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
