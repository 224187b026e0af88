"""`dripper run` killed again and again under Telegram's real 30/s budget: nothing is stranded.

100 learners x 5 steps are due at once. A worker is SIGKILLed at random moments, three times in
a row (the second within a couple of seconds of the restart), restarted each time, then left to
finish. Claims match the budget (a few seconds of it) and a delivery counts as attempted only
once its request is about to be written, so a kill leaves a handful of deliveries whose outcome
is unknown; every other claim goes back to the queue untouched, without using up the one retry.

DRIPPER_KILL_ROUNDS=20 runs twenty rounds (the figures in the issue's note); the suite runs one.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dripper.db import connection, open_db
from dripper.enrollments.enroll import enroll
from dripper.models import Learner
from dripper.sandbox import TelegramEmulator, start_server
from dripper.sandbox.seed import insert_learners, minute_steps_curriculum
from tests.fixtures.waiting import eventually

TOKEN = "999:KILL-rounds"
LEARNERS, STEPS = 100, 5
TOTAL = LEARNERS * STEPS
ROUNDS = int(os.environ.get("DRIPPER_KILL_ROUNDS", "1"))
KILL_DELAYS_S = ((0.2, 3.0), (0.2, 1.5), (1.0, 4.0))  # after sends (re)start, per kill
FINAL = {"sent", "uncertain", "failed", "skipped", "cancelled"}
# Deliveries in flight when a kill hits (marked attempted, outcome not yet recorded): at 30/s a
# few; before claims matched the budget, the whole claimed batch (hundreds) was left uncertain.
MOST_UNCERTAIN_PER_KILL = 10


@dataclass
class Round:
    url: str
    api_url: str
    emulator: TelegramEmulator
    tmp: Path
    workers: int

    def env(self) -> dict[str, str]:
        return dict(
            os.environ,
            DRIPPER_DATABASE_URL=self.url,
            DRIPPER_TELEGRAM_TOKEN=TOKEN,
            DRIPPER_TELEGRAM_API_URL=self.api_url,
            DRIPPER_LEASE_SECONDS="5",
            DRIPPER_CURRICULA_DIR=str(self.tmp),
        )

    async def start(self) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "dripper",
            "run",
            cwd=self.tmp,
            env=self.env(),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )

    def sends(self) -> int:
        return len(self.emulator.send_log(TOKEN))

    def received(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for chat in range(1, LEARNERS + 1):
            for message in self.emulator.messages(TOKEN, chat):
                counts[message["text"]] += 1
        return counts


async def _states() -> Counter[str]:
    rows = await connection().execute_query_dict(
        "SELECT state, COUNT(*) AS n FROM delivery GROUP BY state"
    )
    return Counter({str(row["state"]): int(row["n"]) for row in rows})


async def _finished() -> bool:
    counts = await _states()
    return sum(counts.values()) == TOTAL and set(counts) <= FINAL


async def _play(game: Round, rng: random.Random) -> tuple[int, list[int]]:
    """One round: kill and restart as scheduled, then let it finish. Returns (kills, the sends
    seen at each kill)."""
    processes = [await game.start() for _ in range(game.workers)]
    kills: list[int] = []
    try:
        for low, high in KILL_DELAYS_S:
            before = game.sends()

            async def resumed(before: int = before) -> bool:
                return game.sends() > before or await _finished()

            await eventually(resumed, seconds=60, message="sends to (re)start")
            if await _finished():
                break
            # The kill's moment is the chaos being tested, not a wait for something to happen.
            await asyncio.sleep(rng.uniform(low, high))
            if game.sends() >= TOTAL:
                break
            victim = rng.randrange(len(processes))
            processes[victim].send_signal(signal.SIGKILL)
            await processes[victim].wait()
            kills.append(game.sends())
            processes[victim] = await game.start()

        await eventually(_finished, seconds=180, message="every delivery to be final")
    finally:
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            await asyncio.wait_for(process.wait(), 60)
    return len(kills), kills


async def _check(game: Round, kills: int, seen: list[int], label: str) -> None:
    rows = await connection().execute_query_dict(
        "SELECT d.step_id, d.state, d.uncertain, d.attempted_at, l.first_name FROM delivery d "
        "JOIN learner l ON l.id = d.learner_id"
    )
    assert len(rows) == TOTAL
    by_text = {f"{row['step_id']} for {row['first_name']}": row for row in rows}
    received = game.received()
    states = Counter(str(row["state"]) for row in rows)
    flagged = sum(bool(row["uncertain"]) for row in rows)
    twice = sorted(text for text, count in received.items() if count > 1)
    never = sorted(set(by_text) - set(received))
    print(
        f"{label}: kills at {seen} sends; states {dict(states)}; {flagged} flagged uncertain, "
        f"{len(twice)} received twice, {len(never)} never received"
    )
    # Each was marked attempted before its request was written.
    assert all(row["attempted_at"] is not None for row in rows if row["state"] == "sent")
    # Every delivery is sent or explicitly final: none is lost, none waits for ever.
    assert set(states) <= {"sent", "uncertain"}, states
    assert all(count <= 2 for count in received.values())
    # Only deliveries attempted when a kill hit may arrive twice, or end uncertain.
    assert all(by_text[text]["uncertain"] for text in twice)
    assert all(by_text[text]["uncertain"] for text in never)
    most = MOST_UNCERTAIN_PER_KILL * max(kills, 1)
    assert flagged <= most, "claims never attempted were recovered as uncertain"


async def _prepare(url: str, emulator: TelegramEmulator) -> None:
    emulator.populate(TOKEN, 1, LEARNERS)
    now = datetime.now(UTC)
    await insert_learners(LEARNERS, now, telegram=True)
    await enroll(
        minute_steps_curriculum(STEPS, "kill"),
        "kill",
        now - timedelta(hours=1),
        await Learner.all(),
        now,
    )


@pytest.fixture
async def emulator() -> AsyncIterator[tuple[TelegramEmulator, str]]:
    emu = TelegramEmulator(tokens=[TOKEN])
    server = await start_server(emu, port=0)
    try:
        yield emu, server.api_url
    finally:
        await server.aclose()


@pytest.mark.parametrize("round_", range(ROUNDS))
async def test_killed_three_times_on_sqlite_every_delivery_arrives(
    tmp_path: Path, emulator: tuple[TelegramEmulator, str], migrated_sqlite_url: str, round_: int
) -> None:
    emu, api_url = emulator
    url = migrated_sqlite_url
    seed = random.randrange(1 << 30)
    print(f"seed {seed}")
    async with open_db(url):
        await _prepare(url, emu)
        game = Round(url, api_url, emu, tmp_path, workers=1)
        kills, seen = await _play(game, random.Random(seed))
        await _check(game, kills, seen, f"sqlite round {round_}")


@pytest.mark.postgres
@pytest.mark.parametrize("round_", range(ROUNDS))
async def test_three_workers_killed_on_postgresql_every_delivery_arrives(
    tmp_path: Path, emulator: tuple[TelegramEmulator, str], migrated_pg_url: str, round_: int
) -> None:
    emu, api_url = emulator
    seed = random.randrange(1 << 30)
    print(f"seed {seed}")
    async with open_db(migrated_pg_url):
        await _prepare(migrated_pg_url, emu)
        game = Round(migrated_pg_url, api_url, emu, tmp_path, workers=3)
        kills, seen = await _play(game, random.Random(seed))
        await _check(game, kills, seen, f"postgresql round {round_}")
