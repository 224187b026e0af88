"""`dripper --help` and every subcommand's help: complete and consistent.

Walks the real command tree (including commands added through entry points, such as `tui`), so
a new command or option without help text fails here, not in a user's terminal.
"""

from __future__ import annotations

import subprocess
import sys
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
        context = click.Context(command)
        for name in command.list_commands(context):
            sub = command.get_command(context, name)
            assert sub is not None, name
            yield from _commands(sub, (*path, name))


COMMANDS = list(_commands(main, ()))


def _command(path: tuple[str, ...]) -> click.Command:
    command: click.Command = main
    for name in path:
        assert isinstance(command, click.Group)
        found = command.get_command(click.Context(command), name)
        assert found is not None, name
        command = found
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


@pytest.mark.parametrize("name", sorted(main.lazy), ids=str)
def test_the_registrys_short_help_is_the_commands_own(name: str) -> None:
    """`dripper --help` lists commands without importing them, from the registry in
    dripper/cli/__init__.py (and the plugins'): it must say what the command itself says."""
    command = _command((name,))
    stand_in = click.Command(name, help=main.lazy[name].short_help)
    for limit in (30, 45, 60, 80, 200):
        assert stand_in.get_short_help_str(limit) == command.get_short_help_str(limit), limit


def test_the_command_line_starts_without_the_engine_or_the_dashboard() -> None:
    """`dripper --help` imports the root group only: no ORM, no bot library, no Textual."""
    heavy = ("tortoise", "telegram", "textual", "aiohttp", "jinja2", "pydantic", "dripper.models")
    code = (
        "import sys; from click.testing import CliRunner; from dripper.cli import main; "
        "assert CliRunner().invoke(main, ['--help']).exit_code == 0; "
        f"print(sorted(m for m in sys.modules if m.startswith({heavy!r})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


def test_the_startup_benchmark_times_every_command_it_names() -> None:
    from dripper.bench.startup import COMMANDS as TIMED
    from dripper.bench.startup import bench_startup

    figures = bench_startup(1)
    assert figures["target_s"] == 0.3
    assert set(figures["commands"]) == {" ".join(args) for args in TIMED}
    assert all(0 < entry["median_s"] < 30 for entry in figures["commands"].values())


def _fresh(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dripper", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_plugin_commands_load_on_first_need_in_a_fresh_process() -> None:
    """Entry points are scanned only for the command list, a name dripper does not know, or a
    group a plugin extends: the dashboard's `tui` and `bench tui` must still be found each way."""
    assert "\n  tui " in _fresh("--help").stdout
    assert "\n  tui " in _fresh("bench", "--help").stdout
    tui = _fresh("tui", "--help")
    assert tui.returncode == 0 and "dripper tui [OPTIONS]" in tui.stdout, tui.stderr
    unknown = _fresh("no-such-command")
    assert unknown.returncode == 2 and "No such command 'no-such-command'" in unknown.stderr


def test_a_built_in_command_does_not_scan_the_plugins() -> None:
    """`dripper check --help` never reads the installed packages' entry points."""
    code = (
        "import sys; from click.testing import CliRunner; from dripper.cli import main; "
        "assert CliRunner().invoke(main, ['check', '--help']).exit_code == 0; "
        "print('importlib.metadata' in sys.modules, 'tui' in main.lazy)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.split() == ["False", "False"]
