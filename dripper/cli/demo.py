"""`dripper demo`: see the whole drip work before having a bot token or a mail server."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from dripper import aio
from dripper.shipped import example_curricula

if TYPE_CHECKING:
    from dripper.demo.mail import ImapChoice
    from dripper.demo.play import OpenDashboard


@click.command("demo")
@click.option("--headless", is_flag=True, help="No dashboard: print the summary and exit 0.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option(
    "--curricula",
    "curricula_dir",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="Curricula to play (default: the shipped examples).",
)
@click.option(
    "--imap",
    type=click.Choice(["auto", "dovecot", "embedded"]),
    default="auto",
    show_default=True,
    envvar="DRIPPER_DEMO_IMAP",
    help="The local mailbox learners reply to: Dovecot when installed and run as root (auto), "
    "or the embedded pure-Python IMAP server. Also DRIPPER_DEMO_IMAP.",
)
def demo_cmd(headless: bool, as_json: bool, curricula_dir: Path | None, imap: ImapChoice) -> None:
    """Play six weeks of drip in seconds, on a temporary database, a local Telegram emulator,
    a local mail sink and a local IMAP mailbox, with simulated learners in six time zones.

    One learner blocks the bot after a week (the drip continues by email), one address bounces
    (the drip continues on Telegram), one replies by email, one is away and her mailbox answers
    with an out-of-office note. The trainer hears of each learner message in her own Telegram
    chat and answers one from there. Then the trainers' dashboard opens on the inbox: answer a
    learner and watch the answer arrive in their chat or mailbox (q quits, then the summary is
    printed). Nothing leaves this machine and nothing is kept.
    """
    from dripper.demo.play import DAYS, run_demo

    directory = curricula_dir or example_curricula()
    dashboard, no_dashboard = (None, "") if headless or as_json else _dashboard()

    def progress(day: int, moment: datetime) -> None:
        if not as_json and day % 7 == 0:
            click.echo(f"  day {day:2d} of {DAYS} ({moment:%a %d %b} UTC)", err=True)

    if not as_json:
        click.echo(f"Playing {DAYS} days of drip from {directory} ...", err=True)
    if dashboard is not None:
        click.echo(
            "At the end the dashboard opens on the inbox: Enter opens a conversation, r replies, "
            "ctrl+s sends, ? lists every key, q quits.",
            err=True,
        )
    summary = aio.run(run_demo(directory, on_day=progress, imap=imap, dashboard=dashboard))
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
    by_channel = summary["inbox_messages_in_by_channel"]
    click.echo(
        f"\nLearners on Telegram tapped {actions.get('quiz and check-in taps', 0)} answers and "
        f"wrote {actions.get('written replies', 0)} replies; the inbox holds "
        f"{summary['inbox_messages'].get('in', 0)} learner messages "
        f"({by_channel.get('telegram', 0)} by Telegram, {by_channel.get('email', 0)} by email)."
    )
    _echo_email(summary["email"])
    click.echo("Quiz answers: " + ", ".join(f"{n} {k}" for k, n in summary["quiz_answers"].items()))
    chat = summary["trainer_chat"]
    click.echo(
        f"\nThe trainer's own Telegram chat got {chat['notifications']} notifications of "
        f"learner messages and {chat['digests']} morning digests."
    )
    answer = summary["trainer_answer"]
    if answer.get("arrived_in_chat"):
        click.echo(
            f"{answer['learner']} asked: {answer['question']}\n"
            f"The trainer replied to the notification in her chat: {answer['answer']}\n"
            f"... and it arrived in {answer['learner']}'s Telegram chat."
        )
    if summary["channel_changes"]:
        click.echo("Channel changes, as the conversations show them:")
        for line in summary["channel_changes"]:
            click.echo(f"  {line}")
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
    for answer in summary.get("dashboard_answers", []):
        where = "Telegram chat" if answer["channel"] == "telegram" else "mailbox"
        arrived = "arrived in" if answer["arrived"] == "yes" else "did NOT arrive in"
        click.echo(
            f"\nYou answered {answer['learner']} from the dashboard: {answer['answer']}\n"
            f"... and it {arrived} {answer['learner']}'s {where}."
        )
    if no_dashboard:
        click.echo(f"\n(No dashboard: {no_dashboard}.)")


def _dashboard() -> tuple[OpenDashboard | None, str]:
    """The dashboard the `dripper.dashboard` entry point provides, or why there is none."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        return None, "not a terminal; `dripper demo --headless` skips it on purpose"
    found = list(entry_points(group="dripper.dashboard"))
    if not found:
        return None, "the dashboard package (tui) is not installed"
    dashboard: OpenDashboard = found[0].load()
    return dashboard, ""


def _echo_email(email: dict[str, Any]) -> None:
    sent, classified = email["learner_emails"], email["classified"]
    click.echo(
        f"\nEmail replies went to an IMAP mailbox on {email['imap_server_note']}.\n"
        f"Learners sent it {sum(sent.values())} emails ("
        + ", ".join(f"{kind} {n}" for kind, n in sent.items())
        + f"); dripper's IMAP poller stored {email['stored_by_the_poller']} and classified "
        "them: " + ", ".join(f"{kind} {n}" for kind, n in classified.items()) + "."
    )
    for reply in email["replies"][:1]:
        if reply["in_inbox"]:
            click.echo(
                f"{reply['learner']} wrote back to {reply['answers_step']!r} by email: "
                f"{reply['body']}\n... filed in the inbox under {reply['filed_under_step']!r}."
            )
    for answer in email.get("answers", [])[:1]:
        if answer["feedback"]:
            where = "and filed in the inbox" if answer["in_inbox"] else "kept out of the inbox"
            first = answer["feedback"].splitlines()[0]
            click.echo(
                f"{answer['learner']} answered {answer['answers_step']!r} by email with "
                f"{answer['answer']!r}: recorded, {where}, and answered in the thread "
                f"({answer['feedback_state']}): {first}"
            )
    away = email["out_of_office"]
    if away is not None and away["stored"]:
        where = "kept out of the inbox" if not away["inbox_messages"] else "FILED in the inbox"
        click.echo(
            f"{away['learner']}'s out-of-office auto-reply was stored, recognised "
            f"({away['verdict']}) and {where}."
        )
