"""The web server of `dripper run`: one aiohttp listener (`listen`) for every HTTP route.

The Telegram webhook (dripper.inbound.telegram.webhook) and the one-click unsubscribe pages
(dripper.inbound.web.unsubscribe) add their routes before it starts. It sits behind the
operator's HTTPS reverse proxy, which forwards `public_url` and `webhook_url` to it.
"""

from __future__ import annotations

import logging
import socket

from aiohttp import web

from dripper.errors import DripperError

log = logging.getLogger("dripper.inbound.web")

MAX_REQUEST_BYTES = 1 << 20  # a Telegram update is a few KB, an unsubscribe POST a few bytes


class WebServer:
    """Add routes to `app`, then `start()`; `close()` stops listening (idempotent). Port 0
    listens on a free port, `port` says which once started."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 8443, *, share_port: bool = False
    ) -> None:
        """`share_port`: other processes of this user may listen on the same port, and the
        kernel spreads requests among them (several PostgreSQL workers on one machine); off,
        a second listener fails with "address in use" (a stray instance is noticed)."""
        self.host = host
        self.port = port
        self.share_port = share_port
        self.app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        self._runner: web.AppRunner | None = None

    @property
    def listen(self) -> str:
        return f"{self.host}:{self.port}"

    async def start(self) -> None:
        """Listen on host:port; DripperError naming the setting when the address is taken."""
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await runner.setup()
        self._runner = runner
        try:
            reuse_port = self.share_port and hasattr(socket, "SO_REUSEPORT") and self.port != 0
            await web.TCPSite(runner, self.host, self.port, reuse_port=reuse_port).start()
            if self.port == 0:  # a free port was asked for (tests): say which one
                self.port = int(runner.addresses[0][1])
        except OSError as exc:
            await self.close()
            raise DripperError(
                f"cannot listen on {self.listen} ({exc.strerror}): set listen "
                "(DRIPPER_LISTEN) to a free host:port"
            ) from None
        log.info("serving HTTP on %s", self.listen)

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
