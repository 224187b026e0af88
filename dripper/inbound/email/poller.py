"""The IMAP receiver: fetch new mail from the course mailbox, store it, then process it.

IMAPClient (BSD) is synchronous; every call runs in a worker thread (asyncio.to_thread), one
at a time, so the event loop never blocks on the network. The mailbox is opened read-only:
dripper never marks, moves or deletes mail, so trainers may keep reading it in a mail client.

One cycle (`poll_once`): process items left pending by an earlier run (a crash after storing),
then fetch every message whose UID is above the stored cursor, in batches; each batch is stored
with the new cursor in one transaction (`ingest.store_batch`), then processed. A message
larger than `max_message_bytes` is stored as its header block plus the attachment list from
BODYSTRUCTURE, and flagged "too large". A new UIDVALIDITY (the server rebuilt its index)
re-scans the whole mailbox: the dedupe key (Message-ID, else a hash) absorbs what was stored.

Between cycles the poller waits in IDLE when the server offers it, and polls anyway every
`poll_interval` seconds (IDLE notifications can be lost; some servers have no IDLE). Network or
server errors close the connection and reconnect with exponential backoff; the first connection
(`connect`, which the worker makes before it runs) raises DripperError instead, naming the
setting to fix.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import select
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from imapclient import IMAPClient  # type: ignore[import-untyped]
from imapclient.exceptions import (  # type: ignore[import-untyped]
    IMAPClientAbortError,
    IMAPClientError,
    LoginError,
)

from dripper.clock import Clock, SystemClock
from dripper.config import ImapSettings, Settings
from dripper.errors import DripperError
from dripper.inbound.email.ingest import (
    Cursor,
    Fetched,
    StoreReport,
    account_name,
    load_cursor,
    process_pending,
    store_batch,
)
from dripper.inbound.email.parse import attachments_from_bodystructure

log = logging.getLogger("dripper.imap")

T = TypeVar("T")

MAX_MESSAGE_BYTES = 10 * 1024 * 1024
FETCH_BYTES_PER_BATCH = 20 * 1024 * 1024  # bodies fetched in one round trip, at most
FETCH_TRIES = 3  # a message the server fails to send alone this often is skipped, flagged


@dataclass(frozen=True)
class PollerOptions:
    poll_interval: float = 60.0  # seconds between checks even when IDLE reports nothing
    batch_size: int = 100  # messages per FETCH and per storing transaction
    max_message_bytes: int = MAX_MESSAGE_BYTES
    timeout: float = 30.0  # socket timeout of IMAP commands
    backoff_initial: float = 1.0
    backoff_max: float = 300.0
    use_idle: bool = True


@dataclass
class PollReport:
    """What one cycle did."""

    uidvalidity: int = 0
    fetched: int = 0
    stored: int = 0
    duplicates: int = 0
    processed: Counter[str] = field(default_factory=Counter)
    rescanned: bool = False  # the UIDVALIDITY changed, the mailbox was read again


def _chunks(values: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


class ImapPoller:
    """Receives one mailbox. Use `connect`, then `run(stop)` (or `poll_once` in tests)."""

    def __init__(
        self,
        imap: ImapSettings,
        password: str,
        key: bytes | None,
        options: PollerOptions | None = None,
        *,
        clock: Clock | None = None,
        on_cycle: Callable[[PollReport], object] | None = None,
    ) -> None:
        if not imap.host or not imap.username:
            raise DripperError(
                "receiving email needs [imap] host and username (DRIPPER_IMAP_HOST, "
                "DRIPPER_IMAP_USERNAME) and the password (DRIPPER_IMAP_PASSWORD or "
                "DRIPPER_IMAP_PASSWORD_FILE)"
            )
        self.imap = imap
        self.host: str = imap.host
        self.username: str = imap.username
        self._password = password
        self.key = key
        self.options = options or PollerOptions()
        self.clock = clock or SystemClock()
        self.on_cycle = on_cycle
        self.account = account_name(self.username, self.host, imap.mailbox)
        self._client: IMAPClient | None = None
        self._idle = False
        self._nudged = asyncio.Event()  # process pending items now, not at the next mail
        # Set when processing queued something to send now (feedback on an emailed answer):
        # the worker's dispatcher wakes for it.
        self.wake: asyncio.Event | None = None
        # Messages of a batch the server failed, fetched one by one until each is through
        # (across reconnects), and how often each failed alone.
        self._suspects: set[int] = set()
        self._fetch_failures: dict[int, int] = {}

    @classmethod
    def from_settings(cls, settings: Settings, options: PollerOptions | None = None) -> ImapPoller:
        imap = settings.imap
        if imap.password is None:
            raise DripperError(
                "receiving email needs the IMAP password: set DRIPPER_IMAP_PASSWORD, or "
                "password_file under [imap] (DRIPPER_IMAP_PASSWORD_FILE)"
            )
        key = settings.security.hmac_key
        if key is None:
            log.warning(
                "no HMAC key ([security] hmac_key_file / DRIPPER_HMAC_KEY): replies are matched "
                "by thread and sender only, unsubscribe addresses are not recognised"
            )
        return cls(
            imap,
            imap.password.get_secret_value(),
            key.get_secret_value().encode() if key is not None else None,
            options,
        )

    # ---- connection ----------------------------------------------------------------------

    def _where(self) -> str:
        return f"{self.host}:{self.imap.port}"

    def _connect_sync(self) -> IMAPClient:
        client = IMAPClient(
            self.host,
            port=self.imap.port,
            ssl=self.imap.security == "tls",
            timeout=self.options.timeout,
        )
        try:
            client.login(self.username, self._password)
            client.select_folder(self.imap.mailbox, readonly=True)
            # SELECT drops the capabilities sent with the login, so IMAPClient would ask the
            # server again on the first has_capability(): do it here, in the thread, not on
            # the event loop (an IMAP server in the same loop could never answer).
            client.has_capability("IDLE")
        except BaseException:
            with contextlib.suppress(Exception):
                client.shutdown()
            raise
        return client

    async def connect(self) -> None:
        """Log in and open the mailbox; DripperError naming the setting to fix when that fails."""
        await self.close()
        try:
            client = await asyncio.to_thread(self._connect_sync)
        except LoginError as exc:
            raise DripperError(
                f"the IMAP server {self._where()} refused the login of {self.username!r} "
                f"({_text(exc)}): check [imap] username (DRIPPER_IMAP_USERNAME) and the password "
                "(DRIPPER_IMAP_PASSWORD or DRIPPER_IMAP_PASSWORD_FILE)"
            ) from None
        except ssl.SSLError as exc:
            raise DripperError(
                f"TLS with the IMAP server {self._where()} failed ({exc}): check [imap] port and "
                'security (DRIPPER_IMAP_PORT, DRIPPER_IMAP_SECURITY; "tls" is port 993, "none" '
                "is port 143)"
            ) from None
        except (OSError, socket.gaierror) as exc:
            raise DripperError(
                f"cannot reach the IMAP server {self._where()} ({exc}): check [imap] host and "
                "port (DRIPPER_IMAP_HOST, DRIPPER_IMAP_PORT) and that the server is running"
            ) from None
        except IMAPClientError as exc:
            raise DripperError(
                f"cannot open the mailbox {self.imap.mailbox!r} on {self._where()} "
                f"({_text(exc)}): check [imap] mailbox (DRIPPER_IMAP_MAILBOX)"
            ) from None
        self._client = client
        self._idle = self.options.use_idle and bool(client.has_capability("IDLE"))
        log.info("receiving email from %s", self.account)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await asyncio.to_thread(_logout, client)

    async def _call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.to_thread(function, *args, **kwargs)

    @property
    def client(self) -> IMAPClient:
        if self._client is None:
            raise RuntimeError("ImapPoller.connect() first")
        return self._client

    # ---- one cycle -----------------------------------------------------------------------

    async def poll_once(self) -> PollReport:
        """Process leftovers, then fetch, store and process everything new."""
        report = PollReport()
        report.processed += await self.process()
        await self.fetch_and_store(report, process=True)
        return report

    async def process(self) -> Counter[str]:
        counts = await process_pending(self.account, self.key, self.clock.now())
        if counts.get("answer") and self.wake is not None:
            self.wake.set()
        return counts

    async def fetch_and_store(
        self, report: PollReport | None = None, *, process: bool = False
    ) -> PollReport:
        """Fetch every message above the cursor, store it batch by batch (processing each batch
        after its commit when `process`)."""
        report = report or PollReport()
        status = await self._call(self.client.select_folder, self.imap.mailbox, readonly=True)
        uidvalidity = int(status[b"UIDVALIDITY"])
        report.uidvalidity = uidvalidity
        cursor = await load_cursor(self.account)
        last_uid = 0
        if cursor is not None and cursor.uidvalidity == uidvalidity:
            last_uid = cursor.last_uid
            uid_next = status.get(b"UIDNEXT")
            if isinstance(uid_next, int) and uid_next <= last_uid + 1:
                return report  # nothing new: spare the SEARCH
        elif cursor is not None:
            report.rescanned = True
            log.warning(
                "%s: UIDVALIDITY changed from %d to %d; reading the whole mailbox again "
                "(messages already stored are recognised and skipped)",
                self.account,
                cursor.uidvalidity,
                uidvalidity,
            )
        found = await self._call(self.client.search, ["UID", f"{last_uid + 1}:*"])
        uids = sorted(int(uid) for uid in found if int(uid) > last_uid)
        if not uids and (cursor is None or cursor.uidvalidity != uidvalidity):
            await self._store(Cursor(uidvalidity, last_uid), [])  # remember the new UIDVALIDITY
        for batch in _chunks(uids, self.options.batch_size):
            fetched, stuck = await self._call(self._fetch_isolating, batch)
            report.fetched += len(fetched)
            # A message the server would not send yet holds the cursor just before it.
            upto = max(batch) if stuck is None else stuck - 1
            stored = await self._store(Cursor(uidvalidity, max(upto, last_uid)), fetched)
            report.stored += stored.stored
            report.duplicates += stored.duplicates
            if process:
                report.processed += await self.process()
            if stuck is not None:
                break  # the next poll tries it again
        return report

    def _fetch_isolating(self, uids: Sequence[int]) -> tuple[list[Fetched], int | None]:
        """`_fetch_sync` for the batch; once the server failed a batch (Dovecot answers an
        unreadable message with an error and hangs up), its messages one by one. A message the
        server fails alone `FETCH_TRIES` times is given up: stored flagged with the reason.
        Returns the messages, and the UID the cursor must stop before (None: the whole batch
        is done). A dropped connection ends the batch; the loop reconnects and comes back."""
        if not self._suspects.intersection(uids):
            try:
                return self._fetch_sync(uids), None
            except (IMAPClientError, ValueError, KeyError, TypeError) as exc:
                self._suspects.update(uids)
                log.warning(
                    "%s: fetching %d messages failed (%s); next, one by one",
                    self.account,
                    len(uids),
                    _text(exc),
                )
                if isinstance(exc, IMAPClientAbortError):
                    raise
        fetched: list[Fetched] = []
        for uid in uids:
            try:
                fetched += self._fetch_sync([uid])
            except (IMAPClientError, ValueError, KeyError, TypeError) as exc:
                tries = self._fetch_failures[uid] = self._fetch_failures.get(uid, 0) + 1
                if tries < FETCH_TRIES:
                    return fetched, uid
                log.error("%s: UID %d cannot be fetched; skipped, flagged", self.account, uid)
                reason = f"the server would not send this message ({tries} tries): {_text(exc)}"
                fetched.append(Fetched(uid, b"", 0, error=reason))
                if isinstance(exc, IMAPClientAbortError):
                    self._forget(uid)
                    return fetched, uid + 1 if uid != uids[-1] else None
            self._forget(uid)
        return fetched, None

    def _forget(self, uid: int) -> None:
        self._suspects.discard(uid)
        self._fetch_failures.pop(uid, None)

    async def _store(self, cursor: Cursor, fetched: Sequence[Fetched]) -> StoreReport:
        """Store a batch with its cursor (one transaction). A seam for crash tests."""
        return await store_batch(
            self.account, cursor, fetched, self.options.max_message_bytes, self.clock.now()
        )

    def _fetch_sync(self, uids: Sequence[int]) -> list[Fetched]:
        """Sizes first; bodies of the small ones (a few MB per round trip), headers and
        structure of the large ones. A UID expunged meanwhile is simply missing."""
        client = self.client
        limit = self.options.max_message_bytes
        sizes = {
            int(uid): int(data.get(b"RFC822.SIZE", 0))
            for uid, data in client.fetch(list(uids), [b"RFC822.SIZE"]).items()
        }
        fetched: list[Fetched] = []
        small = [uid for uid in uids if uid in sizes and sizes[uid] <= limit]
        large = [uid for uid in uids if uid in sizes and sizes[uid] > limit]
        group: list[int] = []
        budget = 0
        for uid in [*small, None]:
            if uid is not None and (not group or budget + sizes[uid] <= FETCH_BYTES_PER_BATCH):
                group.append(uid)
                budget += sizes[uid]
                continue
            if group:
                for got, data in client.fetch(group, [b"BODY.PEEK[]"]).items():
                    raw = data.get(b"BODY[]")
                    if isinstance(raw, bytes):
                        fetched.append(Fetched(int(got), raw, sizes[int(got)]))
            group, budget = ([uid], sizes[uid]) if uid is not None else ([], 0)
        if large:
            for got, data in client.fetch(large, [b"BODY.PEEK[HEADER]", b"BODYSTRUCTURE"]).items():
                header = data.get(b"BODY[HEADER]")
                if not isinstance(header, bytes):
                    continue
                attachments = tuple(attachments_from_bodystructure(data.get(b"BODYSTRUCTURE")))
                fetched.append(Fetched(int(got), header, sizes[int(got)], attachments))
        fetched.sort(key=lambda item: item.uid)
        return fetched

    # ---- waiting and the loop ------------------------------------------------------------

    def nudge(self) -> None:
        """End the wait for mail: a trainer put a flagged item back to be processed."""
        self._nudged.set()

    async def wait_for_mail(self, stop: asyncio.Event) -> None:
        """Return when the server reports a change (IDLE), after `poll_interval`, on `nudge`,
        or on stop."""
        woken = asyncio.create_task(_first_of(stop, self._nudged))
        try:
            if not self._idle:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(woken), self.options.poll_interval)
                return
            interrupted = threading.Event()
            woken.add_done_callback(lambda _: interrupted.set())
            await self._call(self._idle_sync, self.options.poll_interval, interrupted)
        finally:
            woken.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await woken
            self._nudged.clear()

    def _idle_sync(self, seconds: float, interrupted: threading.Event) -> None:
        client = self.client
        client.idle()
        closed = False
        try:
            deadline = time.monotonic() + seconds
            while not interrupted.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                # Short checks so that a stop is noticed quickly; any untagged response
                # (EXISTS, EXPUNGE, a keep-alive) ends the wait and the mailbox is re-read.
                if client.idle_check(timeout=min(left, 0.25)):
                    return
                # IMAPClient reports a closed connection as "no responses": look for the EOF.
                closed = _at_eof(client.socket())
                if closed:
                    raise ConnectionResetError("the IMAP server closed the connection")
        finally:
            if closed:
                _shutdown(client)
            else:
                client.idle_done()

    async def run(self, stop: asyncio.Event) -> None:
        """Cycle until `stop` is set; reconnect with backoff on any error. Never raises for a
        network, server or message problem."""
        delay = self.options.backoff_initial
        try:
            while not stop.is_set():
                try:
                    if self._client is None:
                        await self.connect()
                    report = await self.poll_once()
                    delay = self.options.backoff_initial
                    if self.on_cycle is not None:
                        self.on_cycle(report)
                    await self.wait_for_mail(stop)
                except Exception as exc:
                    log.warning(
                        "IMAP %s: %s; reconnecting in %.0f s", self.account, _text(exc), delay
                    )
                    await self._drop()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), delay)
                    delay = min(delay * 2, self.options.backoff_max)
        finally:
            await self.close()

    async def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await asyncio.to_thread(_shutdown, client)


async def _first_of(*events: asyncio.Event) -> None:
    waits = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


def _text(exc: BaseException) -> str:
    detail = exc.args[0] if exc.args else exc
    if isinstance(detail, bytes):
        detail = detail.decode("utf-8", "replace")
    return str(detail) or type(exc).__name__


def _at_eof(sock: socket.socket) -> bool:
    """True when the peer closed the connection (readable, and nothing to read)."""
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    if not poller.poll(0):
        return False
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.settimeout(timeout)


def _logout(client: IMAPClient) -> None:
    try:
        client.logout()
    except Exception:
        _shutdown(client)


def _shutdown(client: IMAPClient) -> None:
    with contextlib.suppress(Exception):
        client.shutdown()
