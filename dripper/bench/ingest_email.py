"""`dripper bench ingest-email`: N learner replies in a real Dovecot, received into the inbox.

The learners and their sent drip emails come from dripper.sandbox.seed; the Dovecot server is
dripper.sandbox.dovecot.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dripper.config import ImapSettings
from dripper.sandbox.dovecot import PASSWORD, Dovecot, dovecot_missing
from dripper.sandbox.seed import reply_message, seed_course

BENCH_KEY = b"bench-hmac-key-0123456789abcdef"


# --------------------------------------------------------------------------- the benchmark

_BODY = """\
I rebuilt the monthly report as a table, reply number {n}.
It took ten minutes instead of an hour.

Best regards,
Learner {n}

On Sat, 5 Dec 2026 at 09:00, Replies course <course@example.com> wrote:
> What did you try?
>
> --
> Reply to this email to reach your trainer.
"""


async def _ingest_once(n: int, learners: int) -> dict[str, Any]:
    from dripper.db import open_db
    from dripper.inbound.email.poller import ImapPoller, PollerOptions
    from dripper.models import InboundItem, Message

    server = Dovecot().start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            async with open_db(f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"):
                seeded = await seed_course(min(n, learners), key=BENCH_KEY)
                imap = server.settings(server.new_user())
                messages = []
                for index in range(n):
                    seed = seeded[index % len(seeded)]
                    messages.append(
                        reply_message(
                            seed.email,
                            seed.reply_to(BENCH_KEY),
                            _BODY.format(n=index),
                            in_reply_to=seed.message_ids["reflect"],
                            message_id=f"<bench-{index}@example.net>",
                        )
                    )
                _append(imap, messages)
                poller = ImapPoller(imap, PASSWORD, BENCH_KEY, PollerOptions(batch_size=200))
                started = time.perf_counter()
                await poller.connect()
                report = await poller.poll_once()
                elapsed = time.perf_counter() - started
                again = await poller.poll_once()  # nothing new: must store nothing
                await poller.close()
                stored = await InboundItem.all().count()
                filed = await Message.all().count()
                distinct = len(set(await Message.all().values_list("inbound_id", flat=True)))
    finally:
        server.stop()
    return {
        "seconds": round(elapsed, 3),
        "messages_per_s": round(n / elapsed, 1),
        "stored": stored,
        "filed": filed,
        "duplicates": (filed - distinct) + report.duplicates + again.stored,
        "processed": dict(report.processed),
    }


def _append(imap: ImapSettings, messages: Sequence[bytes]) -> None:
    from imapclient import IMAPClient  # type: ignore[import-untyped]

    client = IMAPClient(imap.host, port=imap.port, ssl=False)
    client.login(imap.username, PASSWORD)
    for start in range(0, len(messages), 200):
        client.multiappend(imap.mailbox, list(messages[start : start + 200]))
    client.logout()


async def run_ingest_email(n: int, runs: int = 3, learners: int = 200) -> dict[str, Any]:
    """N replies APPENDed to a fresh Dovecot mailbox, then one poller cycle stores, classifies
    and files them; median of `runs` runs. One JSON-ready dict."""
    missing = dovecot_missing()
    if missing:
        raise SystemExit(missing)
    results = [await _ingest_once(n, learners) for _ in range(runs)]
    rates = [r["messages_per_s"] for r in results]
    median = statistics.median(rates)
    chosen = min(results, key=lambda r: abs(r["messages_per_s"] - median))
    return {
        "bench": "ingest-email",
        "n": n,
        "runs": runs,
        "messages_per_s": median,
        "messages_per_s_runs": rates,
        "stored": chosen["stored"],
        "filed": chosen["filed"],
        "duplicates": max(r["duplicates"] for r in results),
        "seconds": chosen["seconds"],
        "processed": chosen["processed"],
    }


if __name__ == "__main__":
    import asyncio
    import sys

    print(
        json.dumps(asyncio.run(run_ingest_email(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)))
    )
