"""A python-telegram-bot transport on aiohttp: one pooled session, JSON bodies, PTB's timeouts
and errors told apart by whether the request may have reached Telegram.

PTB's default HTTPXRequest spends most of a send in httpx itself; this `BaseRequest` does the same
job several times faster: one `aiohttp.ClientSession` whose TCPConnector keeps up to
`connection_pool_size` connections alive, calls without files sent as one JSON body
(`RequestData.json_payload`), uploads as multipart. It only moves bytes: PTB still builds the
request and maps the status codes to RetryAfter, Forbidden, BadRequest, Conflict and so on.

Timeouts map as in HTTPXRequest: `pool_timeout` bounds the wait for a free connection slot,
`connect_timeout` the connect (name resolution included), `read_timeout` the wait for the answer
once the request is written. aiohttp has no write timeout of its own, so `write_timeout`
(media_write_timeout for uploads) is enforced as the budget of the whole exchange together with
connect and read.

Failures are classified by aiohttp's exception types, never by their text:
- `TimedOutNotSent` (a `TimedOut`): no free slot within pool_timeout, or the connect timed out;
- `NotSent`: the connection could not be made (refused, unreachable, name or TLS failure);
- `telegram.error.TimedOut`: no answer within read_timeout, or the whole budget ran out;
- `ConnectionLost`: the connection broke once the request was being written or answered.
The first two are safe to retry; after the last two Telegram may well have delivered the message.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from telegram._utils.defaultvalue import DefaultValue
from telegram._utils.types import ODVInput
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

_JSON = {"Content-Type": "application/json"}


class NotSent(NetworkError):
    """The request never left this process (no free connection, connect refused or timed out).

    Safe to retry: Telegram cannot have seen it.
    """


class TimedOutNotSent(TimedOut, NotSent):
    """A pool or connect timeout: a TimedOut, but one that is known to be harmless to retry."""


class ConnectionLost(NetworkError):
    """The connection broke after the request was written: it may have been delivered."""


class AiohttpRequest(BaseRequest):
    """`telegram.request.BaseRequest` over one shared aiohttp connection pool.

    Pass one instance as `request=` and another as `get_updates_request=` to `telegram.Bot`:
    a Bot given only `request` still builds an HTTPXRequest for getUpdates.
    """

    __slots__ = (
        "_connect_timeout",
        "_media_write_timeout",
        "_pool_size",
        "_pool_timeout",
        "_read_timeout",
        "_session",
        "_slots",
        "_timeouts",
        "_write_timeout",
    )

    def __init__(
        self,
        connection_pool_size: int = 256,
        read_timeout: float | None = 5.0,
        write_timeout: float | None = 5.0,
        connect_timeout: float | None = 5.0,
        pool_timeout: float | None = 1.0,
        media_write_timeout: float | None = 20.0,
    ) -> None:
        if connection_pool_size < 1:
            raise ValueError("connection_pool_size must be at least 1")
        self._pool_size = connection_pool_size
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self._connect_timeout = connect_timeout
        self._pool_timeout = pool_timeout
        self._media_write_timeout = media_write_timeout
        # Most calls use the defaults: build their ClientTimeout once, for calls without and
        # with files.
        self._timeouts = (
            _client_timeout(connect_timeout, write_timeout, read_timeout),
            _client_timeout(connect_timeout, media_write_timeout, read_timeout),
        )
        self._session: aiohttp.ClientSession | None = None
        self._slots = asyncio.Semaphore(connection_pool_size)

    @property
    def read_timeout(self) -> float | None:
        return self._read_timeout

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._pool_size, limit_per_host=self._pool_size, ttl_dns_cache=300
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                # Answers are small JSON: not worth compressing. Set here rather than through
                # skip_auto_headers, which costs aiohttp a header copy on every call.
                headers={"User-Agent": self.USER_AGENT, "Accept-Encoding": "identity"},
                # The Bot API sets no cookies: skip the jar's work on every call.
                cookie_jar=aiohttp.DummyCookieJar(),
            )

    async def shutdown(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        if self._session is None or self._session.closed:
            # Like HTTPXRequest, usable without an explicit initialize().
            await self.initialize()
        session = self._session
        assert session is not None
        uploads = bool(request_data and request_data.contains_files)
        kwargs: dict[str, Any] = {
            "timeout": self._timeout(uploads, read_timeout, write_timeout, connect_timeout)
        }
        if uploads:
            assert request_data is not None
            kwargs["data"] = _multipart(request_data)
        elif request_data is not None:
            kwargs["data"] = request_data.json_payload
            kwargs["headers"] = _JSON
        await self._acquire_slot(_pick(pool_timeout, self._pool_timeout))
        try:
            # No redirects: following one would repeat a POST that Telegram may have acted on.
            async with session.request(method, url, allow_redirects=False, **kwargs) as response:
                return response.status, await response.read()
        except aiohttp.ConnectionTimeoutError as err:
            # Raised only while resolving and connecting.
            raise TimedOutNotSent("Connect timed out; the request was not sent") from err
        except (
            aiohttp.ClientConnectorError,
            aiohttp.InvalidURL,
            aiohttp.NonHttpUrlClientError,
        ) as err:
            # Raised only before a byte is written: refused, unreachable, DNS or TLS handshake
            # failure; a URL aiohttp cannot or will not request.
            raise NotSent(_describe(err, url)) from err
        except TimeoutError as err:
            # aiohttp.SocketTimeoutError (no answer within read_timeout) or the whole budget.
            raise TimedOut(f"Timed out; the request may have been delivered ({err!r})") from err
        except aiohttp.ClientError as err:
            # ServerDisconnectedError, ClientOSError, ClientPayloadError, ClientResponseError:
            # raised while the request was written or its answer read.
            raise ConnectionLost(_describe(err, url)) from err
        finally:
            self._slots.release()

    def _timeout(
        self,
        uploads: bool,
        read_timeout: ODVInput[float],
        write_timeout: ODVInput[float],
        connect_timeout: ODVInput[float],
    ) -> aiohttp.ClientTimeout:
        if (
            isinstance(read_timeout, DefaultValue)
            and isinstance(write_timeout, DefaultValue)
            and isinstance(connect_timeout, DefaultValue)
        ):
            return self._timeouts[uploads]
        return _client_timeout(
            _pick(connect_timeout, self._connect_timeout),
            _pick(write_timeout, self._media_write_timeout if uploads else self._write_timeout),
            _pick(read_timeout, self._read_timeout),
        )

    async def _acquire_slot(self, pool_timeout: float | None) -> None:
        if not self._slots.locked():
            # A free slot: take it without arming a timer.
            await self._slots.acquire()
            return
        try:
            async with asyncio.timeout(pool_timeout):
                await self._slots.acquire()
        except TimeoutError as err:
            raise TimedOutNotSent(
                "Pool timeout: All connections in the connection pool are occupied. "
                "Request was *not* sent to Telegram. Consider adjusting the connection "
                "pool size or the pool timeout."
            ) from err


def _pick(value: ODVInput[float], default: float | None) -> float | None:
    return default if isinstance(value, DefaultValue) else value


def _client_timeout(
    connect: float | None, write: float | None, read: float | None
) -> aiohttp.ClientTimeout:
    # `connect` bounds name resolution and connecting (aiohttp raises ConnectionTimeoutError),
    # `sock_read` the wait for each part of the answer (SocketTimeoutError), `total` the budget.
    return aiohttp.ClientTimeout(
        total=None if connect is None or write is None or read is None else connect + write + read,
        connect=connect,
        sock_connect=connect,
        sock_read=read,
    )


def _describe(err: aiohttp.ClientError, url: str) -> str:
    # Some aiohttp errors quote the URL, and its path holds the bot token.
    path = urlsplit(url).path
    text = str(err).replace(path, "/<bot API path>") if path not in ("", "/") else str(err)
    return f"aiohttp.{err.__class__.__name__}: {text}"


def _multipart(request_data: RequestData) -> aiohttp.FormData:
    form = aiohttp.FormData(quote_fields=False)
    for name, value in request_data.json_parameters.items():
        form.add_field(name, value)
    for name, (filename, content, mimetype) in request_data.multipart_data.items():
        form.add_field(name, content, filename=filename, content_type=mimetype)
    return form
