"""Subcommands: `dripper learners import`, `list`, `pause` and `resume`."""

from __future__ import annotations

import asyncio
import json
import os
import unicodedata
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from dripper.cli.app import AppContext, pass_app
from dripper.cli.common import DURATION, with_db
from dripper.engine.wake import notify_wake
from dripper.errors import DripperError
from dripper.learners.roster import (
    ImportResult,
    LearnerRow,
    import_learners,
    learner_as_dict,
    parse_learners_csv,
    plan_without_database,
)
from dripper.models import Enrollment, Learner


@click.group("learners")
def learners_group() -> None:
    """Import, list, pause, export and erase the learners who receive drips."""


@learners_group.command("import")
@click.argument("csv_file", metavar="FILE.csv", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--dry-run", is_flag=True, help="Validate and report what would change; write nothing."
)
@pass_app
def import_cmd(app: AppContext, csv_file: Path, dry_run: bool) -> None:
    """Create or update learners from a CSV file (re-importing the same file changes nothing).

    Columns: name (or first_name and last_name), email and/or telegram, timezone, language; any
    other column becomes a custom attribute usable in templates (`Cost Center` -> cost_center).
    Valid rows are imported; every rejected row is listed and the exit status is then 1.
    """
    source = str(csv_file)
    try:
        data = csv_file.read_bytes()
    except OSError as exc:
        raise DripperError(f"{source}: cannot read the file: {exc.strerror}") from None
    parsed = parse_learners_csv(data, source)
    for warning in parsed.warnings:
        click.echo(f"warning: {warning}", err=True)
    database_url: str = app.settings.database_url
    if dry_run and not _database_exists(database_url):
        result = plan_without_database(parsed.rows)
    else:
        result = asyncio.run(_import(database_url, parsed.rows, source, dry_run))
    rejected = sorted([*parsed.errors, *result.rejected], key=lambda error: error.row)
    for error in rejected:
        click.echo(_printable(str(error)), err=True)
    click.echo(_summary(result, len(rejected), dry_run))
    if rejected:
        raise SystemExit(1)


async def _import(url: str, rows: list[LearnerRow], source: str, dry_run: bool) -> ImportResult:
    from dripper.db import open_db

    console = Console(stderr=True)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    async with open_db(url):
        # No bar when stderr is a pipe or a file: it would only leave blank lines there.
        bar = Progress(*columns, console=console, transient=True, disable=not console.is_terminal)
        with bar as progress:
            task = progress.add_task("checking" if dry_run else "importing", total=len(rows))
            return await import_learners(
                rows,
                source=source,
                dry_run=dry_run,
                progress=lambda done: progress.advance(task, done),
            )


def _database_exists(url: str) -> bool:
    """False only for a SQLite file that is not there yet (a dry run then needs no database)."""
    prefix = "sqlite://"
    if not url.lower().startswith(prefix):
        return True
    file_path = url[len(prefix) :].partition("?")[0]
    return file_path in ("", ":memory:") or Path(file_path).exists()


def _summary(result: ImportResult, rejected: int, dry_run: bool) -> str:
    noun = "learner" if result.total == 1 else "learners"
    if dry_run:
        counts = f"{result.created} to create, {result.updated} to update"
    else:
        counts = f"{result.created} created, {result.updated} updated"
    line = f"{result.total} {noun}: {counts}, {result.unchanged} unchanged"
    if rejected:
        line += f"; {rejected} {'row' if rejected == 1 else 'rows'} rejected"
    if dry_run:
        line += " (dry run: nothing written)"
    return line


@learners_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@pass_app
def list_cmd(app: AppContext, as_json: bool) -> None:
    """List every learner with their channels, time zone, language and attributes."""
    learners = asyncio.run(_list(app.settings.database_url))
    if as_json:
        click.echo(
            json.dumps(
                [learner_as_dict(learner) for learner in learners], ensure_ascii=False, indent=2
            )
        )
        return
    table = Table()
    for header in ("name", "email", "telegram", "timezone", "language", "attributes"):
        # Fold rather than cut: a truncated email or handle is useless.
        table.add_column(header, overflow="fold")
    for learner in learners:
        attributes = ", ".join(f"{k}={v}" for k, v in (learner.attributes or {}).items())
        handle = learner.telegram_username
        cells = (
            learner.name,
            learner.email or "",
            f"@{handle}" if handle else "",
            learner.timezone or "",
            learner.language or "",
            attributes,
        )
        table.add_row(*(Text(_printable(cell)) for cell in cells))
    console = Console()
    console.print(table)
    click.echo(f"{len(learners)} {'learner' if len(learners) == 1 else 'learners'}")


