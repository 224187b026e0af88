"""Wake an idle `dripper run` when new work is enqueued by another process on this machine.

SQLite has no LISTEN/NOTIFY, so a running dispatcher listens on a Unix datagram socket named
after its database file; `notify_wake(url)` sends it one byte. Losing a wake-up costs only
latency: the dispatcher also wakes at its next known due time and at least every `max_idle`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import tempfile
from pathlib import Path


def wake_socket_path(database_url: str) -> Path | None:
    """The socket a dispatcher on this database listens on; None for non-file databases."""
    if not database_url.startswith("sqlite://") or ":memory:" in database_url:
        return None
    digest = hashlib.sha256(database_url.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"dripper-wake-{digest}.sock"


def notify_wake(database_url: str) -> bool:
    """Tell a dispatcher on this database that there is new work; False when none listens."""
    path = wake_socket_path(database_url)
    if path is None or not path.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        try:
            sock.sendto(b"w", str(path))
        except OSError:
            return False
    return True


class _WakeProtocol(asyncio.DatagramProtocol):
    def __init__(self, event: asyncio.Event) -> None:
        self._event = event

    def datagram_received(self, data: bytes, addr: object) -> None:
        self._event.set()


class WakeListener:
    """Sets `event` whenever another process calls `notify_wake` for the same database."""

    def __init__(self, database_url: str, event: asyncio.Event) -> None:
        self._path = wake_socket_path(database_url)
        self._event = event
        self._transport: asyncio.DatagramTransport | None = None

    async def start(self) -> None:
        if self._path is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path)
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(self._path))
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _WakeProtocol(self._event), sock=sock
        )
        self._transport = transport

    async def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        if self._path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path)
