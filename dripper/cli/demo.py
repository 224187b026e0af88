"""`dripper demo`: see the whole drip work before having a bot token or a mail server."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import click

from dripper import aio

SHIPPED_CURRICULA = Path(__file__).resolve().parent.parent.parent / "curricula"


@click.command("demo")
@click.option("--headless", is_flag=True, help="No dashboard: print the summary and exit 0.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option(
    "--curricula",
    "curricula_dir",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="Curricula to play (default: the shipped examples).",
)
def demo_cmd(headless: bool, as_json: bool, curricula_dir: Path | None) -> None:
    """Play six weeks of drip in seconds, on a temporary database, a local Telegram emulator and
    a local mail sink, with simulated learners in six time zones.

    One learner blocks the bot after a week (the drip continues by email), one address bounces
    (the drip continues on Telegram). Nothing leaves this machine and nothing is kept.
    """
    from dripper.demo import DAYS, run_demo

    directory = curricula_dir or SHIPPED_CURRICULA
    if not directory.is_dir():
        directory = Path("curricula")

    def progress(day: int, moment: datetime) -> None:
        if not as_json and day % 7 == 0:
            click.echo(f"  day {day:2d} of {DAYS} ({moment:%a %d %b} UTC)", err=True)

    if not as_json:
        click.echo(f"Playing {DAYS} days of drip from {directory} ...", err=True)
    summary = aio.run(run_demo(directory, on_day=progress))
    if as_json:
        click.echo(json.dumps(summary, indent=2, ensure_ascii=False))
        return
    click.echo("\nDeliveries (channel, state, count):")
    for row in summary["deliveries"]:
        click.echo(f"  {row['channel']:<9} {row['state']:<10} {row['n']}")
    click.echo(
        "\nTelegram messages per learner: "
        + ", ".join(f"{name} {n}" for name, n in summary["telegram_messages_per_learner"].items())
    )
    click.echo(
        "Emails per address: "
        + ", ".join(f"{address} {n}" for address, n in summary["emails_per_address"].items())
    )
    actions = summary["learner_actions"]
    click.echo(
        f"\nLearners on Telegram tapped {actions.get('quiz and check-in taps', 0)} answers and "
        f"wrote {actions.get('written replies', 0)} replies; the inbox holds "
        f"{summary['inbox_messages'].get('in', 0)} learner messages."
    )
    click.echo("Quiz answers: " + ", ".join(f"{n} {k}" for k, n in summary["quiz_answers"].items()))
    answer = summary["trainer_answer"]
    if answer.get("arrived_in_chat"):
        click.echo(
            f"\n{answer['learner']} asked: {answer['question']}\n"
            f"The trainer answered: {answer['answer']}\n"
            f"... and it arrived in {answer['learner']}'s Telegram chat."
        )
    click.echo("\nReachability at the end:")
    for row in summary["reachability"]:
        click.echo(
            f"  {row['first_name']:<6} telegram {row['telegram_status']:<12} "
            f"email {row['email_status']}"
        )
    click.echo("\nWhat dripper recorded along the way:")
    seen: set[tuple[str, str]] = set()
    for note in summary["notes"]:
        key = (note["learner"], note["error"])
        if key in seen:
            continue
        seen.add(key)
        click.echo(f"  {note['learner']}, {note['step']}: {note['state']}: {note['error']}")
    if not headless:
        click.echo(
            "\n(The trainers' dashboard, where replies are answered, arrives with `dripper tui`; "
            "this demo ran headless.)"
        )


COMMANDS: list[click.Command] = [demo_cmd]
