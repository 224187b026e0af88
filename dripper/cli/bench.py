"""`dripper bench ...`: benchmarks that print one JSON line each."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

from dripper import aio

F = TypeVar("F", bound=Callable[..., Any])

channel_option = click.option(
    "--channel",
    type=click.Choice(["telegram", "email"]),
    default="telegram",
    show_default=True,
    help="Through the Bot API emulator (telegram) or a local SMTP sink / IMAP mailbox (email).",
)


def count_option(default: int, help_text: str) -> Callable[[F], F]:
    return click.option(
        "--n", "count", type=click.IntRange(1), default=default, show_default=True, help=help_text
    )


@click.group("bench")
def bench_group() -> None:
    """Measure dripper on this machine; each benchmark prints one JSON line."""


@bench_group.command("dispatch")
@channel_option
@count_option(10_000, "Deliveries due at once.")
@click.option(
    "--baseline",
    type=click.Choice(["apscheduler"]),
    help="Also run the same sends with APScheduler 3 (needs the bench extra).",
)
@click.option(
    "--database-url",
    metavar="URL",
    help="Run the workers on this PostgreSQL server, in a scratch database created next to "
    "the one named (needs CREATEDB) and dropped afterwards.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    help="Worker processes sharing the database (with --database-url; default 1).",
)
def dispatch_cmd(
    channel: str,
    count: int,
    baseline: str | None,
    database_url: str | None,
    workers: int | None,
) -> None:
    """N deliveries due at once, through the dispatcher to a local emulator or SMTP sink.

    By default one dispatcher on a temporary SQLite file; with --database-url, --workers
    processes on PostgreSQL (Telegram only), reporting their combined throughput.
    """
    if database_url is None:
        if workers is not None:
            raise click.UsageError(
                "--workers needs --database-url postgresql://...: on SQLite one process sends"
            )
        from dripper.bench.dispatch import run_dispatch

        click.echo(json.dumps(run_dispatch(channel, count, baseline)))
        return
    if not database_url.startswith(("postgres://", "postgresql://")):
        raise click.UsageError("--database-url must be a postgresql:// URL")
    if channel != "telegram" or baseline is not None:
        raise click.UsageError("--database-url measures Telegram only, without --baseline")
    from dripper.bench.workers import bench_telegram_workers

    click.echo(json.dumps(aio.run(bench_telegram_workers(database_url, count, workers or 1))))


@bench_group.command("enroll")
@click.option(
    "--n",
    "count",
    type=click.IntRange(1),
    default=100_000,
    show_default=True,
    help="Learners to enroll.",
)
@click.option(
    "--steps",
    type=click.IntRange(1, 200),
    default=30,
    show_default=True,
    help="Steps in the benchmark curriculum (due times computed per learner).",
)
def enroll_cmd(count: int, steps: int) -> None:
    """Enroll N learners in a curriculum of --steps steps; then plan their first steps."""
    from dripper.bench.enroll import run_enroll

    click.echo(json.dumps(run_enroll(count, steps)))


@bench_group.command("ingest")
@channel_option
@count_option(5_000, "Learner messages to receive.")
def ingest_cmd(channel: str, count: int) -> None:
    """N learner replies from the Bot API emulator (getUpdates) or a local Dovecot (IMAP) into
    stored inbox messages."""
    if channel == "telegram":
        from dripper.bench.ingest import run_ingest

        click.echo(json.dumps(run_ingest("telegram", count)))
    else:
        from dripper.bench.ingest_email import run_ingest_email

        click.echo(json.dumps(aio.run(run_ingest_email(count))))


@bench_group.command("startup")
@click.option("--repeat", type=click.IntRange(1), default=7, show_default=True, help="Runs each.")
def startup_cmd(repeat: int) -> None:
    """How long `dripper --help`, `dripper status` and `dripper check` take as fresh processes
    (medians; target 0.3 s), in a project `dripper init` wrote."""
    from dripper.bench.startup import bench_startup

    click.echo(json.dumps(bench_startup(repeat)))
