"""What the cohort, step and answer screens share: colours, widths, the export command."""

from __future__ import annotations

import shlex

from dripper.models import Channel

WIDE = 110  # from this width on, the tables say more in each cell
WIDE_COHORTS = 130  # the cohorts table has more to say per cell
PAUSED = "yellow"
FAILED = "red"
CHANNEL_NAME = {Channel.TELEGRAM: "Telegram", Channel.EMAIL: "email"}


def plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def report_command(cohort_name: str, step_id: str | None = None) -> str:
    """The `dripper report` command that exports what the screen shows, ready to paste."""
    command = f"dripper report --cohort {shlex.quote(cohort_name)}"
    if step_id is not None:
        command += f" --step {shlex.quote(step_id)}"
    return command + " --csv"
