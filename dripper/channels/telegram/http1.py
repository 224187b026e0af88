"""A lean HTTP/1.1 client for the Bot API: kept-alive connections, httptools to parse answers.

A general client (aiohttp, httpx) spends most of a Bot API call in its own machinery; a Bot API
call is always one small POST with a JSON body to one host. This pool does only that, on
asyncio protocols, and tells apart the failures that matter for delivery semantics: a request
that never left (no connection: safe to retry) from one lost after it was written (uncertain).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from typing import Any
from urllib.parse import urlsplit

import httptools


class RequestNotSent(Exception):
    """No connection could be made: the request was never written."""


class AnswerLost(Exception):
    """The connection broke or timed out after the request was written."""


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: Any = None  # asyncio's or uvloop's transport class
        self.closed = asyncio.get_running_loop().create_future()
        self._answer: asyncio.Future[tuple[int, bytes]] | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._body: list[bytes] = []
        self._keep_alive = True

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(AnswerLost(f"unreadable answer: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(AnswerLost(f"connection closed: {exc or 'by the server'}"))
        if not self.closed.done():
            self.closed.set_result(None)

    # httptools callbacks
    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._keep_alive = self._parser.should_keep_alive()
        if self._answer is not None and not self._answer.done():
            self._answer.set_result((self._parser.get_status_code(), b"".join(self._body)))

    def _fail(self, exc: Exception) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(exc)

    @property
    def usable(self) -> bool:
        return (
            self.transport is not None
            and not self.transport.is_closing()
            and self._keep_alive
            and not self.closed.done()
        )

    async def exchange(self, request: bytes, read_timeout: float | None) -> tuple[int, bytes]:
        assert self.transport is not None
        self._answer = asyncio.get_running_loop().create_future()
        self._body = []
        self.transport.write(request)
        try:
            async with asyncio.timeout(read_timeout):
                return await self._answer
        except TimeoutError:
            self.transport.close()
            raise AnswerLost("no answer within the read timeout") from None
        except BaseException:
            # A broken answer or a cancelled call leaves the connection in an unknown state.
            self.transport.close()
            raise

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class Http1Pool:
    """Up to `size` kept-alive connections to the host of `base_url`."""

    def __init__(self, base_url: str, size: int, ssl_context: ssl.SSLContext | None = None):
        parts = urlsplit(base_url)
        self.host = parts.hostname or "localhost"
        self.secure = parts.scheme == "https"
        self.port = parts.port or (443 if self.secure else 80)
        self._host_header = parts.netloc.encode("idna")
        self._ssl = (ssl_context or ssl.create_default_context()) if self.secure else None
        self._idle: deque[_Connection] = deque()
        self._slots = asyncio.Semaphore(size)

    async def _connect(self, within: float | None) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(within):
                _, connection = await loop.create_connection(
                    _Connection, self.host, self.port, ssl=self._ssl
                )
        except (OSError, TimeoutError) as exc:
            raise RequestNotSent(f"cannot connect to {self.host}:{self.port}: {exc!r}") from exc
        return connection

    async def post(
        self,
        path: str,
        body: bytes,
        content_type: bytes,
        *,
        connect_timeout: float | None,
        read_timeout: float | None,
        pool_timeout: float | None,
    ) -> tuple[int, bytes]:
        try:
            async with asyncio.timeout(pool_timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise RequestNotSent(
                "Pool timeout: all connections in the pool are busy; the request was not sent"
            ) from None
        try:
            connection = None
            while self._idle:
                candidate = self._idle.pop()
                if candidate.usable:
                    connection = candidate
                    break
                candidate.close()
            if connection is None:
                connection = await self._connect(connect_timeout)
            request = b"".join(
                (
                    b"POST ",
                    path.encode("ascii"),
                    b" HTTP/1.1\r\nHost: ",
                    self._host_header,
                    b"\r\nContent-Type: ",
                    content_type,
                    b"\r\nContent-Length: ",
                    str(len(body)).encode("ascii"),
                    b"\r\nConnection: keep-alive\r\n\r\n",
                    body,
                )
            )
            answer = await connection.exchange(request, read_timeout)
            if connection.usable:
                self._idle.append(connection)
            else:
                connection.close()
            return answer
        finally:
            self._slots.release()

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()
