"""`dripper run`: one worker (dripper.engine.worker), until SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import logging
import signal

import click

from dripper import aio
from dripper.cli.app import AppContext, pass_app
from dripper.clock import SystemClock
from dripper.config import Settings
from dripper.db import open_db, redact_url
from dripper.engine.logs import configure_logging
from dripper.engine.singleton import single_runner
from dripper.engine.worker import Worker

log = logging.getLogger("dripper.run")


async def _run(settings: Settings, once: bool, recover_all: bool) -> None:
    worker = Worker.from_settings(settings, SystemClock(), recover_all=recover_all)
    async with open_db(settings.database_url), worker:
        names = ", ".join(sorted(c.value for c in worker.channels))
        log.info("dispatching on %s from %s", names, redact_url(settings.database_url))
        if once:
            await worker.run_once()
        else:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            try:
                await worker.run(stop)
            finally:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)
        stats = worker.dispatcher.stats
        log.info(
            "stopped: %d sent, %d failed, %d to retry, %d uncertain, %d skipped",
            stats.sent,
            stats.failed,
            stats.retried,
            stats.uncertain,
            stats.skipped,
        )


@click.command("run")
@click.option("--once", is_flag=True, help="Send everything due now, then exit (for cron jobs).")
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="-v: dripper's debug lines too; -vv: every library's as well (they include message "
    "texts and chat ids).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    envvar="DRIPPER_LOG_FORMAT",
    help="text: key=value lines; json: one object per line (journald, Loki). "
    "Env: DRIPPER_LOG_FORMAT.",
)
@pass_app
def run_cmd(app: AppContext, once: bool, verbose: int, log_format: str) -> None:
    """Send every step when it is due, until SIGTERM or Ctrl-C (in-flight sends finish first).

    Catches up after downtime: everything still valid is sent, anything past the curriculum's
    expire_after is recorded as skipped. Logs one line per delivery outcome and per item
    received (ids, step, channel, state, timings; never a message's text). On SQLite one
    runner per database; on PostgreSQL run as many workers as you like.
    """
    settings = app.settings
    configure_logging(
        settings, verbosity=verbose, log_format="json" if log_format == "json" else "text"
    )
    with single_runner(settings.database_url) as sole:
        aio.run(_run(settings, once, recover_all=sole))
