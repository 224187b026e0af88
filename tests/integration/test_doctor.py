"""`dripper doctor` against the local sandboxes: everything right gives no problem; each way a
setting or service can be wrong gives a problem that names it and says how to fix it."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import SecretStr

from dripper.channels.email.dkim import generate_key, public_key, write_key
from dripper.config import SecuritySettings, Settings, SmtpSettings, TelegramSettings
from dripper.db import connection, open_db
from dripper.doctor import DoctorOptions, Finding, Level, diagnose
from dripper.doctor.local import DnsUnavailable
from dripper.sandbox import TelegramEmulator, start_server
from dripper.sandbox.dovecot import Dovecot
from dripper.sandbox.smtp import SmtpSink
from dripper.shipped import example_curricula
from tests.fixtures.mail import PASSWORD

TOKEN = "4242:DOCTOR-token"
SELECTOR = "doc1"


@dataclass
class World:
    settings: Settings
    options: DoctorOptions
    emulator: TelegramEmulator
    dns: dict[str, list[str] | Exception | None]


@pytest.fixture(scope="module")
def dkim_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("doctor") / "dkim.key"
    write_key(path, generate_key())
    return path


@pytest.fixture
async def world(db: str, dovecot: Dovecot, dkim_key: Path, tmp_path: Path) -> AsyncIterator[World]:
    emulator = TelegramEmulator(tokens=[TOKEN])
    server = await start_server(emulator, port=0)
    sink = SmtpSink(security="starttls", credentials=("course", "smtp-pass"))
    await sink.start()
    imap = dovecot.settings(dovecot.new_user())
    settings = Settings(
        database_url=db,
        curricula_dir=example_curricula(),
        public_url="https://drip.example.com",
        listen=f"127.0.0.1:{free_port()}",
        telegram=TelegramSettings(token=SecretStr(TOKEN), api_url=server.api_url),
        smtp=SmtpSettings(
            host="127.0.0.1",
            port=sink.port,
            security="starttls",
            username="course",
            password=SecretStr("smtp-pass"),
            from_address="course@example.com",
            dkim_selector=SELECTOR,
            dkim_key_file=dkim_key,
        ),
        imap=imap.model_copy(update={"password": SecretStr(PASSWORD)}),
        security=SecuritySettings(hmac_key=SecretStr("doctor-hmac-key-0123456789abcdef")),
    )
    record = f"v=DKIM1; k=rsa; p={public_key(await asyncio.to_thread(dkim_key.read_bytes))}"
    dns: dict[str, list[str] | Exception | None] = {f"{SELECTOR}._domainkey.example.com": [record]}

    async def lookup(name: str) -> list[str] | None:
        answer = dns.get(name)
        if isinstance(answer, Exception):
            raise answer
        return answer

    try:
        yield World(settings, DoctorOptions(sink.client_tls_context(), lookup), emulator, dns)
    finally:
        await sink.stop()
        await server.aclose()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def changed(settings: Settings, section: str | None = None, **values: object) -> Settings:
    if section is None:
        return settings.model_copy(update=values)
    part = getattr(settings, section).model_copy(update=values)
    return settings.model_copy(update={section: part})


def by_level(findings: list[Finding], level: Level) -> dict[str, Finding]:
    return {finding.check: finding for finding in findings if finding.level is level}


async def test_everything_right_gives_no_problem_and_no_warning(world: World) -> None:
    findings = await diagnose(world.settings, world.options)
    assert by_level(findings, Level.PROBLEM) == {}
    assert by_level(findings, Level.WARNING) == {}
    ok = by_level(findings, Level.OK)
    assert set(ok) == {
        "curricula",
        "database",
        "telegram",
        "webhook",
        "smtp",
        "imap",
        "hmac key",
        "dkim",
        "public_url",
        "listen",
    }
    assert "@" in ok["telegram"].detail and "long polling" in ok["webhook"].detail
    assert "STARTTLS, logged in as course" in ok["smtp"].detail
    assert "mailbox INBOX" in ok["imap"].detail
    assert "DNS matches" in ok["dkim"].detail
    assert "schema up to date" in ok["database"].detail


@pytest.mark.parametrize(
    ("change", "check", "says"),
    [
        (
            lambda s: changed(s, "smtp", password=SecretStr("wrong")),
            "smtp",
            "refused the login for [smtp] username 'course'",
        ),
        (lambda s: changed(s, "smtp", port=1), "smtp", "cannot reach the SMTP server"),
        (lambda s: changed(s, "imap", password=SecretStr("wrong")), "imap", "refused the login"),
        (lambda s: changed(s, "imap", mailbox="Nowhere"), "imap", "[imap] mailbox"),
        (
            lambda s: changed(s, "telegram", token=SecretStr("4242:not-the-token")),
            "telegram",
            "rejected the bot token",
        ),
        (
            lambda s: changed(s, "security", hmac_key=None),
            "hmac key",
            "email cannot be sent without it",
        ),
    ],
    ids=[
        "smtp-password",
        "smtp-port",
        "imap-password",
        "imap-mailbox",
        "bot-token",
        "hmac-key",
    ],
)
async def test_each_wrong_setting_is_a_problem_with_its_fix(
    world: World,
    change,
    check: str,
    says: str,  # type: ignore[no-untyped-def]
) -> None:
    findings = await diagnose(change(world.settings), world.options)
    problems = by_level(findings, Level.PROBLEM)
    assert set(problems) == {check}, problems
    text = problems[check].detail + " " + problems[check].fix
    assert says in text, text


async def test_a_database_behind_this_dripper_needs_dripper_migrate(world: World) -> None:
    async with open_db(world.settings.database_url):
        # As if this dripper brought the newest migration and the database had not seen it.
        _, rows = await connection().execute_query(
            "SELECT name FROM tortoise_migrations ORDER BY id DESC LIMIT 1"
        )
        newest = rows[0]["name"]
        await connection().execute_query("DELETE FROM tortoise_migrations WHERE name = ?", [newest])
    findings = await diagnose(world.settings, world.options)
    problem = by_level(findings, Level.PROBLEM)["database"]
    assert newest in problem.detail and "dripper migrate" in problem.fix


async def test_a_dkim_record_missing_from_dns_or_with_another_key_is_a_warning(
    world: World,
) -> None:
    name = f"{SELECTOR}._domainkey.example.com"
    world.dns[name] = None
    findings = await diagnose(world.settings, world.options)
    assert by_level(findings, Level.PROBLEM) == {}  # mail still goes out: doctor lets run start
    warning = by_level(findings, Level.WARNING)["dkim"]
    assert f"no DKIM record at {name}" in warning.detail
    assert "v=DKIM1; k=rsa; p=MII" in warning.fix
    world.dns[name] = ["v=DKIM1; k=rsa; p=" + public_key(generate_key())]
    findings = await diagnose(world.settings, world.options)
    assert by_level(findings, Level.PROBLEM) == {}
    assert "holds another key" in by_level(findings, Level.WARNING)["dkim"].detail
    world.dns[name] = DnsUnavailable("no nameservers")
    findings = await diagnose(world.settings, world.options)
    assert "dkim" not in by_level(findings, Level.PROBLEM)
    warning = by_level(findings, Level.WARNING)["dkim"]
    assert "could not be looked up (no nameservers)" in warning.detail


async def test_what_run_survives_is_a_warning_not_a_problem(world: World) -> None:
    settings = changed(world.settings, public_url=None)
    settings = changed(settings, curricula_dir=Path("/nonexistent/curricula"))
    settings = changed(settings, "smtp", dkim_selector=None, dkim_key_file=None)
    findings = await diagnose(settings, world.options)
    assert by_level(findings, Level.PROBLEM) == {}
    warnings = by_level(findings, Level.WARNING)
    assert "no such file or folder" in warnings["curricula"].detail
    assert "mailto only" in warnings["public_url"].detail
    assert "not DKIM-signed" in warnings["dkim"].detail
    assert "dripper dkim keygen" in warnings["dkim"].fix


async def test_a_check_that_breaks_is_a_problem_and_the_others_still_report(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dripper.doctor.run

    async def broken(settings: Settings) -> Finding:
        raise RuntimeError("boom")

    monkeypatch.setattr(dripper.doctor.run, "check_imap", broken)
    findings = await diagnose(world.settings, world.options)
    assert by_level(findings, Level.PROBLEM) == {
        "imap": Finding.problem("imap", "the check failed: RuntimeError: boom")
    }
    assert {"database", "telegram", "smtp", "dkim"} <= set(by_level(findings, Level.OK))


async def test_a_webhook_left_set_while_polling_is_a_problem(world: World) -> None:
    from dripper.channels.telegram.channel import TelegramChannel

    channel = TelegramChannel(TOKEN, world.settings.telegram.api_url)
    await channel.start()
    try:
        await channel.bot.set_webhook("https://old.example.com/hook")
    finally:
        await channel.close()
    problem = by_level(await diagnose(world.settings, world.options), Level.PROBLEM)["webhook"]
    assert "https://old.example.com/hook" in problem.detail
    assert "deleteWebhook" in problem.fix


def doctor(directory: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DRIPPER_")}
    return subprocess.run(
        [sys.executable, "-m", "dripper", "doctor"],
        cwd=directory,
        capture_output=True,
        text=True,
        env={**clean, **env},
        check=False,
        timeout=60,
    )


def test_the_command_exits_1_on_a_broken_config_and_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "dripper.toml").write_text('[smtp]\nport = "many"\n')
    done = doctor(tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAIL  config" in done.stdout
    assert "dripper.toml:2:1" in done.stdout


async def test_the_command_exits_0_when_only_warnings_remain(tmp_path: Path) -> None:
    emulator = TelegramEmulator(tokens=[TOKEN])
    server = await start_server(emulator, port=0)
    try:
        init = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "dripper", "init"],
            cwd=tmp_path,
            capture_output=True,
        )
        assert init.returncode == 0
        done = await asyncio.to_thread(
            doctor,
            tmp_path,
            DRIPPER_TELEGRAM_TOKEN=TOKEN,
            DRIPPER_TELEGRAM_API_URL=server.api_url,
        )
    finally:
        await server.aclose()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok    telegram    bot @" in done.stdout
    assert "0 problems" in done.stdout
    assert not (tmp_path / "dripper.sqlite3").exists()  # the doctor created nothing
