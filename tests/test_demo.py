"""`dripper demo --headless`: the whole drip on embedded defaults, as CI and new users run it."""

from __future__ import annotations

import json

from click.testing import CliRunner

from dripper.cli import main


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
    assert summary["trainer_answer"]["arrived_in_chat"] is True


def test_demo_text_output_names_what_happened() -> None:
    result = CliRunner().invoke(main, ["demo", "--headless"], catch_exceptions=False)
    assert result.exit_code == 0
    assert "Reachability at the end:" in result.output
    assert "Liam   telegram unreachable" in result.output
    assert "arrived in" in result.output
