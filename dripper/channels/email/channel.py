"""The email channel: sends `Outbound` messages over a small pool of reused SMTP connections.

Each of the `connections` pooled clients serves one send at a time and stays open between
sends (about twice as fast as a connection per message). A connection the server closed is
reopened transparently; a send that found its connection dead before DATA is retried once on a
fresh one. Outcomes:

- 2xx: SENT, provider_message_id = our Message-ID (keyed by the HMAC key, stable per business
  key);
- 4xx anywhere, a refused connection, a timeout before DATA: RETRY with the server's text;
- 5xx: FAILED with the server's text; a recipient refused as unknown / unavailable (550, 551,
  553, or enhanced status 5.1.x / 5.2.1): UNREACHABLE, a hard bounce at SMTP time;
- the connection lost or a timeout once DATA was under way: UNCERTAIN (the server may have
  taken the message; a resend reuses the Message-ID, so clients can dedupe).

The envelope sender is a signed return path per delivery (VERP, `[smtp] verp`, on by default):
a bounce proves which of our messages it is about, so a forged one can be told apart.

A shared `TokenBucket` keeps the provider's rate (`messages_per_second`).
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Callable
from datetime import UTC, datetime

import aiosmtplib
from aiosmtplib import (
    SMTPAuthenticationError,
    SMTPException,
    SMTPNotSupported,
    SMTPRecipientRefused,
    SMTPResponseException,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)

from dripper.channels.base import Attempting, Outbound, Outcome, SendResult, untracked
from dripper.channels.email.message import InvalidAddress, OutgoingEmail, Sender, build_email
from dripper.channels.ratelimit import TokenBucket
from dripper.config import SmtpSettings
from dripper.errors import DripperError
from dripper.models import Channel as ChannelName

DEFAULT_TIMEOUT = 30.0
_UNREACHABLE_CODES = {550, 551, 553}
_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")


def _server_text(code: int, message: str) -> str:
    return f"{code} {' '.join(message.split())}"


def _recipient_outcome(code: int, message: str) -> Outcome:
    """A refused RCPT: unknown or disabled mailbox -> UNREACHABLE; policy or other 5xx ->
    FAILED; 4xx -> RETRY."""
    if code < 500:
        return Outcome.RETRY
    enhanced = _ENHANCED.match(message)
    if enhanced:
        subject, detail = enhanced[2], enhanced[3]
        if subject == "1" or (subject == "2" and detail == "1"):
            return Outcome.UNREACHABLE
        return Outcome.FAILED
    return Outcome.UNREACHABLE if code in _UNREACHABLE_CODES else Outcome.FAILED


def _response_outcome(code: int) -> Outcome:
    return Outcome.RETRY if code < 500 else Outcome.FAILED


class _Connection:
    """One pooled SMTP client, opened on first use and reopened after the server closed it."""

    def __init__(self, factory: Callable[[], aiosmtplib.SMTP]) -> None:
        self._factory = factory
        self.client: aiosmtplib.SMTP | None = None

    @property
    def is_open(self) -> bool:
        return self.client is not None and self.client.is_connected

    async def open(self) -> aiosmtplib.SMTP:
        if self.client is not None and self.client.is_connected:
            return self.client
        self.discard()
        client = self._factory()
        await client.connect()
        self.client = client
        return client

    def discard(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    async def quit(self) -> None:
        client, self.client = self.client, None
        if client is not None and client.is_connected:
            try:
                await asyncio.wait_for(client.quit(), timeout=2.0)
            except (SMTPException, OSError, TimeoutError):
                client.close()


_SENDER_REFUSAL = re.compile(r"send\s*as|sender|envelope|mail from|5\.7\.60", re.IGNORECASE)


class EmailChannel:
    """The Channel for email over SMTP (see the module docstring for the outcome rules)."""

    name = ChannelName.EMAIL

    def __init__(
        self,
        settings: SmtpSettings,
        *,
        signing_key: bytes,
        limiter: TokenBucket | None = None,
        tls_context: ssl.SSLContext | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        local_hostname: str | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        public_url: str | None = None,
    ) -> None:
        """`limiter` defaults to `settings.messages_per_second`; pass TokenBucket(None) for none.
        `tls_context` replaces the system trust store (e.g. a sandbox's self-signed cert).
        `public_url` (dripper's web server) adds one-click unsubscribe. With [smtp]
        dkim_selector and dkim_key_file every message is DKIM-signed; a key that cannot be
        used is a DripperError here."""
        self.settings = settings
        self.limiter = limiter or TokenBucket(settings.messages_per_second)
        signer = None
        if settings.dkim_selector and settings.dkim_key_file:
            from dripper.channels.email.dkim import load_signer

            signer = load_signer(
                settings.dkim_selector, settings.signing_domain or "", settings.dkim_key_file
            )
        self.sender = Sender(
            settings.from_address or "",
            settings.from_name or "",
            signing_key,
            settings.verp,
            public_url=public_url,
            dkim=signer,
        )
        self._tls_context = tls_context
        self._timeout = timeout
        self._local_hostname = local_hostname
        self._now = now
        self._pool: asyncio.Queue[_Connection] = asyncio.Queue()
        self._all = [_Connection(self._client) for _ in range(settings.connections)]
        for connection in self._all:
            self._pool.put_nowait(connection)

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Check the settings and open one connection; DripperError saying what to fix."""
        smtp = self.settings
        if not smtp.host:
            raise DripperError(
                "email is not configured: set [smtp] host in dripper.toml (or DRIPPER_SMTP_HOST)"
            )
        if not smtp.from_address:
            raise DripperError(
                "email needs a sender address: set [smtp] from_address in dripper.toml "
                "(or DRIPPER_SMTP_FROM_ADDRESS)"
            )
        if smtp.username and smtp.password is None:
            raise DripperError(
                "[smtp] username is set but no password: set DRIPPER_SMTP_PASSWORD or "
                "[smtp] password_file (or DRIPPER_SMTP_PASSWORD_FILE)"
            )
        connection = self._all[0]
        where = f"{smtp.host}:{smtp.port} ({smtp.security})"
        try:
            await connection.open()
        except SMTPAuthenticationError as exc:
            raise DripperError(
                f"the SMTP server {where} refused the login for [smtp] username "
                f"{smtp.username!r}: {_server_text(exc.code, exc.message)}; check [smtp] "
                "username (DRIPPER_SMTP_USERNAME) and the password (DRIPPER_SMTP_PASSWORD or "
                "DRIPPER_SMTP_PASSWORD_FILE)"
            ) from None
        except ssl.SSLError as exc:
            raise DripperError(
                f"TLS with the SMTP server {where} failed: {exc.reason or exc}; check "
                "[smtp] security (DRIPPER_SMTP_SECURITY: starttls on 587, tls on 465) and "
                "[smtp] port (DRIPPER_SMTP_PORT)"
            ) from None
        except (SMTPException, OSError) as exc:
            raise DripperError(
                f"cannot reach the SMTP server {where}: {exc}; check [smtp] host "
                "(DRIPPER_SMTP_HOST), [smtp] port (DRIPPER_SMTP_PORT) and [smtp] security "
                "(DRIPPER_SMTP_SECURITY)"
            ) from None

    async def close(self) -> None:
        await asyncio.gather(*(connection.quit() for connection in self._all))

    def _client(self) -> aiosmtplib.SMTP:
        smtp = self.settings
        password = smtp.password.get_secret_value() if smtp.password is not None else None
        return aiosmtplib.SMTP(
            hostname=smtp.host,
            port=smtp.port,
            username=smtp.username or None,
            password=password if smtp.username else None,
            use_tls=smtp.security == "tls",
            start_tls=smtp.security == "starttls",
            tls_context=self._tls_context,
            timeout=self._timeout,
            local_hostname=self._local_hostname,
        )

    # ---------------------------------------------------------------- sending

    @property
    def rate(self) -> float | None:
        return self.limiter.rate

    @property
    def parallel(self) -> int:
        return len(self._all)

    async def send(self, message: Outbound, attempting: Attempting = untracked) -> SendResult:
        try:
            email = build_email(message, self.sender, self._now())
        except InvalidAddress as exc:
            return SendResult(Outcome.FAILED, error=str(exc))
        await self.limiter.acquire()
        # The mark as attempted is written while this send waits its turn for a connection
        # (a few milliseconds at the provider's rate): awaited just before MAIL FROM.
        marked = asyncio.ensure_future(attempting())
        try:
            connection = await self._pool.get()
        except BaseException:
            marked.cancel()
            raise
        try:
            result = await self._attempt(connection, email, marked)
            if result is None:  # the connection was dead before DATA: once more, on a fresh one
                result = await self._attempt(connection, email, marked)
        except asyncio.CancelledError:
            connection.discard()  # a command may be half done: never reuse this connection
            raise
        finally:
            self._pool.put_nowait(connection)
            if not marked.done():
                marked.cancel()  # nothing was written (no connection): no mark needed
            elif not marked.cancelled():
                marked.exception()  # read, so that a failed mark is not reported as unseen
        return result or SendResult(Outcome.RETRY, error="SMTP connection lost twice before DATA")

    async def _attempt(
        self, connection: _Connection, email: OutgoingEmail, marked: asyncio.Future[None]
    ) -> SendResult | None:
        """One try; None when the connection turned out to be closed before DATA."""
        try:
            client = await connection.open()
        except SMTPAuthenticationError as exc:
            return SendResult(
                Outcome.RETRY, error=f"SMTP login refused: {_server_text(exc.code, exc.message)}"
            )
        except (SMTPException, OSError) as exc:
            connection.discard()
            return SendResult(Outcome.RETRY, error=f"cannot connect to the SMTP server: {exc}")
        try:
            await marked  # the transaction starts: from here the message may arrive
            return await self._transaction(client, email)
        except SMTPServerDisconnected:
            connection.discard()
            return None

    async def _transaction(self, client: aiosmtplib.SMTP, email: OutgoingEmail) -> SendResult:
        """MAIL, RCPT, DATA. Raises SMTPServerDisconnected only before DATA (safe to redo)."""
        options = ["SMTPUTF8"] if email.smtputf8 else []
        try:
            if client.is_ehlo_or_helo_needed:
                await client.ehlo()
            if email.smtputf8 and not client.supports_extension("smtputf8"):
                raise SMTPNotSupported("the server does not support SMTPUTF8")
            encoding = "utf-8" if email.smtputf8 else "ascii"
            await client.mail(email.mail_from, options=options, encoding=encoding)
            await client.rcpt(email.rcpt_to, encoding=encoding)
        except SMTPServerDisconnected:
            raise
        except SMTPRecipientRefused as exc:
            await self._reset(client)
            text = f"recipient refused: {_server_text(exc.code, exc.message)}"
            return SendResult(_recipient_outcome(exc.code, exc.message), error=text)
        except SMTPResponseException as exc:
            await self._reset(client)
            text = self._verp_hint(
                f"sender refused: {_server_text(exc.code, exc.message)}", email, always=True
            )
            return SendResult(_response_outcome(exc.code), error=text)
        except SMTPNotSupported as exc:
            await self._reset(client)
            return SendResult(Outcome.FAILED, error=f"{exc}, needed for {email.rcpt_to}")
        except SMTPTimeoutError as exc:
            client.close()
            return SendResult(Outcome.RETRY, error=f"SMTP server timed out before DATA: {exc}")
        try:
            response = await client.data(email.data)
        except SMTPResponseException as exc:
            await self._reset(client)
            text = f"message refused: {_server_text(exc.code, exc.message)}"
            return SendResult(_response_outcome(exc.code), error=self._verp_hint(text, email))
        except (SMTPServerDisconnected, SMTPTimeoutError, OSError) as exc:
            client.close()
            return SendResult(
                Outcome.UNCERTAIN,
                provider_message_id=email.message_id,
                error=f"no reply to DATA, the message may have been delivered: {exc}",
            )
        if 200 <= response.code < 300:
            return SendResult.sent(email.message_id)
        text = self._verp_hint(_server_text(*response), email)
        return SendResult(_response_outcome(response.code), error=text)

    def _verp_hint(self, text: str, email: OutgoingEmail, *, always: bool = False) -> str:
        """`text`, with how to turn VERP off when the server seems to refuse the envelope
        sender (some refuse it only after DATA, such as Microsoft 365's SendAsDenied)."""
        if not self.sender.verp or not (always or _SENDER_REFUSAL.search(text)):
            return text
        return (
            f"{text} (the envelope sender was {email.mail_from}; if the server allows only your "
            "own address, set [smtp] verp = false)"
        )

    @staticmethod
    async def _reset(client: aiosmtplib.SMTP) -> None:
        """RSET after a refused command so the connection can carry the next message."""
        if not client.is_connected:
            return
        try:
            await client.rset()
        except (SMTPException, OSError):
            client.close()
