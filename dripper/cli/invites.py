"""`dripper invites`: personal Telegram start links for the learners of a cohort."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import click

from dripper import aio
from dripper.cli.app import AppContext, pass_app
from dripper.cli.common import with_db
from dripper.config import Settings
from dripper.csvout import write_csv
from dripper.engine.worker import signing_key
from dripper.errors import DripperError
from dripper.hints import did_you_mean
from dripper.learners.invites import invite_token, invites_for, start_link
from dripper.models import Cohort, Enrollment


@dataclass(frozen=True)
class InviteRow:
    name: str
    email: str
    link: str


@dataclass(frozen=True)
class InviteReport:
    rows: list[InviteRow]
    connected: int  # learners whose chat is bound already: no link needed
    opted_out: int  # learners who asked for no messages: no link printed


def link_signing(settings: Settings, bot_username: str | None) -> tuple[bytes, str]:
    """The key that signs start links and the bot's @username they name, or a clear error."""
    key = signing_key(settings)
    if key is None:
        raise DripperError(
            "invite links are signed: set DRIPPER_HMAC_KEY (or [security] hmac_key_file) to a "
            "long random secret, the same one `dripper run` uses"
        )
    return key, bot_username or aio.run(_bot_username(settings))


async def _bot_username(settings: Settings) -> str:
    from dripper.channels.telegram.channel import TelegramChannel

    token = settings.telegram.token
    if token is None:
        raise DripperError(
            "the links name the bot: set DRIPPER_TELEGRAM_TOKEN (dripper asks Telegram for the "
            "bot's username) or pass --bot-username"
        )
    channel = TelegramChannel(token.get_secret_value(), settings.telegram.api_url)
    try:
        await channel.start()
        return str(channel.bot.username)
    finally:
        await channel.close()


async def cohort_invites(cohort_name: str, key: bytes, bot_username: str) -> InviteReport:
    """A link for each learner of the cohort without a bound chat (reusing unused invites)."""
    cohort = await Cohort.get_or_none(name=cohort_name)
    if cohort is None:
        names = [c.name for c in await Cohort.all()]
        hint = did_you_mean(cohort_name, names)
        raise DripperError(f"no cohort named '{cohort_name}'{hint} (see `dripper status`)")
    enrollments = (
        await Enrollment.filter(cohort_id=cohort.id).prefetch_related("learner").order_by("id")
    )
    learners = [e.learner for e in enrollments]
    waiting = [
        learner
        for learner in learners
        if learner.telegram_chat_id is None and learner.opted_out_at is None
    ]
    invites = await invites_for(waiting)
    rows = [
        InviteRow(
            learner.name,
            learner.email or "",
            start_link(bot_username, invite_token(key, invites[learner.id].id)),
        )
        for learner in waiting
    ]
    connected = sum(learner.telegram_chat_id is not None for learner in learners)
    opted_out = sum(
        learner.telegram_chat_id is None and learner.opted_out_at is not None
        for learner in learners
    )
    return InviteReport(rows, connected, opted_out)


def _qr(link: str) -> str:
    import segno  # type: ignore[import-untyped,unused-ignore]

    out = io.StringIO()
    segno.make(link, error="m").terminal(out=out, compact=True)
    return out.getvalue()


@click.command("invites")
@click.option("--cohort", "cohort_name", required=True, help="The cohort whose learners to invite.")
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(path_type=Path, dir_okay=False, writable=True),
    help="Also write name, email, link to this CSV file.",
)
@click.option(
    "--bot-username", help="The bot's @username (default: asked from Telegram with the token)."
)
@click.option("--qr", is_flag=True, help="Also print each link as a QR code in the terminal.")
@pass_app
def invites_cmd(
    app: AppContext, cohort_name: str, csv_path: Path | None, bot_username: str | None, qr: bool
) -> None:
    """Print a personal Telegram link for each learner of a cohort who has not connected yet.

    Opening the link starts the bot and connects that learner's chat. Each link works for one
    Telegram account only (a forwarded link is refused), and printing them again gives the same
    links until they are used. Learners who opted out get none.
    """
    settings: Settings = app.settings
    key, username = link_signing(settings, bot_username)

    async def work() -> InviteReport:
        return await cohort_invites(cohort_name, key, username)

    report = with_db(settings.database_url, work)
    for row in report.rows:
        who = f"{row.name} <{row.email}>" if row.email else row.name
        click.echo(f"{who}\t{row.link}")
        if qr:
            click.echo(_qr(row.link))
    if csv_path is not None:
        try:
            with csv_path.open("w", newline="", encoding="utf-8") as handle:
                rows = ([row.name, row.email, row.link] for row in report.rows)
                write_csv(handle, ["name", "email", "link"], rows)
        except OSError as exc:
            raise DripperError(f"{csv_path}: cannot write the file: {exc.strerror}") from None
    click.echo(
        f"{len(report.rows)} link(s); {report.connected} learner(s) already connected"
        + (f"; {report.opted_out} opted out (no link)" if report.opted_out else ""),
        err=True,
    )