async def _list(url: str) -> list[Learner]:
    from dripper.db import open_db

    async with open_db(url):
        return await Learner.all().order_by("id")


def _printable(text: str) -> str:
    """Learner text fit for a terminal: line breaks and tabs as spaces, other control characters
    (ANSI escapes, bells) removed."""
    text = text.replace("\r\n", " ").replace("\n", " ").replace("\t", " ")
    return "".join(char for char in text if unicodedata.category(char) != "Cc")


@learners_group.command("pause")
@click.argument("learner")
@click.option("--for", "duration", type=DURATION, help="Resume by itself after this long (7d).")
@pass_app
def pause_cmd(app: AppContext, learner: str, duration: timedelta | None) -> None:
    """Pause every drip of LEARNER (email or @handle) until `learners resume`, or --for a while."""
    from dripper.cli.enroll import select_learners
    from dripper.enrollments.pause import pause

    async def work() -> int:
        [found] = await select_learners((learner,), False, None)
        ids = await Enrollment.filter(learner_id=found.id, state="active").values_list(
            "id", flat=True
        )
        now = datetime.now(UTC)
        until = now + duration if duration else None
        return await pause([int(i) for i in ids], "learner", now, until)  # type: ignore[call-overload]

    count = with_db(app.settings.database_url, work)
    click.echo(f"{learner}: {count} enrollment{'s' if count != 1 else ''} paused")


@learners_group.command("resume")
@click.argument("learner")
@pass_app
def resume_cmd(app: AppContext, learner: str) -> None:
    """Resume LEARNER's paused drips; the rest moves later by the time paused."""
    from dripper.cli.enroll import select_learners
    from dripper.enrollments.pause import resume

    async def work() -> int:
        [found] = await select_learners((learner,), False, None)
        ids = await Enrollment.filter(learner_id=found.id, state="paused").values_list(
            "id", flat=True
        )
        return await resume([int(i) for i in ids], datetime.now(UTC))  # type: ignore[call-overload]

    count = with_db(app.settings.database_url, work)
    notify_wake(app.settings.database_url)
    click.echo(f"{learner}: {count} enrollment{'s' if count != 1 else ''} resumed")


@learners_group.command("export")
@click.argument("learner")
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the JSON to this file (mode 0600) instead of standard output.",
)
@pass_app
def export_cmd(app: AppContext, learner: str, out: Path | None) -> None:
    """Every stored datum about LEARNER (email or @handle) as JSON: a data subject's copy."""
    from dripper.cli.enroll import select_learners
    from dripper.learners.privacy import export_json, export_learner

    async def work() -> str:
        [found] = await select_learners((learner,), False, None)
        return export_json(await export_learner(found.id))

    text = with_db(app.settings.database_url, work)
    if out is None:
        click.echo(text, nl=False)
        return
    try:
        descriptor = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise DripperError(f"cannot write {out}: {exc.strerror}") from None
    click.echo(f"wrote {out}", err=True)


@learners_group.command("erase")
@click.argument("learner")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def erase_cmd(app: AppContext, learner: str, yes: bool) -> None:
    """Delete LEARNER's personal data and messages; anonymous counts stay for the reports.

    Cancels what is not sent yet, blanks the learner's name, addresses, Telegram chat,
    messages, raw emails and updates, and keeps one anonymous row with the steps, states and
    answers the cohort reports count. Cannot be undone: export first if the learner asked for
    a copy. Mail in the IMAP mailbox and the Telegram chat itself are outside dripper.
    """
    from dripper.cli.enroll import select_learners
    from dripper.learners.privacy import erase_learner
    from dripper.media.folder import MediaFolder

    if not yes:
        click.confirm(f"Erase {learner}'s personal data and messages for good?", abort=True)

    async def work() -> tuple[int, object]:
        [found] = await select_learners((learner,), False, None)
        if found.erased_at is not None:
            raise DripperError(f"{learner} was erased already")
        media = MediaFolder(app.settings.media_folder)
        return found.id, await erase_learner(found.id, datetime.now(UTC), media=media)

    learner_id, erasure = with_db(app.settings.database_url, work)
    counts = erasure.__dict__
    click.echo(
        f"{learner}: erased (learner {learner_id}): "
        f"{counts['messages_erased']} messages, {counts['raw_items_erased']} received "
        f"emails and updates, {counts['deliveries_cleared']} deliveries cleared, "
        f"{counts['enrollments_cancelled']} enrollments and {counts['deliveries_cancelled']} "
        f"unsent messages cancelled, {counts['invites_deleted']} invites and "
        f"{counts['files_deleted']} files deleted. Delete their "
        "mail from the IMAP mailbox too."
    )
