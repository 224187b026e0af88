"""The `dripper` command line: the root group plus one module of subcommands per area."""

from dripper.cli import curricula, learners, setup, storage
from dripper.cli.app import main

for _module in (curricula, setup, storage, learners):
    for _command in _module.COMMANDS:
        main.add_command(_command)

__all__ = ["main"]
