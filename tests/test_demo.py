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
    assert not [key for key in states if key[1] in ("failed", "uncertain", "pending")]
    reach = {row["first_name"]: row for row in summary["reachability"]}
    assert reach["Liam"]["telegram_status"] == "unreachable"  # blocked the bot
    assert reach["Priya"]["email_status"] == "unreachable"  # hard bounce
    assert summary["emails_per_address"]["liam@example.com"] > 5  # the drip went on by email
    notes = " ".join(note["error"] for note in summary["notes"])
    assert "bot was blocked by the user; continuing by email" in notes
    assert "user unknown; continuing by telegram" in notes


def test_demo_text_output_names_what_happened() -> None:
    result = CliRunner().invoke(main, ["demo", "--headless"], catch_exceptions=False)
    assert result.exit_code == 0
    assert "Reachability at the end:" in result.output
    assert "continuing by email" in result.output
