"""`dripper digest`: what needs a trainer this morning, counts first (read only)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click

from dripper.cli.app import AppContext, pass_app
from dripper.cli.common import with_db


@click.command("digest")
@click.option("--cohort", "cohort_names", multiple=True, help="Only this cohort (repeatable).")
@click.option("--trainer", "handle", help="The cohorts this trainer follows, as their digest.")
@click.option(
    "--silent-after",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Prompts without any answer that make a learner silent.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_app
def digest_cmd(
    app: AppContext,
    cohort_names: tuple[str, ...],
    handle: str | None,
    silent_after: int,
    as_json: bool,
) -> None:
    """Unanswered messages, silent learners, most-missed questions and channel changes.

    The same digest each trainer gets at their morning (`dripper trainers add --digest-at`):
    learner messages waiting for an answer with their age, learners who answered none of
    their last prompts, the quiz questions most answered wrong with the share of each wrong
    option, channel switches, blocked bots, bounces and opt-outs of the last 24 hours, and
    what needs a look in the dashboard.
    """
    from dripper.errors import DripperError
    from dripper.trainers.digest import gather, render, to_json
    from dripper.trainers.roster import cohort_ids, get_trainer

    if cohort_names and handle:
        raise DripperError("--cohort and --trainer both choose the cohorts: pick one")

    async def work() -> tuple[dict[str, object], str]:
        ids: list[int] | None = None
        if cohort_names:
            ids = await cohort_ids(list(cohort_names))
        elif handle:
            trainer = await get_trainer(handle)
            ids = [int(i) for i in trainer.follows] or None
        digest = await gather(ids, datetime.now(UTC), silent_after=silent_after)
        return to_json(digest), render(digest, markdown=False)

    data, text = with_db(app.settings.database_url, work)
    click.echo(json.dumps(data, indent=2, ensure_ascii=False) if as_json else text)
