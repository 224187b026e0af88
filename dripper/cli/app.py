"""The root `dripper` command group, its shared options and its error handling."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from dripper import __version__
from dripper.errors import DripperError


@dataclass
class AppContext:
    """What every subcommand may need; settings load lazily, so `check` works without config."""

    config_path: Path | None
    _settings: Any = field(default=None, repr=False)

    @property
    def settings(self) -> Any:
        if self._settings is None:
            from dripper.config import load_settings

            self._settings = load_settings(self.config_path)
        return self._settings


@dataclass(frozen=True)
class Lazy:
    """A command known by name before its module is imported: `module:attribute`, and the
    short help `dripper --help` lists (a test keeps it equal to the command's own)."""

    target: str
    short_help: str

    def load(self) -> click.Command:
        module_name, _, attribute = self.target.partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{self.target} is not a click command")
        return command


class DripperGroup(click.Group):
    """The root group. Turns every DripperError into a one-line message and exit status 1,
    never a traceback. Its commands are imported only when used: `dripper --help` and each
    command load what they need and nothing else (the whole tree takes over a second)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy: dict[str, Lazy] = {}
        self._extensions: dict[str, list[str]] = {}  # group name -> subcommands to add to it
        self._plugin_group: str | None = None
        self._plugins_loaded = False

    def load_plugins_from(self, group: str) -> None:
        """Let the packages in entry point group `group` add commands, when first needed: for
        the command list, a name dripper does not know, or a group a plugin may extend.
        Scanning the installed packages' entry points costs tens of milliseconds, which
        `dripper status` and `dripper check` do not pay."""
        self._plugin_group = group
        self._plugins_loaded = False

    def _load_plugins(self) -> None:
        if self._plugins_loaded or self._plugin_group is None:
            return
        self._plugins_loaded = True
        from importlib.metadata import entry_points

        for plugin in entry_points(group=self._plugin_group):
            plugin.load()(self)

    def add_lazy(self, name: str, target: str, short_help: str) -> None:
        self.lazy[name] = Lazy(target, short_help)

    def extend_lazy(self, group: str, target: str) -> None:
        """Add the command at `target` to the subgroup `group` once that group is loaded (a
        plugin's `dripper bench tui`)."""
        self._extensions.setdefault(group, []).append(target)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_plugins()
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands and name not in self.lazy:
            self._load_plugins()
        if name not in self.commands and name in self.lazy:
            command = self.lazy[name].load()
            if isinstance(command, click.Group):
                self._load_plugins()  # a plugin may extend it
                for target in self._extensions.get(name, []):
                    command.add_command(Lazy(target, "").load())
            self.add_command(command, name)
        return self.commands.get(name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Click's command list, with the short help of commands not loaded taken from the
        registry (and shortened by Click's own rule, as the loaded command's would be)."""
        commands: list[tuple[str, click.Command]] = []
        for name in self.list_commands(ctx):
            command = self.commands.get(name)
            if command is None:
                command = click.Command(name, help=self.lazy[name].short_help)
            if not command.hidden:
                commands.append((name, command))
        if commands:
            limit = formatter.width - 6 - max(len(name) for name, _ in commands)
            with formatter.section("Commands"):
                formatter.write_dl(
                    [(name, command.get_short_help_str(limit)) for name, command in commands]
                )

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DripperError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=DripperGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dripper")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="DRIPPER_CONFIG",
    help="dripper.toml to use (default: ./dripper.toml if present). Env: DRIPPER_CONFIG.",
)
@click.pass_context
def main(ctx: click.Context, config_path: Path | None) -> None:
    """dripper keeps a trainer present after the course: YAML curricula drip tips, quizzes and
    reflection prompts to learners over Telegram and email, and their replies land in a shared
    inbox.
    """
    ctx.obj = AppContext(config_path=config_path)


pass_app = click.make_pass_decorator(AppContext)
