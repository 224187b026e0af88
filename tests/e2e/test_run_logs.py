"""`dripper run` as a real process logs what an operator needs: one line per delivery outcome
and per inbound item (ids, step, channel, state, timings), in JSON with `--log-format json`,
no line from another library unless -vv, and never a message's text."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dripper.config import load_settings
from dripper.db import open_db
from dripper.engine.logs import configure_logging
from dripper.enrollments.enroll import enroll
from dripper.models import InboundItem, Learner
from dripper.sandbox import TelegramEmulator, start_server
from dripper.sandbox.seed import minute_steps_curriculum
from tests.fixtures.processes import start_dripper
from tests.fixtures.waiting import eventually

TOKEN = "6161:LOGS-run"
CHAT = 901
SECRET_WORDS = "my manager never listens to me"


def _lines(log: Path) -> list[dict[str, Any]]:
    lines = log.read_text(errors="replace").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


async def test_json_lines_for_each_delivery_and_each_message_without_texts(
    tmp_path: Path, migrated_sqlite_url: str
) -> None:
    url = migrated_sqlite_url
    emulator = TelegramEmulator(tokens=[TOKEN])
    emulator.create_user(CHAT, "Lena")
    emulator.start(TOKEN, CHAT)
    server = await start_server(emulator, port=0)
    now = datetime.now(UTC)
    async with open_db(url):
        learner = await Learner.create(first_name="Lena", telegram_chat_id=CHAT)
        await enroll(
            minute_steps_curriculum(1, "logs"), "logs", now - timedelta(hours=1), [learner], now
        )
    env = dict(
        os.environ,
        DRIPPER_DATABASE_URL=url,
        DRIPPER_TELEGRAM_TOKEN=TOKEN,
        DRIPPER_TELEGRAM_API_URL=server.api_url,
        DRIPPER_CURRICULA_DIR=str(tmp_path),
    )
    log = tmp_path / "run.log"
    run = await start_dripper("run", "--log-format", "json", cwd=tmp_path, env=env, log=log)
    try:
        await emulator.wait_for_messages(TOKEN, CHAT, 1)
        emulator.send_text(TOKEN, CHAT, SECRET_WORDS)
        async with open_db(url):

            async def logged() -> bool:
                assert run.returncode is None, log.read_text(errors="replace")
                if not await InboundItem.filter(state="processed").exists():
                    return False
                kinds = {line.get("kind") for line in _lines(log) if line["msg"] == "inbound"}
                return "learner-message" in kinds

            await eventually(logged, seconds=30, message="the message processed and logged")
    finally:
        if run.returncode is None:
            run.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(run.wait(), 30)
        await server.aclose()
    assert code == 0, log.read_text(errors="replace")
    text = log.read_text(errors="replace")
    lines = _lines(log)  # every line is one JSON object
    (delivery,) = [line for line in lines if line["msg"] == "delivery"]
    assert delivery["learner"] == learner.id and delivery["step"] == "s0"
    assert delivery["channel"] == "telegram" and delivery["state"] == "sent"
    assert delivery["kind"] == "step" and delivery["cohort"] == "logs"
    assert isinstance(delivery["latency_ms"], int) and delivery["level"] == "INFO"
    inbound = {line["kind"]: line for line in lines if line["msg"] == "inbound"}
    assert set(inbound) == {"command", "learner-message"}  # the /start, then the text
    message = inbound["learner-message"]
    assert message["channel"] == "telegram"
    assert message["learner"] == learner.id and message["state"] == "processed"
    assert isinstance(message["latency_ms"], int)
    # Neither the step's text nor the learner's words, and nothing but dripper's own loggers.
    assert "s0 for Lena" not in text and SECRET_WORDS not in text
    assert {line["logger"].split(".")[0] for line in lines} == {"dripper"}, text
    assert all(line["ts"].endswith("Z") for line in lines)


def test_libraries_log_at_warning_unless_vv() -> None:
    settings = load_settings(None, {})
    try:
        configure_logging(settings, verbosity=0)
        assert logging.getLogger("telegram.Bot").getEffectiveLevel() == logging.WARNING
        assert logging.getLogger("markdown_it").getEffectiveLevel() == logging.WARNING
        assert logging.getLogger("dripper.engine.dispatcher").getEffectiveLevel() == logging.INFO
        configure_logging(settings, verbosity=1)
        assert logging.getLogger("telegram.Bot").getEffectiveLevel() == logging.WARNING
        assert logging.getLogger("dripper.engine").getEffectiveLevel() == logging.DEBUG
        configure_logging(settings, verbosity=2)
        assert logging.getLogger("telegram.Bot").getEffectiveLevel() == logging.DEBUG
    finally:
        logging.getLogger().setLevel(logging.WARNING)
        logging.getLogger("dripper").setLevel(logging.NOTSET)


def test_the_text_format_is_one_key_value_line_with_quoted_values() -> None:
    from dripper import oplog
    from dripper.engine.logs import TextFormatter

    record = logging.LogRecord("dripper.x", logging.INFO, __file__, 1, "delivery", None, None)
    record.__dict__[oplog.FIELDS] = {"id": 7, "state": "failed", "error": '550 no "such" user'}
    line = TextFormatter().format(record)
    assert line.endswith(
        'level=INFO logger=dripper.x delivery id=7 state=failed error="550 no \\"such\\" user"'
    )
