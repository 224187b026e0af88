"""A local SMTP sink on aiosmtpd for tests, benchmarks and the demo: stores mail, injects faults.

`SmtpSink` listens on 127.0.0.1 (a free port by default) in the running event loop, keeps every
message in memory (envelope plus the raw bytes, parsed on first access) and can:

- require AUTH (PLAIN/LOGIN) with given credentials; offer STARTTLS or speak implicit TLS with a
  self-signed certificate made at start with the `openssl` command (trust it with
  `client_tls_context()`);
- answer the next N transactions with an error at MAIL, RCPT or DATA (421/450/451/550/554...),
  reject one recipient for good (550 5.1.1 user unknown), drop the connection after DATA
  without replying (the client cannot know whether the message arrived), or never answer DATA
  (a client read timeout), and close every open connection on demand;
- count connections, so tests can check that a client reuses them;
- let a test await N messages (`wait_for`) without sleeping.

Run it standalone with `dripper sandbox smtp` or `python -m dripper.sandbox.smtp`.
"""

from __future__ import annotations

import asyncio
import atexit
import shutil
import ssl
import subprocess
import tempfile
import warnings
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from functools import cache, cached_property
from pathlib import Path
from typing import Any, Literal

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from dripper.channels.email.message import parse

Security = Literal["none", "starttls", "tls"]
Stage = Literal["mail", "rcpt", "data"]
SANDBOX_HOSTNAME = "smtp.sandbox.invalid"


