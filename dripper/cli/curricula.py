"""Subcommands about curriculum files: `dripper check` and `dripper schema`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from dripper.cli.app import AppContext, pass_app

# The curriculum package (pydantic, Jinja, Markdown, croniter) is imported in the commands:
# `dripper check --help` needs none of it.


@click.command("check")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@pass_app
def check_cmd(app: AppContext, paths: tuple[Path, ...]) -> None:
    """Validate curriculum files or folders (default: the configured curricula folder).

    Prints every problem as path:line:col: message and exits 1; when all is well, prints one
    summary line per file and exits 0.
    """
    from dripper.curriculum import check_paths, summary

    targets = list(paths) or [Path(app.settings.curricula_dir)]
    results, problems = check_paths(targets)
    for result in results:
        problems.extend(result.problems)
    for problem in sorted(problems):
        click.echo(str(problem))
    if problems:
        files = len({p.path for p in problems})
        click.echo(
            f"{len(problems)} problem{'s' if len(problems) != 1 else ''} in {files} "
            f"file{'s' if files != 1 else ''}",
            err=True,
        )
        raise SystemExit(1)
    for result in results:
        click.echo(summary(result))


@click.command("schema")
def schema_cmd() -> None:
    """Print the JSON Schema of the curriculum language (for editor autocompletion).

    For example, with the YAML language server in VS Code or Neovim, save it as
    curriculum.schema.json and put `# yaml-language-server: $schema=curriculum.schema.json`
    at the top of a curriculum file.
    """
    from dripper.curriculum import json_schema

    click.echo(json.dumps(json_schema(), indent=2, ensure_ascii=False))
