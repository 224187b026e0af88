"""`dripper trainers`: the trainers, their notifications and their own Telegram chat."""

from __future__ import annotations

import json
from typing import cast

import click

from dripper.cli.app import AppContext, pass_app
from dripper.cli.common import with_db
from dripper.errors import DripperError


@click.group("trainers")
def trainers_group() -> None:
    """Add trainers, connect their own Telegram chat, and say what they are told about."""


@trainers_group.command("add")
@click.argument("handle")
@click.option("--name", help="How learners and other trainers see the trainer.")
@click.option("--email", help="Where notifications go while the trainer has no Telegram chat.")
@click.option("--timezone", help="The trainer's time zone, e.g. Europe/Berlin (quiet hours).")
@click.option("--quiet", help="No notifications between these local times, e.g. 20:00-08:00.")
@click.option(
    "--cohort",
    "cohorts",
    multiple=True,
    help="Hear only of this cohort's learners (repeat for several; default: every cohort).",
)
@click.option("--all-cohorts", is_flag=True, help="Hear of every cohort again.")
@click.option("--digest-at", help="Local time of the daily digest (default 08:00), e.g. 07:30.")
@click.option("--no-digest", is_flag=True, help="No daily digest for this trainer.")
@pass_app
def add_cmd(
    app: AppContext,
    handle: str,
    name: str | None,
    email: str | None,
    timezone: str | None,
    quiet: str | None,
    cohorts: tuple[str, ...],
    all_cohorts: bool,
    digest_at: str | None,
    no_digest: bool,
) -> None:
    """Add a trainer, or change the given settings of one (the handle is their dashboard login).

    A trainer hears of each new learner message (batched, outside their quiet hours) in their
    Telegram chat (see `dripper trainers invite`), else by email; an assigned conversation
    only to its assignee. Each morning (--digest-at, their time zone) they get the digest of
    their cohorts (see `dripper digest`), unless nothing waits for them.
    """
    from dripper.trainers.roster import QuietHours, add_trainer

    if cohorts and all_cohorts:
        raise DripperError("--cohort and --all-cohorts contradict each other: pick one")
    if digest_at and no_digest:
        raise DripperError("--digest-at and --no-digest contradict each other: pick one")
    hours = QuietHours.parse(quiet) if quiet else None
    follows = [] if all_cohorts else (list(cohorts) if cohorts else None)

    async def work() -> tuple[str, bool]:
        trainer, created = await add_trainer(
            handle,
            name=name,
            email=email,
            timezone=timezone,
            quiet=hours,
            follows=follows,
            digest_at=digest_at,
            no_digest=no_digest,
        )
        return trainer.handle, created

    done, created = with_db(app.settings.database_url, work)
    click.echo(f"{'added' if created else 'updated'} trainer {done}")
    if created:
        click.echo(f"next: dripper trainers invite {done}  (a link for their Telegram chat)")


@trainers_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON list.")
@pass_app
def list_cmd(app: AppContext, as_json: bool) -> None:
    """Every trainer with their Telegram connection, quiet hours and cohorts."""
    from dripper.models import Cohort, Trainer
    from dripper.trainers.roster import describe

    async def work() -> list[dict[str, object]]:
        cohorts = {cohort.id: cohort.name for cohort in await Cohort.all()}
        return [describe(t, cohorts) for t in await Trainer.all().order_by("handle")]

    rows = with_db(app.settings.database_url, work)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no trainers yet: dripper trainers add HANDLE --name NAME")
    for row in rows:
        follows = ", ".join(cast("list[str]", row["follows"])) or "every cohort"
        quiet = f", quiet {row['quiet']}" if row["quiet"] else ""
        quiet += f", digest {row['digest_at']}" if row["digest_at"] else ", no digest"
        email = f" <{row['email']}>" if row["email"] else ""
        click.echo(
            f"{row['handle']}: {row['name']}{email}; Telegram {row['telegram']}; "
            f"{row['timezone']}{quiet}; follows {follows}"
        )


@trainers_group.command("invite")
@click.argument("handle")
@click.option(
    "--bot-username", help="The bot's @username (default: asked from Telegram with the token)."
)
@pass_app
def invite_cmd(app: AppContext, handle: str, bot_username: str | None) -> None:
    """Print a single-use link that connects the trainer's own Telegram chat to the bot.

    Open it from the trainer's Telegram account. A new link replaces the old one once used
    (a new phone); a learner's chat can never become a trainer's.
    """
    from dripper.cli.invites import link_signing
    from dripper.learners.invites import start_link
    from dripper.trainers.roster import get_trainer, invite_token

    settings = app.settings
    key, username = link_signing(settings, bot_username)

    async def work() -> str:
        return invite_token(key, await get_trainer(handle))

    click.echo(start_link(username, with_db(settings.database_url, work)))
