"""One dripper worker, assembled: channels, the dispatcher, the receivers and their wake-ups.

The composition root: `dripper run` builds it from the settings (`Worker.from_settings`); the
demo and the benchmarks build it from channels of their own (sandboxes, a manual clock). The
caller opens the database first and keeps it open while the worker runs.

- `run(stop)`: the dispatcher until `stop` is set, beside the Telegram receiver (long polling,
  or the webhook when one is configured), the IMAP poller and the web server (`listen`: the
  webhook and the one-click unsubscribe pages, when `public_url` is set). Each receiver runs
  in one worker at a time (dripper.engine.singleton); a receiver that must give up (409
  Conflict, a rejected token) stops the whole worker, and its error is raised once the sends
  in flight are recorded.
- `run_once()`: what is waiting now, received and sent, then return (`dripper run --once`).
- the notifier (dripper.trainers.notifier) tells trainers of new learner messages, and the
  media fetcher (dripper.media.fetcher) downloads the files learners send, each in one worker
  at a time.

Everything enqueued elsewhere (an enrollment, a trainer's reply, a learner's answer planning a
re-ask) wakes the dispatcher through `wake`: the receivers set it directly, other processes
through the wake listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import TracebackType

from dripper.channels.base import Channel
from dripper.channels.ratelimit import TokenBucket
from dripper.channels.telegram.budget import ChatPacer, shared_telegram_budget, telegram_budget
from dripper.channels.telegram.channel import TelegramChannel
from dripper.clock import Clock
from dripper.config import Settings
from dripper.engine.dispatcher import Dispatcher, DispatcherSettings
from dripper.engine.singleton import run_exclusively
from dripper.engine.wake import WakeListener
from dripper.errors import DripperError
from dripper.inbound.email.poller import ImapPoller
from dripper.inbound.telegram.poller import TelegramPoller
from dripper.inbound.telegram.webhook import TelegramWebhook
from dripper.inbound.web.server import WebServer
from dripper.inbound.web.unsubscribe import UnsubscribePages
from dripper.media.fetcher import MediaFetcher
from dripper.media.folder import MediaFolder
from dripper.models import Channel as ChannelName
from dripper.store.reach import sending_channels
from dripper.trainers.notifier import Notifier

NO_KEY_FOR_EMAIL = (
    "sending email needs the HMAC key that signs reply tokens, unsubscribe links, return paths "
    "and Message-IDs: `dripper init` writes one to hmac.key and points [security] hmac_key_file "
    'at it; or set DRIPPER_HMAC_KEY (make one with: python -c "import secrets; '
    'print(secrets.token_urlsafe(32))")'
)


def signing_key(settings: Settings) -> bytes | None:
    """The HMAC key of tokens, return paths and Message-IDs (email needs one, Telegram not)."""
    key = settings.security.hmac_key
    return key.get_secret_value().encode() if key is not None else None


def worker_id() -> str:
    """Unique per process and start: host, pid and a random suffix (claims carry it)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def build_channels(settings: Settings, *, unlimited: bool = False) -> dict[ChannelName, Channel]:
    """Every channel the settings configure; an error saying what to set when there is none."""
    channels: dict[ChannelName, Channel] = {}
    telegram = settings.telegram
    if telegram.token is not None:
        token = telegram.token.get_secret_value()
        if unlimited:
            channel = TelegramChannel(token, telegram.api_url)
        elif settings.database_url.startswith(("postgres://", "postgresql://")):
            # PostgreSQL: several workers may send for this bot; they share one budget.
            channel = TelegramChannel(
                token,
                telegram.api_url,
                shared_budget=shared_telegram_budget(token, telegram.messages_per_second),
            )
        else:
            channel = TelegramChannel(
                token,
                telegram.api_url,
                budget=telegram_budget(telegram.messages_per_second),
                pacer=ChatPacer(),
            )
        channels[ChannelName.TELEGRAM] = channel
    if settings.smtp.host:
        from dripper.channels.email.channel import EmailChannel

        key = signing_key(settings)
        if key is None:
            raise DripperError(NO_KEY_FOR_EMAIL)
        limiter = TokenBucket(None) if unlimited else None
        channels[ChannelName.EMAIL] = EmailChannel(
            settings.smtp, signing_key=key, limiter=limiter, public_url=settings.public_url
        )
    if not channels:
        raise DripperError(
            "no channel is configured, so nothing could be sent: set DRIPPER_TELEGRAM_TOKEN (or "
            "[telegram] token_file) for Telegram, and/or [smtp] host and from_address "
            "(DRIPPER_SMTP_HOST, DRIPPER_SMTP_FROM_ADDRESS) for email"
        )
    return channels


