"""`dripper bench dispatch --channel email`: N deliveries through the dispatcher to an SMTP sink
running in its own process (`dripper sandbox smtp`), over a few reused connections."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from dripper.bench.dispatch import dispatch_due
from dripper.bench.harness import peak_rss_mb
from dripper.channels.email.channel import EmailChannel
from dripper.channels.ratelimit import TokenBucket
from dripper.config import SmtpSettings

BENCH_KEY = b"dripper-bench-hmac-key"


async def _start_sink() -> tuple[asyncio.subprocess.Process, int]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dripper.sandbox.smtp",
        "--port",
        "0",
        "--quiet",
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    first = (await process.stdout.readline()).decode()
    if not first.startswith("SMTP sandbox on "):
        process.kill()
        raise RuntimeError(f"the SMTP sandbox did not start: {first!r}")
    return process, int(first.rsplit(":", 1)[1])


async def _stop_sink(process: asyncio.subprocess.Process) -> dict[str, int]:
    process.terminate()
    out, _ = await process.communicate()
    for line in reversed(out.decode().splitlines()):
        if line.startswith("{"):
            return dict(json.loads(line))
    return {"received": -1, "duplicates": -1}


async def bench_email(n: int, baseline: str | None, connections: int = 3) -> dict[str, Any]:
    if baseline is not None:
        raise SystemExit("--baseline is measured for --channel telegram only")
    process, port = await _start_sink()
    result: dict[str, Any] = {"bench": "dispatch", "channel": "email", "n": n}
    try:
        settings = SmtpSettings(
            host="127.0.0.1",
            port=port,
            security="none",
            from_address="course@example.com",
            from_name="Bench Course",
            connections=connections,
        )
        channel = EmailChannel(settings, signing_key=BENCH_KEY, limiter=TokenBucket(None))
        result.update(await dispatch_due(channel, n))
    finally:
        counts = await _stop_sink(process)
    result["received"] = counts["received"]
    result["duplicates"] = counts["duplicates"]
    result["connections"] = connections
    result["peak_rss_mb"] = peak_rss_mb()
    return result
