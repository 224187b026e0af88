"""`dripper run`: the dispatcher, until SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from datetime import timedelta

import click

from dripper import aio
from dripper.channels.base import Channel
from dripper.channels.telegram.channel import TelegramChannel
from dripper.cli.app import AppContext, pass_app
from dripper.clock import SystemClock
from dripper.config import Settings
from dripper.db import open_db, redact_url
from dripper.engine.dispatcher import Dispatcher, DispatcherSettings
from dripper.engine.singleton import run_exclusively
from dripper.engine.wake import WakeListener
from dripper.engine.worker import (
    build_channels,
    configure_logging,
    signing_key,
    single_runner,
    worker_id,
)
from dripper.inbound.email.poller import ImapPoller
from dripper.inbound.telegram.poller import TelegramPoller
from dripper.inbound.telegram.webhook import TelegramWebhook
from dripper.models import Channel as ChannelName

log = logging.getLogger("dripper.run")


async def _run(settings: Settings, once: bool, recover_all: bool) -> None:
    channels: dict[ChannelName, Channel] = build_channels(settings)
    started: list[Channel] = []
    try:
        for channel in channels.values():
            await channel.start()
            started.append(channel)
        async with open_db(settings.database_url):
            wake = asyncio.Event()
            listener = WakeListener(settings.database_url, wake)
            await listener.start()
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            clock = SystemClock()
            dispatcher = Dispatcher(
                channels,
                clock,
                worker_id(),
                DispatcherSettings(lease=timedelta(seconds=settings.lease_seconds)),
                wake=wake,
                recover_all_on_start=recover_all,
                signing_key=signing_key(settings),
            )
            telegram = channels.get(ChannelName.TELEGRAM)
            poller = (
                TelegramPoller(
                    telegram.bot, signing_key=signing_key(settings), now=clock.now, wake=wake
                )
                if isinstance(telegram, TelegramChannel)
                else None
            )
            webhook = _webhook(settings, poller)
            mail_poller = ImapPoller.from_settings(settings) if settings.imap.host else None
            if mail_poller is not None:
                await mail_poller.connect()  # a wrong [imap] setting fails here, named
            names = ", ".join(sorted(c.value for c in channels))
            log.info("dispatching on %s from %s", names, redact_url(settings.database_url))
            receiving: asyncio.Task[None] | None = None
            reading: asyncio.Task[None] | None = None
            try:
                if once:
                    if webhook is not None and poller is not None:
                        await poller.process_pending()  # Telegram posts; nothing to fetch
                    elif poller is not None:
                        await poller.run_until_idle()
                    if mail_poller is not None:
                        await mail_poller.poll_once()
                    await dispatcher.run_until_idle()
                else:
                    if webhook is not None:
                        receiving = asyncio.create_task(webhook.run(stop))
                        receiving.add_done_callback(lambda _: stop.set())
                    elif poller is not None:
                        # One poller per bot token across all workers (PostgreSQL).
                        receiving = asyncio.create_task(
                            run_exclusively(
                                f"telegram:{poller.account}",
                                settings.database_url,
                                poller.run,
                                stop,
                            )
                        )
                        # A poller that must give up (409 Conflict) stops the whole run.
                        receiving.add_done_callback(lambda _: stop.set())
                    if mail_poller is not None:
                        reading = asyncio.create_task(
                            run_exclusively(
                                f"imap:{mail_poller.account}",
                                settings.database_url,
                                mail_poller.run,
                                stop,
                            )
                        )
                    await dispatcher.run(stop)
            finally:
                if receiving is not None:
                    await asyncio.wait({receiving})
                if reading is not None:
                    await asyncio.wait({reading})
                if mail_poller is not None:
                    await mail_poller.close()
                await listener.close()
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)
            if receiving is not None:
                receiving.result()
            stats = dispatcher.stats
            log.info(
                "stopped: %d sent, %d failed, %d to retry, %d uncertain, %d skipped",
                stats.sent,
                stats.failed,
                stats.retried,
                stats.uncertain,
                stats.skipped,
            )
    finally:
        for channel in channels.values():
            # Also a channel whose start failed: it may hold half-open connections.
            with contextlib.suppress(Exception):
                await channel.close()


def _webhook(settings: Settings, poller: TelegramPoller | None) -> TelegramWebhook | None:
    """Webhook mode when [telegram] webhook_url is set, else None (long polling)."""
    telegram = settings.telegram
    if poller is None or telegram.webhook_url is None or telegram.webhook_secret is None:
        return None
    host, port = telegram.listen_host_port
    return TelegramWebhook(
        poller,
        url=telegram.webhook_url,
        secret=telegram.webhook_secret.get_secret_value(),
        host=host,
        port=port,
    )


@click.command("run")
@click.option("--once", is_flag=True, help="Send everything due now, then exit (for cron jobs).")
@click.option("-v", "--verbose", is_flag=True, help="Log every delivery.")
@pass_app
def run_cmd(app: AppContext, once: bool, verbose: bool) -> None:
    """Send every step when it is due, until SIGTERM or Ctrl-C (in-flight sends finish first).

    Catches up after downtime: everything still valid is sent, anything past the curriculum's
    expire_after is recorded as skipped. On SQLite one runner per database; on PostgreSQL run
    as many workers as you like.
    """
    settings = app.settings
    configure_logging(settings, verbose=verbose)
    with single_runner(settings.database_url) as sole:
        aio.run(_run(settings, once, recover_all=sole))


COMMANDS: list[click.Command] = [run_cmd]
