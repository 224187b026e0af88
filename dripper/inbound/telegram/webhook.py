"""The Telegram receiver in webhook mode: an aiohttp server Telegram posts each update to.

Each POST is checked against the webhook secret (Telegram echoes it in the
X-Telegram-Bot-Api-Secret-Token header; a wrong or missing one is answered 401 and nothing is
stored), then stored raw exactly as the poller stores a batch (`TelegramPoller.store`: one
transaction, keyed by update_id, so a redelivered update is absorbed), answered 200, and
processed after the commit by the poller's own `process_pending`.

On start the webhook is (re)set with setWebhook(url, secret_token, allowed_updates). On stop it
is left in place on purpose: Telegram keeps queuing updates until the next start. To go back to
long polling, remove it (deleteWebhook); a poller that finds a webhook stops with an error
saying so.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from urllib.parse import urlsplit

from aiohttp import web
from telegram.error import TelegramError

from dripper.errors import DripperError
from dripper.inbound.telegram.events import ALLOWED_UPDATES
from dripper.inbound.telegram.poller import TelegramPoller
from dripper.inbound.web.server import WebServer

log = logging.getLogger("dripper.inbound.telegram.webhook")

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


class TelegramWebhook:
    """Receives one bot's updates over a webhook into the inbox. `run(stop)` until stopped."""

    def __init__(
        self,
        poller: TelegramPoller,
        *,
        url: str,
        secret: str,
        host: str = "127.0.0.1",
        port: int = 8443,
        server: WebServer | None = None,
    ) -> None:
        """Serves on `server` (the worker's, started by the worker) or on a server of its own
        at host:port, started and stopped with the webhook."""
        self.poller = poller
        self.url = url
        self.path = urlsplit(url).path or "/"
        self._owns_server = server is None
        self.server = server or WebServer(host, port)
        self.server.app.router.add_post(self.path, self._receive)
        self._secret = secret.encode()
        self._store_lock = asyncio.Lock()  # one store at a time: the cursor only moves forward

    async def start(self) -> None:
        """Listen (unless the worker's server does), then tell Telegram where to post. Raises
        DripperError when either fails."""
        if self._owns_server:
            await self.server.start()
        try:
            await self.poller.bot.set_webhook(
                self.url,
                secret_token=self._secret.decode(),
                allowed_updates=list(ALLOWED_UPDATES),
            )
        except TelegramError as exc:
            await self.close()
            raise DripperError(
                f"Telegram refused the webhook {self.url} ({exc.message}): check "
                "[telegram] webhook_url (a public https:// URL) and webhook_secret"
            ) from None
        log.info("receiving Telegram updates at %s (listening on %s)", self.url, self.listen)

    @property
    def listen(self) -> str:
        return self.server.listen

    async def close(self) -> None:
        """Stop listening. The webhook stays set: Telegram queues updates until the next start."""
        if self._owns_server:
            await self.server.close()

    async def run(self, stop: asyncio.Event) -> None:
        """Serve and process until `stop` is set; whatever an earlier run stored is processed
        first."""
        await self.start()
        processor = asyncio.create_task(self._process_loop(stop))
        try:
            self.poller.stored.set()
            waiter = asyncio.create_task(stop.wait())
            await asyncio.wait({waiter, processor}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
        finally:
            await self.close()
            self.poller.stored.set()
            await asyncio.wait({processor})
        if processor.exception() is not None:
            raise processor.exception()  # type: ignore[misc]

    async def _process_loop(self, stop: asyncio.Event) -> None:
        await self.poller.process_when_stored(self.poller.stored, stop)

    async def _receive(self, request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, self._secret):
            log.warning("webhook POST without the right secret from %s refused", request.remote)
            return web.Response(status=401, text="Unauthorized")
        try:
            update = json.loads(await request.read())
        except ValueError:
            return web.Response(status=400, text="not JSON")
        if not isinstance(update, dict):
            return web.Response(status=400, text="not an update")
        async with self._store_lock:
            await self.poller.store([update])
        self.poller.stored.set()
        return web.Response(text="")
