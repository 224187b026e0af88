"""Subcommands: `dripper doctor`."""

from __future__ import annotations

import json
import shutil
import textwrap

import click

from dripper import aio
from dripper.cli.app import AppContext, pass_app
from dripper.errors import ConfigError

_MARKS = {"ok": "ok", "info": "-", "warning": "warn", "problem": "FAIL"}


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per finding, one per line.")
@pass_app
def doctor_cmd(app: AppContext, as_json: bool) -> None:
    """Check the configuration, database, bot, mail servers, keys and public URL, with fixes.

    Connects to each configured service as `dripper run` would (getMe, SMTP EHLO, STARTTLS and
    login, IMAP login and mailbox) but sends nothing and changes nothing. Prints each finding
    with its fix; exits 1 when there is a problem (warnings alone exit 0), so that it can run
    before `dripper run` (systemd ExecStartPre).
    """
    from dripper.doctor import Finding, Level, diagnose

    try:
        settings = app.settings
    except ConfigError as exc:
        findings = [Finding.problem("config", str(exc), "fix the setting named above")]
    else:
        where = str(settings.config_file) if settings.config_file else "defaults and environment"
        findings = [Finding.ok("config", where), *aio.run(diagnose(settings))]
    width = max(60, min(shutil.get_terminal_size((100, 24)).columns, 120))
    for finding in findings:
        if as_json:
            click.echo(json.dumps(finding.as_json(), ensure_ascii=False))
            continue
        head = f"{_MARKS[finding.level.value]:<5} {finding.check:<11} "
        click.echo(
            textwrap.fill(
                finding.detail,
                width,
                initial_indent=head,
                subsequent_indent=" " * len(head),
                break_on_hyphens=False,
            )
        )
        if finding.fix:
            click.echo(
                textwrap.fill(
                    f"fix: {finding.fix}",
                    width,
                    initial_indent=" " * len(head),
                    subsequent_indent=" " * (len(head) + 5),
                    break_on_hyphens=False,
                )
            )
    problems = sum(finding.level is Level.PROBLEM for finding in findings)
    warnings = sum(finding.level is Level.WARNING for finding in findings)
    if not as_json:
        click.echo(
            f"\n{problems} problem{'s' if problems != 1 else ''}, "
            f"{warnings} warning{'s' if warnings != 1 else ''}"
        )
    if problems:
        raise SystemExit(1)