@dataclass(frozen=True)
class Webhook:
    """Where Telegram posts updates to (`[telegram] webhook_url`), instead of long polling."""

    url: str
    secret: str


@dataclass(frozen=True)
class Web:
    """The worker's web server (`listen`): the webhook's route, and the one-click unsubscribe
    pages of mail sent as `unsubscribe_as` (None: no pages)."""

    host: str
    port: int
    unsubscribe_as: str | None = None
    share_port: bool = False  # PostgreSQL: several workers on one machine serve one port


class Worker:
    """Channels, the dispatcher, the Telegram receiver and the IMAP poller of one process.

    `async with worker:` starts the channels, the wake listener and the IMAP connection (a
    wrong setting fails there, named), and closes them all on the way out.
    """

    def __init__(
        self,
        channels: Mapping[ChannelName, Channel],
        clock: Clock,
        database_url: str,
        *,
        dispatcher: DispatcherSettings | None = None,
        signing_key: bytes | None = None,
        recover_all: bool = False,
        receive_telegram: bool = True,
        webhook: Webhook | None = None,
        web: Web | None = None,
        mail: ImapPoller | None = None,
        name: str | None = None,
        notify_batch: timedelta = timedelta(minutes=3),
        media_folder: Path | None = None,
        media_cap: int = 100 * 1024 * 1024,
    ) -> None:
        self.channels = dict(channels)
        self.database_url = database_url
        self.wake = asyncio.Event()
        self.name = name or worker_id()
        self.dispatcher = Dispatcher(
            self.channels,
            clock,
            self.name,
            dispatcher,
            wake=self.wake,
            recover_all_on_start=recover_all,
            signing_key=signing_key,
        )
        telegram = self.channels.get(ChannelName.TELEGRAM)
        self.telegram: TelegramPoller | None = None
        if receive_telegram and isinstance(telegram, TelegramChannel):
            self.telegram = TelegramPoller(
                telegram.bot, signing_key=signing_key, now=clock.now, wake=self.wake
            )
        self.server: WebServer | None = None
        if web is not None or webhook is not None:
            web = web or Web("127.0.0.1", 8443)
            self.server = WebServer(web.host, web.port, share_port=web.share_port)
            if web.unsubscribe_as is not None and signing_key:
                UnsubscribePages(signing_key, web.unsubscribe_as, now=clock.now).add_routes(
                    self.server.app
                )
        self.webhook: TelegramWebhook | None = None
        if webhook is not None and self.telegram is not None:
            self.webhook = TelegramWebhook(
                self.telegram, url=webhook.url, secret=webhook.secret, server=self.server
            )
        self.mail = mail
        if mail is not None:
            mail.wake = self.wake
        self.notifier = Notifier(self.channels, clock.now, notify_batch)
        self.media: MediaFetcher | None = None
        if media_folder is not None and (self.telegram is not None or mail is not None):
            bot = telegram.bot if isinstance(telegram, TelegramChannel) else None
            self.media = MediaFetcher(
                MediaFolder(media_folder), media_cap, bot, email=mail is not None, now=clock.now
            )
        self._listener = WakeListener(database_url, self.wake, on_inbound=self.reprocess)

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock, *, recover_all: bool) -> Worker:
        """The worker `dripper run` runs: every channel, receiver and limit the settings give.

        Email needs the HMAC key: without it a message would go out with no unsubscribe link
        and no reply token, and replies could not be told from forgeries."""
        if settings.smtp.host and signing_key(settings) is None:
            raise DripperError(NO_KEY_FOR_EMAIL)
        telegram = settings.telegram
        webhook = None
        if telegram.webhook_url is not None and telegram.webhook_secret is not None:
            webhook = Webhook(telegram.webhook_url, telegram.webhook_secret.get_secret_value())
        web = None
        if settings.serves_http:
            host, port = settings.listen_host_port
            smtp = settings.smtp
            sender = smtp.from_name or smtp.from_address
            web = Web(
                host,
                port,
                sender if settings.public_url and smtp.host else None,
                share_port=settings.database_url.startswith(("postgres://", "postgresql://")),
            )
        return cls(
            build_channels(settings),
            clock,
            settings.database_url,
            dispatcher=DispatcherSettings(lease=timedelta(seconds=settings.lease_seconds)),
            signing_key=signing_key(settings),
            recover_all=recover_all,
            webhook=webhook,
            web=web,
            mail=ImapPoller.from_settings(settings) if settings.imap.host else None,
            notify_batch=timedelta(seconds=settings.notify_batch_seconds),
            media_folder=settings.media_folder,
            media_cap=int(settings.media_cap_mb * 1024 * 1024),
        )

    # ---- lifetime ------------------------------------------------------------------------

    async def __aenter__(self) -> Worker:
        try:
            for channel in self.channels.values():
                await channel.start()
            await self._listener.start()
            if self.mail is not None:
                await self.mail.connect()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self.mail is not None:
            await self.mail.close()
        await self._listener.close()
        for channel in self.channels.values():
            # Also a channel whose start failed: it may hold half-open connections.
            with contextlib.suppress(Exception):
                await channel.close()

    # ---- running -------------------------------------------------------------------------

    def reprocess(self) -> None:
        """Received items were put back to be processed (a trainer's "retry" in the dashboard):
        the receivers look now, not at the next update or mail."""
        if self.telegram is not None:
            self.telegram.nudge()
        if self.mail is not None:
            self.mail.nudge()

    async def run(self, stop: asyncio.Event) -> None:
        """Receive and send until `stop` is set; in-flight sends finish and are recorded."""
        token = sending_channels.set(frozenset(self.channels))  # the receivers' tasks inherit it
        try:
            await self._run(stop)
        finally:
            sending_channels.reset(token)

    async def _run(self, stop: asyncio.Event) -> None:
        receiving: asyncio.Task[None] | None = None
        reading: asyncio.Task[None] | None = None
        notifying: asyncio.Task[None] | None = None
        fetching: asyncio.Task[None] | None = None
        if self.server is not None:
            await self.server.start()
        try:
            if self.webhook is not None:
                receiving = asyncio.create_task(self.webhook.run(stop))
            elif self.telegram is not None:
                # One poller per bot token across all workers (PostgreSQL).
                receiving = asyncio.create_task(
                    run_exclusively(
                        f"telegram:{self.telegram.account}",
                        self.database_url,
                        self.telegram.run,
                        stop,
                    )
                )
            if receiving is not None:
                # A receiver that must give up (409 Conflict) stops the whole worker.
                receiving.add_done_callback(lambda _: stop.set())
            if self.mail is not None:
                reading = asyncio.create_task(
                    run_exclusively(
                        f"imap:{self.mail.account}", self.database_url, self.mail.run, stop
                    )
                )
            # One notifier across all workers, like the receivers.
            notifying = asyncio.create_task(
                run_exclusively("notify", self.database_url, self.notifier.run, stop)
            )
            if self.media is not None:
                fetching = asyncio.create_task(
                    run_exclusively("media", self.database_url, self.media.run, stop)
                )
            await self.dispatcher.run(stop)
        finally:
            for task in (receiving, reading, notifying, fetching):
                if task is not None:
                    await asyncio.wait({task})
            if self.server is not None:
                await self.server.close()
        if receiving is not None:
            receiving.result()

    async def run_once(self) -> None:
        """Receive what is waiting, then send everything due now, and return."""
        token = sending_channels.set(frozenset(self.channels))
        try:
            await self._run_once()
        finally:
            sending_channels.reset(token)

    async def _run_once(self) -> None:
        if self.telegram is not None:
            if self.webhook is not None:
                await self.telegram.process_pending()  # Telegram posts; nothing to fetch
            else:
                await self.telegram.run_until_idle()
        if self.mail is not None:
            await self.mail.poll_once()
        await self.notifier.run_once()
        if self.media is not None:
            await self.media.run_once()
        await self.dispatcher.run_until_idle()
