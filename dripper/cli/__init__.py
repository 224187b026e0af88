"""The `dripper` command line: the root group plus one module of subcommands per area.

Packages that build on dripper add commands through the `dripper.commands` entry point group
(a function that receives the root group): that is how the Textual dashboard (`tui`) adds
`dripper tui` without dripper ever importing it.
"""

from importlib.metadata import entry_points

from dripper.cli import (
    bench,
    cohort_report,
    curricula,
    demo,
    enroll,
    invites,
    learners,
    report,
    run,
    sandbox,
    setup,
    storage,
)
from dripper.cli.app import main

for _module in (
    demo,
    setup,
    curricula,
    learners,
    enroll,
    invites,
    run,
    report,
    cohort_report,
    storage,
    sandbox,
    bench,
):
    for _command in _module.COMMANDS:
        main.add_command(_command)

for _plugin in entry_points(group="dripper.commands"):
    _plugin.load()(main)

__all__ = ["main"]
