"""A python-telegram-bot transport on aiohttp: one pooled session, PTB's timeouts and errors.

PTB's default HTTPXRequest spends most of a send in httpx itself; this `BaseRequest` does the same
job several times faster. It only moves bytes: PTB still builds the request and maps the status
codes to RetryAfter, Forbidden, BadRequest, Conflict and so on.

Timeouts map as in HTTPXRequest: `pool_timeout` bounds the wait for a free connection slot,
`connect_timeout` the TCP connect, `read_timeout` the wait for the answer once the request is
written. aiohttp has no write timeout of its own, so `write_timeout` (media_write_timeout for
uploads) is enforced as the budget of the whole exchange together with connect and read. Every
timeout raises `telegram.error.TimedOut`; a read timeout does not mean the message was not sent.
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

from dripper.channels.telegram.http1 import AnswerLost, Http1Pool, RequestNotSent

_FORM = "application/x-www-form-urlencoded"


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
                headers={"User-Agent": self.USER_AGENT},
                auto_decompress=True,
                skip_auto_headers=("Accept-Encoding",),
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
        read = _pick(read_timeout, self._read_timeout)
        connect = _pick(connect_timeout, self._connect_timeout)
        pool = _pick(pool_timeout, self._pool_timeout)
        write = _pick(write_timeout, self._media_write_timeout if uploads else self._write_timeout)
        timeout = aiohttp.ClientTimeout(
            total=None if None in (connect, write, read) else _sum(connect, write, read),
            sock_connect=connect,
            sock_read=read,
        )
        kwargs: dict[str, Any] = {"timeout": timeout}
        if request_data is not None:
            if uploads:
                kwargs["data"] = _multipart(request_data)
            elif parameters := request_data.url_encoded_parameters():
                kwargs["data"] = parameters.encode()
                kwargs["headers"] = {"Content-Type": _FORM}
        await self._acquire_slot(pool)
        try:
            async with session.request(method, url, **kwargs) as response:
                return response.status, await response.read()
        except aiohttp.ConnectionTimeoutError as err:
            raise TimedOutNotSent("Connect timed out; the request was not sent") from err
        except TimeoutError as err:
            raise TimedOut from err
        except aiohttp.ClientConnectorError as err:
            raise NotSent(f"aiohttp.{err.__class__.__name__}: {err}") from err
        except aiohttp.ClientError as err:
            raise ConnectionLost(f"aiohttp.{err.__class__.__name__}: {err}") from err
        finally:
            self._slots.release()

    async def _acquire_slot(self, pool_timeout: float | None) -> None:
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


def _sum(*values: float | None) -> float:
    return sum(value for value in values if value is not None)


def _multipart(request_data: RequestData) -> aiohttp.FormData:
    form = aiohttp.FormData(quote_fields=False)
    for name, value in request_data.json_parameters.items():
        form.add_field(name, value)
    for name, (filename, content, mimetype) in request_data.multipart_data.items():
        form.add_field(name, content, filename=filename, content_type=mimetype)
    return form


class FastRequest(AiohttpRequest):
    """The Bot API transport dripper sends with: calls without files go as JSON over the lean
    HTTP/1.1 pool of `dripper.channels.telegram.http1`; uploads use aiohttp (see AiohttpRequest)."""

    __slots__ = ("_pools",)

    def __init__(self, connection_pool_size: int = 256, **timeouts: float | None) -> None:
        super().__init__(connection_pool_size=connection_pool_size, **timeouts)
        self._pools: dict[str, Http1Pool] = {}

    async def shutdown(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()
        await super().shutdown()

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
        if method != "POST" or (request_data is not None and request_data.contains_files):
            return await super().do_request(
                url,
                method,
                request_data,
                read_timeout,
                write_timeout,
                connect_timeout,
                pool_timeout,
            )
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        pool = self._pools.get(origin)
        if pool is None:
            pool = self._pools[origin] = Http1Pool(origin, self._pool_size)
        body = request_data.json_payload if request_data is not None else b"{}"
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        try:
            return await pool.post(
                path,
                body,
                b"application/json",
                connect_timeout=_pick(connect_timeout, self._connect_timeout),
                read_timeout=_pick(read_timeout, self._read_timeout),
                pool_timeout=_pick(pool_timeout, self._pool_timeout),
            )
        except RequestNotSent as err:
            raise TimedOutNotSent(str(err)) from err
        except AnswerLost as err:
            if "timeout" in str(err):
                raise TimedOut(str(err)) from err
            raise ConnectionLost(str(err)) from err
