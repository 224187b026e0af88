"""Acceptance for mail that lands: `dripper run` as a real process sends DKIM-signed mail with
both unsubscribe headers, and serves the one-click page. The signature verifies (dkimpy)
against the record `dripper dkim keygen` printed; a mail client's one-click POST opts its
learner out within the same second; the page works in a real headless browser (chromium):
it asks first, and unsubscribes only when its button is clicked."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import dkim
import pytest

from dripper.db import open_db
from dripper.enrollments.enroll import enroll
from dripper.models import Learner
from dripper.sandbox.seed import minute_steps_curriculum
from dripper.sandbox.smtp import SmtpSink
from tests.fixtures.browser import chromium_missing, headless_chromium
from tests.fixtures.processes import start_dripper
from tests.fixtures.waiting import eventually

FROM = "course@example.com"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _unsubscribe_url(header: str) -> str:
    urls = re.findall(r"<(http[^>]+)>", header)
    assert len(urls) == 1, header
    return urls[0]


async def test_signed_mail_and_one_click_unsubscribe_from_a_real_run(
    tmp_path: Path, migrated_sqlite_url: str
) -> None:
    missing = chromium_missing()
    keygen = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dripper",
        "dkim",
        "keygen",
        "--selector",
        "run1",
        cwd=tmp_path,
        env={**os.environ, "DRIPPER_SMTP_FROM_ADDRESS": FROM},
        stdout=asyncio.subprocess.PIPE,
    )
    printed = (await keygen.communicate())[0].decode()
    assert keygen.returncode == 0, printed
    name = re.search(r"^name:\s+(\S+)$", printed, re.MULTILINE)
    value = re.search(r"^value:\s+(.+)$", printed, re.MULTILINE)
    assert name and value, printed

    def dns(query: bytes, timeout: int = 5) -> bytes | None:
        return value[1].encode() if query.decode().rstrip(".") == name[1] else None

    url = migrated_sqlite_url
    now = datetime.now(UTC)
    async with open_db(url):
        clicker = await Learner.create(first_name="Clara", email="clara@example.org")
        poster = await Learner.create(first_name="Paul", email="paul@example.org")
        await enroll(
            minute_steps_curriculum(1, "land"),
            "land",
            now - timedelta(hours=1),
            [clicker, poster],
            now,
        )
    sink = SmtpSink("127.0.0.1")
    await sink.start()
    port = _free_port()
    env = dict(
        os.environ,
        DRIPPER_DATABASE_URL=url,
        DRIPPER_CURRICULA_DIR=str(tmp_path),
        DRIPPER_SMTP_HOST="127.0.0.1",
        DRIPPER_SMTP_PORT=str(sink.port),
        DRIPPER_SMTP_SECURITY="none",
        DRIPPER_SMTP_FROM_ADDRESS=FROM,
        DRIPPER_SMTP_FROM_NAME="Leadership Course",
        DRIPPER_SMTP_DKIM_SELECTOR="run1",
        DRIPPER_SMTP_DKIM_KEY_FILE=str(tmp_path / "dkim.key"),
        DRIPPER_HMAC_KEY="one-click-run-key-0123456789abcdef",
        DRIPPER_PUBLIC_URL=f"http://127.0.0.1:{port}",
        DRIPPER_LISTEN=f"127.0.0.1:{port}",
    )
    log = tmp_path / "run.log"
    run = await start_dripper("run", cwd=tmp_path, env=env, log=log)
    try:
        received = await sink.wait_for(2, within=60)
        by_recipient = {message.rcpt_tos[0]: message for message in received}
        for message in received:
            assert dkim.verify(message.data, dnsfunc=dns), message.data[:400]
            assert message.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            assert "<mailto:course+unsub-" in message.message["List-Unsubscribe"]

        # The mail client's one-click: a POST without cookies or a page.
        one_click = _unsubscribe_url(by_recipient["paul@example.org"].message["List-Unsubscribe"])
        assert one_click.startswith(f"http://127.0.0.1:{port}/u/")
        async with aiohttp.ClientSession() as http:
            started = time.monotonic()
            async with http.post(
                one_click,
                data="List-Unsubscribe=One-Click",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            ) as response:
                assert response.status == 200
            async with open_db(url):
                await poster.refresh_from_db()
            assert poster.opted_out_at is not None
            assert time.monotonic() - started < 1.0

        # A person in a browser: the page asks, the button unsubscribes.
        page_url = _unsubscribe_url(by_recipient["clara@example.org"].message["List-Unsubscribe"])
        if missing:
            return
        async with headless_chromium(tmp_path / "profile") as page:
            await page.open(page_url)
            assert await page.status() == 200
            text = await page.text()
            assert "Unsubscribe?" in text and "Leadership Course" in text, text
            assert "c•••@example.org" in text
            async with open_db(url):
                await clicker.refresh_from_db()
            assert clicker.opted_out_at is None  # opening the page changed nothing
            await page.click("button")
            text = await page.text()
            assert "You are unsubscribed" in text, text
            async with open_db(url):

                async def opted_out() -> bool:
                    await clicker.refresh_from_db()
                    return clicker.opted_out_at is not None

                await eventually(opted_out, seconds=5, message="the click opted Clara out")
            # Clicked by mistake: the second button undoes it.
            await page.click("button")
            assert "Welcome back" in await page.text()
            async with open_db(url):
                await clicker.refresh_from_db()
            assert clicker.opted_out_at is None
        assert run.returncode is None, log.read_text(errors="replace")
    finally:
        if run.returncode is None:
            run.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(run.wait(), 30)
        await sink.stop()
    assert code == 0, log.read_text(errors="replace")
    if missing:  # everything but the browser was checked
        print(f"SKIP (the page in a browser): {missing}")
        pytest.skip(missing)
