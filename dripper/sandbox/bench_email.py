"""Measure EmailChannel throughput against the SMTP sandbox running in another process.

    python -m dripper.sandbox.bench_email --n 2000 --connections 3 --runs 3

Starts `python -m dripper.sandbox.smtp --port 0 --quiet`, sends N distinct messages per run
through one EmailChannel (no rate limit) and prints one JSON line: the rate of each run, their
median (`msgs_per_s`) and the outcomes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections import Counter

from dripper.channels.base import Outbound
from dripper.channels.email import EmailChannel
from dripper.compose import Content, compose_reply
from dripper.config import SmtpSettings
from dripper.ratelimit import TokenBucket


def _start_sink() -> tuple[subprocess.Popen[str], int]:
    process = subprocess.Popen(
        [sys.executable, "-m", "dripper.sandbox.smtp", "--port", "0", "--quiet"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    first = process.stdout.readline()
    if not first.startswith("SMTP sandbox on "):
        process.kill()
        raise SystemExit(f"the SMTP sandbox did not start: {first!r}")
    return process, int(first.rsplit(":", 1)[1])


TIP = (
    "Hi **Learner {i}**,\n\n"
    "Last week we practised *active listening*. Today, try this in one conversation:\n\n"
    "1. Let the other person finish.\n"
    "2. Summarise what you heard in one sentence.\n"
    "3. Ask one open question.\n\n"
    "> Most people do not listen with the intent to understand.\n\n"
    "Read more in the [course notes](https://example.com/notes/{i})."
)


def _content(i: int) -> Content:
    return compose_reply(TIP.format(i=i), f"Tip {i}: listen first")


def _messages(run: int, n: int) -> list[Outbound]:
    return [
        Outbound(
            delivery_id=i,
            business_key=f"bench:{run}:{i}",
            content=_content(i),
            telegram_chat_id=None,
            email=f"learner{i}@example.org",
            learner_name=f"Learner Nummer {i}",
            conversation_token="aebm7js3lgmcfnr2kr5a",
            unsubscribe_token="ahqoyihg6p43jkvb4e",
        )
        for i in range(n)
    ]


async def _run(
    port: int, n: int, connections: int, runs: int, precompute_text: bool
) -> dict[str, object]:
    settings = SmtpSettings(
        host="127.0.0.1",
        port=port,
        security="none",
        from_address="course@example.com",
        from_name="Benchmark Course",
        connections=connections,
    )
    channel = EmailChannel(settings, limiter=TokenBucket(None), local_hostname="bench.invalid")
    await channel.start()
    rates: list[float] = []
    outcomes: Counter[str] = Counter()
    try:
        for run in range(runs):
            batch = _messages(run, n)
            if precompute_text:  # measure the channel alone, not Content's lazy text rendering
                for message in batch:
                    _ = message.content.text
            started = time.perf_counter()
            results = await asyncio.gather(*(channel.send(message) for message in batch))
            elapsed = time.perf_counter() - started
            rates.append(round(n / elapsed, 1))
            outcomes.update(result.outcome.value for result in results)
    finally:
        await channel.close()
    return {
        "n": n,
        "connections": connections,
        "runs": rates,
        "msgs_per_s": statistics.median(rates),
        "precompute_text": precompute_text,
        "outcomes": dict(outcomes),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="messages per run")
    parser.add_argument("--connections", type=int, default=3, help="pooled SMTP connections")
    parser.add_argument("--runs", type=int, default=3, help="runs; the median is reported")
    parser.add_argument(
        "--precompute-text",
        action="store_true",
        help="render Content.text before timing (measures the channel without that cost)",
    )
    args = parser.parse_args(argv)
    process, port = _start_sink()
    try:
        report = asyncio.run(_run(port, args.n, args.connections, args.runs, args.precompute_text))
    finally:
        process.terminate()
        process.wait(timeout=10)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
