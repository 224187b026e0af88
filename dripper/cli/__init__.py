"""The `dripper` command line: the root group plus one module of subcommands per area."""

from dripper.cli import (
    bench,
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
    storage,
    sandbox,
    bench,
):
    for _command in _module.COMMANDS:
        main.add_command(_command)

__all__ = ["main"]
