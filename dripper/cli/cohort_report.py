"""`dripper report`: a cohort's figures step by step, as a table or CSV, and one step's answers."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from datetime import UTC, datetime

import click

from dripper.cli.app import AppContext, pass_app
from dripper.cli.common import with_db
from dripper.csvout import csv_text
from dripper.reports.steps import OptionCount, StepAnswer, StepFigures, step_answers, step_figures

FIGURE_COLUMNS = (
    "step",
    "kind",
    "when",
    "summary",
    "in_curriculum",
    "planned",
    "delivered",
    "delivered_rate",
    "failed",
    "uncertain",
    "skipped",
    "replied",
    "reply_rate",
    "answered",
    "answer_rate",
    "correct",
    "correct_rate",
    "options",
)
ANSWER_COLUMNS = ("learner", "channel", "answered_at", "choices", "correct", "text")
# A spreadsheet runs a cell that starts with one of these as a formula ("=XLOOKUP(...)" is a
# quiz option in the example curriculum): such a cell is written with a leading apostrophe.


@click.command("report")
@click.option("--cohort", "cohort_name", required=True, help="The cohort, e.g. 'Excel Dec'.")
@click.option("--step", "step_id", help="Every learner's answer to this step (its id).")
@click.option("--csv", "as_csv", is_flag=True, help="CSV with a header row, to stdout.")
@pass_app
def report_cmd(app: AppContext, cohort_name: str, step_id: str | None, as_csv: bool) -> None:
    """Per-step figures of a cohort: planned, delivered, failed, replied, answered and correct.

    With --step, the answers to that step side by side (with --csv: only the answers).
    Rates are fractions in the CSV (3 decimals), percentages in the table.
    """

    async def load() -> tuple[list[StepFigures], list[StepAnswer] | None]:
        figures = await step_figures(cohort_name)
        answers = await step_answers(cohort_name, step_id) if step_id is not None else None
        return figures, answers

    figures, answers = with_db(app.settings.database_url, load)
    if as_csv:
        if answers is not None:
            click.echo(answers_csv(answers), nl=False)
        else:
            click.echo(figures_csv(figures), nl=False)
        return
    click.echo(figures_table(figures))
    if answers is not None and step_id is not None:
        click.echo("")
        click.echo(answers_text(step_id, figures, answers))


def _rate_csv(rate: float | None) -> str:
    return "" if rate is None else f"{rate:.3f}"


def _rate_text(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.1%}"


def _options(figure: StepFigures) -> str:
    return "; ".join(f"{option.label}={option.count}" for option in figure.options)


def figures_csv(figures: Sequence[StepFigures]) -> str:
    return csv_text(
        FIGURE_COLUMNS,
        [
            [
                f.step_id,
                f.kind,
                f.when,
                f.summary,
                "true" if f.in_curriculum else "false",
                f.planned,
                f.delivered,
                _rate_csv(f.delivered_rate),
                f.failed,
                f.uncertain,
                f.skipped,
                f.replied,
                _rate_csv(f.reply_rate),
                f.answered,
                _rate_csv(f.answer_rate),
                "" if f.correct is None else f.correct,
                _rate_csv(f.correct_rate),
                _options(f),
            ]
            for f in figures
        ],
    )


def _when(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _correct(correct: bool | None) -> str:
    return "" if correct is None else ("true" if correct else "false")


def answers_csv(answers: Sequence[StepAnswer]) -> str:
    return csv_text(
        ANSWER_COLUMNS,
        [
            [
                a.learner_name,
                a.channel.value if a.channel else "",
                a.answered_at.astimezone(UTC).isoformat(timespec="seconds"),
                "; ".join(a.choices),
                _correct(a.correct),
                a.text,
            ]
            for a in answers
        ],
    )


def _printable(text: str) -> str:
    """Text fit for one terminal line: line breaks and tabs as spaces, other control characters
    (ANSI escapes, bells) removed."""
    text = text.replace("\r\n", " ").replace("\n", " ").replace("\t", " ")
    return "".join(char for char in text if unicodedata.category(char) != "Cc")


def _aligned(header: Sequence[str], rows: Sequence[Sequence[str]], numeric: set[int]) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def figures_table(figures: Sequence[StepFigures]) -> str:
    """The figures as aligned columns; quiz and check-in choices on a line below their step."""
    if not figures:
        return "no steps"
    header = (
        "step",
        "kind",
        "when",
        "planned",
        "delivered",
        "failed",
        "uncertain",
        "skipped",
        "replied",
        "reply",
        "answered",
        "correct",
    )
    rows = [
        (
            f.step_id if f.in_curriculum else f"{f.step_id}*",
            f.kind,
            f.when,
            str(f.planned),
            str(f.delivered),
            str(f.failed),
            str(f.uncertain),
            str(f.skipped),
            str(f.replied),
            _rate_text(f.reply_rate),
            str(f.answered) if f.answer_rate is not None else "-",
            _rate_text(f.correct_rate),
        )
        for f in figures
    ]
    table = _aligned(header, rows, numeric=set(range(3, len(header))))
    lines = table[:1]
    for figure, line in zip(figures, table[1:], strict=True):
        lines.append(line)
        if figure.options:
            lines.append("    " + _printable(", ".join(_option(o) for o in figure.options)))
    if not all(f.in_curriculum for f in figures):
        lines.append("* no longer in the curriculum the cohort runs")
    return "\n".join(lines)


def _option(option: OptionCount) -> str:
    return f"{option.label}{' (right)' if option.correct else ''}: {option.count}"


def answers_text(
    step_id: str, figures: Sequence[StepFigures], answers: Sequence[StepAnswer]
) -> str:
    figure = next((f for f in figures if f.step_id == step_id), None)
    head = f"answers to {step_id}"
    if figure is not None:
        head += f" ({figure.kind}, {figure.when}): {len(answers)} of {figure.delivered} delivered"
    lines = [head]
    if not answers:
        lines.append("  nobody has answered yet")
    for answer in answers:
        parts = [
            _printable(answer.learner_name),
            answer.channel.value if answer.channel else "-",
            _when(answer.answered_at),
        ]
        if answer.choices:
            verdict = {True: " (right)", False: " (wrong)", None: ""}[answer.correct]
            parts.append(_printable(", ".join(answer.choices)) + verdict)
        lines.append(" · ".join(parts))
        for body in answer.messages:
            for text_line in body.splitlines() or [""]:
                lines.append("    " + _printable(text_line))
    return "\n".join(lines)
