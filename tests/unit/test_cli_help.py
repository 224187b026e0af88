"""`dripper --help` and every subcommand's help: complete and consistent.

Walks the real command tree (including commands added through entry points, such as `tui`), so
a new command or option without help text fails here, not in a user's terminal.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from dripper.cli import main

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def _commands(command: click.Command, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    yield path
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from _commands(sub, (*path, name))


COMMANDS = list(_commands(main, ()))


def _command(path: tuple[str, ...]) -> click.Command:
    command: click.Command = main
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    return command


@pytest.mark.parametrize("path", COMMANDS, ids=lambda path: " ".join(("dripper", *path)))
def test_every_command_has_help_for_itself_and_each_option(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"], prog_name="dripper")
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Usage: {' '.join(('dripper', *path))}") or not path
    command = _command(path)
    assert (command.help or "").strip(), "no description"
    assert command.get_short_help_str(), "no one-line summary for the parent's list"
    undocumented = [
        param.name
        for param in command.params
        if isinstance(param, click.Option) and not param.help and param.name != "help"
    ]
    assert undocumented == [], f"options without help: {undocumented}"


def test_every_top_level_command_is_in_the_readme_table() -> None:
    missing = [
        name for (name,) in (p for p in COMMANDS if len(p) == 1) if f"`dripper {name}" not in README
    ]
    assert missing == []


def test_the_root_help_lists_every_command() -> None:
    output = CliRunner().invoke(main, ["--help"]).output
    for (name,) in (path for path in COMMANDS if len(path) == 1):
        assert f"\n  {name} " in output
