"""The root `dripper` command group, its shared options and its error handling."""

from __future__ import annotations

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


class DripperGroup(click.Group):
    """Turns every DripperError into a one-line message and exit status 1, never a traceback."""

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
