"""The engine's commands as a trainer runs them: enroll, timeline, status, cohort, apply, run."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from dripper.cli import main

REPO = Path(__file__).resolve().parents[2]

LEARNERS = """\
name,email,telegram,timezone,department,manager
Zoë Fischer,zoe@example.com,,Europe/Berlin,Sales,Anna
José García,jose@example.com,,America/Mexico_City,Support,María
Aiko Tanaka,aiko@example.com,,Asia/Tokyo,Marketing,Anna
"""


@pytest.fixture
def new_workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A trainer's directory, the current one, with the curricula and a learners file: the
    first command creates and migrates the database there (dripper.sqlite3 by default)."""
    shutil.copytree(REPO / "curricula", tmp_path / "curricula")
    (tmp_path / "learners.csv").write_text(LEARNERS, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    for name in ("DRIPPER_CONFIG", "DRIPPER_DATABASE_URL", "DRIPPER_TELEGRAM_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    yield tmp_path


@pytest.fixture
def workdir(new_workdir: Path, migrated_sqlite_file: Path) -> Path:
    """`new_workdir` with its database already migrated (migrating takes a second)."""
    shutil.copyfile(migrated_sqlite_file, new_workdir / "dripper.sqlite3")
    return new_workdir


def dripper(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def enroll_excel(course_end: str = "2026-12-04 17:00") -> Result:
    return dripper(
        "enroll",
        "excel-essentials",
        "--cohort",
        "Excel Dec",
        "--course-end",
        course_end,
        "--learners",
        "learners.csv",
    )


def test_enroll_imports_the_csv_and_is_idempotent(new_workdir: Path) -> None:
    first = enroll_excel()
    assert first.exit_code == 0, first.output
    assert "3 enrolled, 0 already enrolled, 0 rejected" in first.output
    again = enroll_excel()
    assert again.exit_code == 0
    assert "0 enrolled, 3 already enrolled" in again.output


def test_enroll_refuses_another_course_end_for_the_same_cohort(workdir: Path) -> None:
    enroll_excel()
    moved = enroll_excel("2026-12-11 17:00")
    assert moved.exit_code == 1
    assert "dripper cohort move 'Excel Dec'" in moved.output


def test_enroll_unknown_curriculum_suggests_the_right_id(workdir: Path) -> None:
    result = dripper(
        "enroll", "excel-essential", "--cohort", "x", "--course-end", "2026-12-04 17:00", "--all"
    )
    assert result.exit_code == 1
    assert 'did you mean "excel-essentials"?' in result.output


def test_enroll_rejects_learners_without_the_attributes_the_texts_use(workdir: Path) -> None:
    (workdir / "learners.csv").write_text(
        "name,email\nNo Department,nodep@example.com\n", encoding="utf-8"
    )
    result = enroll_excel()
    assert result.exit_code == 1
    assert "nodep@example.com: no value for department, manager" in result.output


def test_timeline_json_gives_utc_and_local_times(workdir: Path) -> None:
    enroll_excel()
    result = dripper("timeline", "aiko@example.com", "--json")
    assert result.exit_code == 0, result.output
    entries = json.loads(result.output)
    assert [e["step"] for e in entries][:2] == ["welcome", "first-use"]
    first = entries[0]
    assert {"step", "due_utc", "due_local", "state"} <= set(first)
    assert first["due_utc"].endswith("+00:00")
    assert first["due_local"].endswith("+09:00")  # Tokyo
    assert first["state"] == "planned"
    # The course ended Friday 17:00 Berlin = Saturday 01:00 in Tokyo: 1d is Sunday, so Monday.
    assert first["due_local"].startswith("2026-12-07T09:")


def test_timeline_text_shows_each_steps_channel_and_digest_names_a_bad_cohort(
    workdir: Path,
) -> None:
    enroll_excel()
    lines = dripper("timeline", "aiko@example.com").output.splitlines()
    assert lines and all(line.split()[3] == "-" for line in lines), lines  # none sent yet
    digest = dripper("digest", "--cohort", "Excel Dec", "--json")
    assert digest.exit_code == 0, digest.output
    data = json.loads(digest.output)
    assert data["scope"] == "Excel Dec" and data["counts"]["unanswered"] == 0
    text = dripper("digest").output
    assert text.startswith("☀️ Digest (every cohort): nothing waiting"), text
    wrong = CliRunner().invoke(main, ["digest", "--cohort", "Excel Dex"])
    assert wrong.exit_code != 0 and "no cohort named 'Excel Dex'" in wrong.output
    assert "Excel Dec" in wrong.output  # did you mean


def test_cohort_move_and_pause_resume(workdir: Path) -> None:
    enroll_excel()
    before = json.loads(dripper("timeline", "zoe@example.com", "--json").output)
    moved = dripper("cohort", "move", "Excel Dec", "--course-end", "2026-12-11 17:00")
    assert moved.exit_code == 0, moved.output
    after = json.loads(dripper("timeline", "zoe@example.com", "--json").output)
    assert after[0]["due_local"][:10] == "2026-12-14"
    assert before[0]["due_local"][:10] == "2026-12-07"
    paused = dripper("cohort", "pause", "Excel Dec")
    assert "3 enrollments" in paused.output
    assert "paused" in dripper("cohort", "list").output
    assert json.loads(dripper("timeline", "zoe@example.com", "--json").output)[0]["state"] == (
        "paused"
    )
    assert dripper("cohort", "resume", "Excel Dec").exit_code == 0
    assert dripper("learners", "pause", "zoe@example.com", "--for", "7d").exit_code == 0
    assert "1 enrollment resumed" in dripper("learners", "resume", "zoe@example.com").output


def test_status_counts_enrollments_and_names_the_next_due_time(workdir: Path) -> None:
    enroll_excel()
    result = dripper("status", "--json")
    data = json.loads(result.output)
    assert data["enrollments"] == {"active": 3}
    # The first step's send, not the course end (when planning starts): excel-essentials'
    # welcome is one day later, at 09:00 in each learner's zone plus their share of the spread.
    timelines = [
        json.loads(dripper("timeline", who, "--json").output)
        for who in ("zoe@example.com", "jose@example.com", "aiko@example.com")
    ]
    firsts = [entries[0]["due_utc"] for entries in timelines]
    assert data["next_due"] == min(datetime.fromisoformat(t) for t in firsts).isoformat()


def test_apply_previews_then_moves_enrollments_to_the_edited_version(workdir: Path) -> None:
    enroll_excel()
    path = workdir / "curricula" / "excel-essentials.yaml"
    text = path.read_text(encoding="utf-8")
    text = text.replace(
        "  - id: wrap-up",
        "  - id: bonus\n    after: 5w\n    kind: tip\n    text: A bonus tip\n\n  - id: wrap-up",
    )
    text = text.replace(
        "  - id: pivot-tip\n    after: 1w 2d", "  - id: pivot-tip\n    after: 1w 3d"
    )
    path.write_text(text, encoding="utf-8")
    unchanged = json.loads(dripper("timeline", "zoe@example.com", "--json").output)
    assert "bonus" not in [e["step"] for e in unchanged]  # a file edit alone changes nothing

    preview = dripper("apply", "--dry-run")
    assert "new steps, scheduled: bonus" in preview.output
    assert "edited steps, new text/timing for unsent ones: pivot-tip" in preview.output
    applied = dripper("apply", "--yes")
    assert applied.exit_code == 0, applied.output
    assert "applied to 3 enrollments" in applied.output
    steps = [e["step"] for e in json.loads(dripper("timeline", "zoe@example.com", "--json").output)]
    assert "bonus" in steps
    assert "every enrollment runs the current version" in dripper("apply").output


def test_run_without_any_channel_says_what_to_configure(workdir: Path) -> None:
    result = CliRunner().invoke(main, ["run", "--once"])
    assert result.exit_code == 1
    assert "DRIPPER_TELEGRAM_TOKEN" in result.output
    assert "DRIPPER_SMTP_HOST" in result.output


def test_run_with_an_unreachable_bot_api_says_where(workdir: Path) -> None:
    result = CliRunner(
        env={
            "DRIPPER_TELEGRAM_TOKEN": "1:abc",
            "DRIPPER_TELEGRAM_API_URL": "http://127.0.0.1:9/bot",
        }
    ).invoke(main, ["run", "--once"])
    assert result.exit_code == 1
    assert "cannot reach the Telegram Bot API at http://127.0.0.1:9/bot" in result.output
    assert "1:abc" not in result.output  # the token is a secret


def test_secrets_never_reach_the_logs(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from dripper.config import load_settings
    from dripper.engine.logs import configure_logging

    settings = load_settings(None, {"DRIPPER_TELEGRAM_TOKEN": "999:SECRET-token-value"})
    configure_logging(settings, verbosity=1)
    stream = logging.getLogger().handlers[0]
    record = logging.LogRecord(
        "x",
        logging.INFO,
        __file__,
        1,
        "calling %s",
        ("https://api/bot999:SECRET-token-value/x",),
        None,
    )
    assert stream.filter(record)
    assert "SECRET" not in record.getMessage()
    assert "https://api/bot***/x" in record.getMessage()


def test_run_with_an_unreachable_smtp_server_names_the_setting(workdir: Path) -> None:
    env = {
        "DRIPPER_SMTP_HOST": "127.0.0.1",
        "DRIPPER_SMTP_PORT": "9",
        "DRIPPER_SMTP_SECURITY": "none",
        "DRIPPER_SMTP_FROM_ADDRESS": "course@example.com",
        "DRIPPER_HMAC_KEY": "engine-cli-test-key-0123456789abcdef",
    }
    result = CliRunner(env=env).invoke(main, ["run", "--once"])
    assert result.exit_code == 1
    assert "cannot reach the SMTP server 127.0.0.1:9" in result.output
    assert "DRIPPER_SMTP_HOST" in result.output


def test_run_with_an_unreachable_imap_server_names_the_setting(workdir: Path) -> None:
    """Sending works (a real SMTP server in a thread), receiving does not: `dripper run` stops
    at once and says which setting to fix, instead of retrying silently."""
    import socket

    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Sink

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Sink(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        env = {
            "DRIPPER_SMTP_HOST": "127.0.0.1",
            "DRIPPER_SMTP_PORT": str(port),
            "DRIPPER_SMTP_SECURITY": "none",
            "DRIPPER_SMTP_FROM_ADDRESS": "course@example.com",
            "DRIPPER_IMAP_HOST": "127.0.0.1",
            "DRIPPER_IMAP_PORT": "9",
            "DRIPPER_IMAP_SECURITY": "none",
            "DRIPPER_IMAP_USERNAME": "course",
            "DRIPPER_IMAP_PASSWORD": "not-shown",
            "DRIPPER_HMAC_KEY": "engine-cli-test-key-0123456789abcdef",
        }
        result = CliRunner(env=env).invoke(main, ["run", "--once"])
    finally:
        controller.stop()
    assert result.exit_code == 1
    assert "cannot reach the IMAP server 127.0.0.1:9" in result.output
    assert "DRIPPER_IMAP_HOST" in result.output
    assert "not-shown" not in result.output


def test_run_refuses_to_send_email_without_the_hmac_key(workdir: Path) -> None:
    env: dict[str, str | None] = {
        "DRIPPER_SMTP_HOST": "127.0.0.1",
        "DRIPPER_SMTP_FROM_ADDRESS": "course@example.com",
        "DRIPPER_HMAC_KEY": None,
        "DRIPPER_HMAC_KEY_FILE": None,
    }
    result = CliRunner(env=env).invoke(main, ["run", "--once"])
    assert result.exit_code == 1
    assert "sending email needs the HMAC key" in result.output
    assert "dripper init" in result.output and "DRIPPER_HMAC_KEY" in result.output
