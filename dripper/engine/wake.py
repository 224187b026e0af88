"""Wake idle `dripper run` workers when another process enqueues work.

PostgreSQL: every worker LISTENs on the `dripper_wake` channel; `notify_wake(url)` sends a
NOTIFY, so a trainer's reply or a new enrollment reaches every worker at once. SQLite has no
LISTEN/NOTIFY: the one runner listens on a Unix datagram socket named after its database file
and `notify_wake(url)` sends it one byte. Losing a wake-up costs only latency: a worker also
wakes at its next known due time and at least every `max_idle`.

Two kinds of wake-up: WORK (something to send: the dispatcher looks) and INBOUND (received items
put back to be processed: the receivers look). The kind is the datagram's byte or the NOTIFY
payload.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def wake_socket_path(database_url: str) -> Path | None:
    """The socket a dispatcher on this database listens on; None for non-file databases."""
    if not database_url.startswith("sqlite://") or ":memory:" in database_url:
        return None
    digest = hashlib.sha256(database_url.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"dripper-wake-{digest}.sock"


PG_CHANNEL = "dripper_wake"
WORK = "work"
INBOUND = "inbound"
_BYTES = {WORK: b"w", INBOUND: b"i"}


def _is_postgres(database_url: str) -> bool:
    return database_url.startswith(("postgres://", "postgresql://"))


async def _pg_notify(database_url: str, kind: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    connection = await asyncpg.connect(database_url.split("?", 1)[0], timeout=10)
    try:
        await connection.execute("SELECT pg_notify($1, $2)", PG_CHANNEL, kind)
    finally:
        await connection.close()


def notify_wake(database_url: str, kind: str = WORK) -> bool:
    """Tell the workers on this database that there is new work (from a CLI command, outside
    any event loop); False when none could be told."""
    if _is_postgres(database_url):
        try:
            asyncio.run(_pg_notify(database_url, kind))
        except (OSError, TimeoutError, RuntimeError):
            return False
        return True
    return _send_to_socket(database_url, kind)


async def notify_wake_async(database_url: str, kind: str = WORK) -> bool:
    """`notify_wake` from inside a running event loop (the dashboard). Best effort: the work is
    stored already, and a worker that is not woken finds it at its next look."""
    if _is_postgres(database_url):
        try:
            await _pg_notify(database_url, kind)
        except Exception:  # asyncpg's errors are not OSErrors; never fail the caller for this
            return False
        return True
    return _send_to_socket(database_url, kind)


def _send_to_socket(database_url: str, kind: str) -> bool:
    path = wake_socket_path(database_url)
    if path is None or not path.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        try:
            sock.sendto(_BYTES[kind], str(path))
        except OSError:
            return False
    return True


class _WakeProtocol(asyncio.DatagramProtocol):
    def __init__(self, woken: Callable[[str], None]) -> None:
        self._woken = woken

    def datagram_received(self, data: bytes, addr: object) -> None:
        self._woken(INBOUND if data == _BYTES[INBOUND] else WORK)


class WakeListener:
    """Sets `event` whenever another process calls `notify_wake` for the same database, and
    calls `on_inbound` for an INBOUND wake-up."""

    def __init__(
        self,
        database_url: str,
        event: asyncio.Event,
        on_inbound: Callable[[], None] | None = None,
    ) -> None:
        self._url = database_url
        self._path = wake_socket_path(database_url)
        self._event = event
        self._on_inbound = on_inbound
        self._transport: asyncio.DatagramTransport | None = None
        self._pg: Any = None

    def _woken(self, kind: str) -> None:
        if kind == INBOUND:
            if self._on_inbound is not None:
                self._on_inbound()
        else:
            self._event.set()

    async def start(self) -> None:
        if _is_postgres(self._url):
            import asyncpg

            self._pg = await asyncpg.connect(self._url.split("?", 1)[0], timeout=10)
            await self._pg.add_listener(
                PG_CHANNEL, lambda _conn, _pid, _channel, payload: self._woken(payload)
            )
            return
        if self._path is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path)
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(self._path))
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _WakeProtocol(self._woken), sock=sock
        )
        self._transport = transport

    async def close(self) -> None:
        if self._pg is not None:
            with contextlib.suppress(Exception):
                await self._pg.close()
            self._pg = None
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        if self._path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path)
