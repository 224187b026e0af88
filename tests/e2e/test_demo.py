"""`dripper demo --headless`: the whole drip on embedded defaults, as CI and new users run it.

The JSON run uses the default `--imap auto` (Dovecot where it can run, else the embedded IMAP
server); the text run forces the embedded server, so both mailboxes are played here.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from dripper.cli import main
from dripper.demo.mail import start_mailbox
from dripper.errors import DripperError
from dripper.sandbox.dovecot import dovecot_missing


def test_headless_demo_plays_the_drip_and_reports_the_blocked_and_bounced() -> None:
    result = CliRunner().invoke(main, ["demo", "--headless", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    states = {(row["channel"], row["state"]): row["n"] for row in summary["deliveries"]}
    assert states[("telegram", "sent")] > 50
    assert states[("email", "sent")] > 50
    assert not [key for key in states if key[1] in ("failed", "uncertain")]
    reach = {row["first_name"]: row for row in summary["reachability"]}
    assert reach["Liam"]["telegram_status"] == "unreachable"  # blocked the bot
    assert reach["Priya"]["email_status"] == "unreachable"  # hard bounce
    assert summary["emails_per_address"]["liam@example.com"] > 5  # the drip went on by email
    notes = " ".join(note["error"] for note in summary["notes"])
    # Liam's block reaches dripper as a chat-member update before any send fails, so no
    # send bounces off it; the bounce is seen when an email is refused.
    assert "user unknown; continuing by telegram" in notes
    assert summary["learner_actions"]["quiz and check-in taps"] > 10
    assert summary["inbox_messages"]["in"] > 10
    assert summary["quiz_answers"]["right"] > 0
    assert summary["quiz_answers"]["wrong"] > 0
    # The trainer heard of the learners' messages in her own chat, got her morning digests,
    # and answered a question by replying to its notification there.
    answer = summary["trainer_answer"]
    assert answer["arrived_in_chat"] is True
    assert answer["learner"] in answer["notification"] and "?" in answer["question"]
    chat = summary["trainer_chat"]
    assert chat["notifications"] > 5 and chat["digests"] > 5
    assert chat["messages"] >= chat["notifications"] + chat["digests"] + 2  # welcome, "sent ✓"
    changes = summary["channel_changes"]
    assert any(c.startswith("Liam O'Connor: Telegram blocked on ") for c in changes), changes
    assert any(c.startswith("Priya Raman: Email bounced on ") for c in changes), changes
    assert all("continuing" in c for c in changes), changes
    expected = "dovecot" if dovecot_missing() is None else "embedded"
    assert_email_replies_reached_the_inbox(summary, expected)


def assert_email_replies_reached_the_inbox(summary: dict[str, Any], server: str) -> None:
    email = summary["email"]
    assert email["imap_server"] == server
    sent = email["learner_emails"]
    assert sent == {"quiz answer": 2, "reply": 2, "out-of-office": 1}
    # Everything sent was stored by the poller and classified: the out-of-office as such.
    assert email["stored_by_the_poller"] == 5
    assert email["classified"] == {"answer": 2, "reply": 2, "auto-reply": 1}
    # Each written reply is in the inbox, linked to the step of the email it answers.
    for reply in email["replies"]:
        assert reply["in_inbox"] is True
        assert reply["answers_step"] is not None
        assert reply["filed_under_step"] == reply["answers_step"]
        assert reply["learner"] == "José" and "?" in reply["body"]
    # The out-of-office was stored and recognised, and did not become an inbox message.
    away = email["out_of_office"]
    assert away["learner"] == "Ana" and away["stored"] is True
    assert away["verdict"] == "auto-reply, hidden: Auto-Submitted: auto-replied"
    assert away["inbox_messages"] == 0
    # Each emailed quiz answer was answered in its thread, and (an answer alone) kept out of
    # the inbox.
    assert len(email["answers"]) == sent["quiz answer"]
    for answer in email["answers"]:
        assert answer["answers_step"] is not None and answer["in_inbox"] is False
        assert answer["feedback_state"] == "sent"
        assert answer["feedback"].startswith(("✅ Right!", "❌ Not quite."))
    by_channel = summary["inbox_messages_in_by_channel"]
    assert by_channel["email"] == sent["reply"]  # no auto-reply, no bare answer among them
    assert sum(by_channel.values()) == summary["inbox_messages"]["in"]


# The text output with the embedded IMAP server is checked on the installed wheel:
# tests/e2e/test_wheel.py plays it there.


def test_forcing_dovecot_where_it_cannot_run_is_an_error_naming_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("dripper.demo.mail.dovecot_missing", lambda: "Dovecot is not installed")
    result = CliRunner().invoke(main, ["demo", "--headless"], env={"DRIPPER_DEMO_IMAP": "dovecot"})
    assert result.exit_code == 1
    assert "--imap dovecot: Dovecot is not installed; or use --imap embedded" in result.output


async def test_auto_falls_back_to_the_embedded_server_and_says_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("dripper.demo.mail.dovecot_missing", lambda: "Dovecot is not installed")
    mailbox = await start_mailbox("auto")
    try:
        assert mailbox.server == "embedded"
        assert mailbox.note.endswith("; no Dovecot: Dovecot is not installed")
    finally:
        await mailbox.stop()
    with pytest.raises(DripperError, match="--imap embedded"):
        await start_mailbox("dovecot")