@dataclass
class ReceivedMessage:
    """One accepted (or dropped-after-DATA) message, as the sink saw it."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    mail_options: tuple[str, ...]
    connection: int  # serial number of the connection it came over, from 1
    username: str | None  # the AUTH login, when the client authenticated
    tls: bool
    answered: bool = True  # False when the sink dropped the connection instead of replying

    @cached_property
    def message(self) -> EmailMessage:
        return parse(self.data)


@dataclass
class _Fault:
    stage: Stage
    remaining: int
    action: Literal["reply", "drop", "hang"]
    reply: str = ""


@dataclass
class _Faults:
    pending: deque[_Fault] = field(default_factory=deque)
    rejected: dict[str, str] = field(default_factory=dict)  # lowercased address -> reply

    def take(self, stage: Stage) -> _Fault | None:
        for fault in self.pending:
            if fault.stage == stage:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self.pending.remove(fault)
                return fault
        return None


@cache
def self_signed_certificate() -> tuple[Path, Path]:
    """(certificate, key) for localhost and 127.0.0.1, made once per process with openssl."""
    if shutil.which("openssl") is None:
        raise RuntimeError("the SMTP sandbox needs the `openssl` command for TLS")
    directory = Path(tempfile.mkdtemp(prefix="dripper-smtp-tls-"))
    atexit.register(shutil.rmtree, directory, True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "2", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


class _Protocol(SMTP):
    """aiosmtpd's protocol, reporting connections to the sink."""

    def __init__(self, sink: SmtpSink, **kwargs: Any) -> None:
        super().__init__(_Handler(sink), **kwargs)
        self.sink = sink
        self.serial = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._original_transport is None and self.transport is None:  # not the STARTTLS redo
            self.serial = self.sink._opened(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self.sink._closed(self)
        super().connection_lost(error)


def _over_tls(transport: asyncio.BaseTransport | None) -> bool:
    return transport is not None and transport.get_extra_info("sslcontext") is not None


class _Handler:
    """aiosmtpd hooks: envelope bookkeeping, faults and storage."""

    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_MAIL(
        self, server: _Protocol, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        fault = self.sink._faults.take("mail")
        if fault is not None:
            return fault.reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: _Protocol, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        rejected = self.sink._faults.rejected.get(address.lower())
        if rejected is not None:
            return rejected
        fault = self.sink._faults.take("rcpt")
        if fault is not None:
            return fault.reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: _Protocol, session: Session, envelope: Envelope) -> str:
        fault = self.sink._faults.take("data")
        if fault is not None and fault.action == "reply":
            return fault.reply
        auth = session.auth_data
        received = ReceivedMessage(
            mail_from=str(envelope.mail_from),
            rcpt_tos=tuple(envelope.rcpt_tos),
            data=bytes(envelope.original_content or b""),
            mail_options=tuple(envelope.mail_options),
            connection=server.serial,
            username=auth.login.decode() if isinstance(auth, LoginPassword) else None,
            tls=session.ssl is not None or _over_tls(server.transport),
            answered=fault is None,
        )
        await self.sink._store(received)
        if fault is not None and fault.action == "drop":
            if server.transport is not None:
                server.transport.close()
            await asyncio.Event().wait()  # cancelled when the connection is lost
        elif fault is not None:  # hang: never answer, until the sink stops
            await self.sink._stopping.wait()
            return "421 4.3.2 sandbox stopping"
        return "250 2.0.0 OK: queued"


class SmtpSink:
    """An in-memory SMTP server on `host`; `await start()`, then point a client at `.port`."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        security: Security = "none",
        credentials: tuple[str, str] | None = None,
        keep_messages: bool = True,
        idle_timeout: float = 300,
        on_message: Callable[[ReceivedMessage], None] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.security = security
        self.credentials = credentials
        self.keep_messages = keep_messages
        self.idle_timeout = idle_timeout
        self.on_message = on_message
        self.messages: list[ReceivedMessage] = []
        self.received_count = 0
        self.connections = 0  # accepted since start
        self.auth_failures = 0
        self._open: set[_Protocol] = set()
        self._faults = _Faults()
        self._server: asyncio.Server | None = None
        self._arrived = asyncio.Condition()
        self._stopping = asyncio.Event()
        self._tls_context: ssl.SSLContext | None = None

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.security != "none":
            cert, key = await asyncio.to_thread(self_signed_certificate)
            self._tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._tls_context.load_cert_chain(cert, key)
        self._server = await loop.create_server(
            self._protocol,
            self.host,
            self.port,
            ssl=self._tls_context if self.security == "tls" else None,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.close()
            for protocol in list(self._open):
                if protocol.transport is not None:
                    protocol.transport.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> SmtpSink:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def client_tls_context(self) -> ssl.SSLContext:
        """A client context that trusts this sink's self-signed certificate."""
        cert, _ = self_signed_certificate()
        return ssl.create_default_context(cafile=str(cert))

    @property
    def open_connections(self) -> int:
        return len(self._open)

    # ---------------------------------------------------------------- faults

    def fail_next(self, code: int, text: str, *, count: int = 1, stage: Stage = "data") -> None:
        """Answer the next `count` MAIL, RCPT or DATA commands with `code text`."""
        self._faults.pending.append(_Fault(stage, count, "reply", f"{code} {text}"))

    def drop_after_data(self, count: int = 1) -> None:
        """Take the next `count` messages, then close the connection instead of replying."""
        self._faults.pending.append(_Fault("data", count, "drop"))

    def hang_after_data(self, count: int = 1) -> None:
        """Take the next `count` messages and never reply (until stop): a client read timeout."""
        self._faults.pending.append(_Fault("data", count, "hang"))

    def reject_recipient(
        self, address: str, code: int = 550, text: str = "5.1.1 <{address}>: user unknown"
    ) -> None:
        """Refuse RCPT TO `address` from now on."""
        self._faults.rejected[address.lower()] = f"{code} {text.format(address=address)}"

    def drop_connections(self) -> None:
        """Close every open connection now, as a server restarting or timing out would."""
        for protocol in list(self._open):
            if protocol.transport is not None:
                protocol.transport.close()

    # ---------------------------------------------------------------- waiting

    async def wait_for(self, count: int, within: float = 10.0) -> list[ReceivedMessage]:
        """Wait until `count` messages have arrived in total (TimeoutError after `within` s)."""
        async with asyncio.timeout(within), self._arrived:
            await self._arrived.wait_for(lambda: self.received_count >= count)
        return self.messages

    # ---------------------------------------------------------------- internals

    def _protocol(self) -> _Protocol:
        auth = self.credentials is not None
        with warnings.catch_warnings():
            # aiosmtpd warns about AUTH without STARTTLS; implicit TLS and a loopback sandbox
            # are fine.
            warnings.simplefilter("ignore")
            return _Protocol(
                self,
                hostname=SANDBOX_HOSTNAME,
                ident="dripper SMTP sandbox",
                enable_SMTPUTF8=True,
                tls_context=self._tls_context if self.security == "starttls" else None,
                require_starttls=self.security == "starttls",
                timeout=self.idle_timeout,
                auth_required=auth,
                auth_require_tls=self.security == "starttls",
                authenticator=self._authenticate if auth else None,
                loop=asyncio.get_running_loop(),
            )

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        expected = self.credentials
        if (
            expected is not None
            and isinstance(data, LoginPassword)
            and data.login == expected[0].encode()
            and data.password == expected[1].encode()
        ):
            return AuthResult(success=True, auth_data=data)
        self.auth_failures += 1
        # handled=False: aiosmtpd then sends 535 itself; handled=True would leave the client
        # waiting for a reply that never comes.
        return AuthResult(success=False, handled=False)

    def _opened(self, protocol: _Protocol) -> int:
        self._open.add(protocol)
        self.connections += 1
        return self.connections

    def _closed(self, protocol: _Protocol) -> None:
        self._open.discard(protocol)

    async def _store(self, received: ReceivedMessage) -> None:
        async with self._arrived:
            self.received_count += 1
            if self.keep_messages:
                self.messages.append(received)
            self._arrived.notify_all()
        if self.on_message is not None:
            self.on_message(received)


if __name__ == "__main__":
    from dripper.cli.sandbox_smtp import smtp_cmd

    smtp_cmd()
