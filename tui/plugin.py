"""Entry point `dripper.commands`: the dashboard's commands, added to `dripper` by name.

Cheap on purpose: every `dripper` command runs it, so it imports nothing of the dashboard.
"""

from __future__ import annotations

from dripper.cli.app import DripperGroup


def register(main: DripperGroup) -> None:
    """Add `dripper tui` (and `dripper bench tui`), loaded from tui.cli when used."""
    main.add_lazy(
        "tui",
        "tui.cli:tui_cmd",
        "Open the trainers' dashboard: the shared inbox, learners and cohorts.",
    )
    main.extend_lazy("bench", "tui.cli:bench_tui_cmd")
