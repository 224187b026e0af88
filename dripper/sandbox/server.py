"""Serving the sandbox with uvicorn: blocking `serve` for the CLI, `start_server` for tests."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass

import uvicorn

from dripper.sandbox.telegram.emulator import TelegramEmulator


def _config(emulator: TelegramEmulator, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(
        emulator,
        http="httptools",
        loop="asyncio",
        lifespan="on",
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=2,
        # Long polls and "timeout after write" faults hold requests open for many seconds.
        timeout_keep_alive=75,
    )


def serve(
    emulator: TelegramEmulator,
    host: str = "127.0.0.1",
    port: int = 8081,
    log_level: str = "warning",
) -> None:
    """Serve the emulator until Ctrl-C (blocking; owns the event loop)."""
    config = _config(emulator, log_level)
    config.host = host
    config.port = port
    uvicorn.Server(config).run()


@dataclass
class RunningServer:
    """An emulator served on a loopback port inside the current event loop."""

    emulator: TelegramEmulator
    host: str
    port: int
    _server: uvicorn.Server
    _task: asyncio.Task[None]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        """The `base_url` for `telegram.Bot`: the token and method are appended to it."""
        return f"{self.url}/bot"

    async def aclose(self) -> None:
        await self.emulator.aclose()
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def start_server(
    emulator: TelegramEmulator,
    host: str = "127.0.0.1",
    port: int = 0,
    log_level: str = "warning",
) -> RunningServer:
    """Start serving in the running loop (port 0 = a free port); `await server.aclose()` stops."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    server = uvicorn.Server(_config(emulator, log_level))
    # uvicorn's serve() would otherwise take over SIGINT/SIGTERM of the hosting process.
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("the sandbox server stopped while starting")
        await asyncio.sleep(0.005)
    return RunningServer(emulator, host, sock.getsockname()[1], server, task)
