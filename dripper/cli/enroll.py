"""Subcommands that put learners on a drip: `enroll`, `cohort ...`, and `apply`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click
from tortoise.expressions import Q
from tortoise.functions import Lower

from dripper.cli.app import AppContext, pass_app
from dripper.cli.common import parse_local_time, with_db
from dripper.curriculum import CheckResult
from dripper.curriculum.checks import find_curriculum
from dripper.engine.wake import notify_wake
from dripper.enrollments.enroll import cohort_named, enroll
from dripper.enrollments.move import move_cohort
from dripper.enrollments.pause import pause_cohort, resume_cohort
from dripper.errors import DripperError
from dripper.learners.roster import ParsedLearners, import_learners, parse_learners_csv
from dripper.models import Cohort, Enrollment, Learner
from dripper.schedule.plan import learner_zone


def read_learner_file(csv_file: Path) -> ParsedLearners:
    """Parse a learners CSV; any rejected row stops the command before anything is written."""
    parsed = parse_learners_csv(csv_file.read_bytes(), str(csv_file))
    for error in parsed.errors:
        click.echo(str(error), err=True)
    if parsed.errors:
        raise DripperError(f"{csv_file}: fix the rows above, then run the command again")
    return parsed


async def select_learners(
    emails_or_handles: tuple[str, ...], everyone: bool, parsed: ParsedLearners | None
) -> list[Learner]:
    """The learners named on the command line, from a CSV (imported first), or all of them."""
    chosen: list[Learner] = []
    if everyone:
        chosen.extend(await Learner.all().order_by("id"))
    if parsed is not None:
        await import_learners(parsed.rows, source=parsed.source)
        emails = [row.email for row in parsed.rows if row.email]
        handles = [row.telegram for row in parsed.rows if row.telegram and not row.email]
        chosen.extend(await Learner.filter(Q(email__in=emails) | Q(telegram_username__in=handles)))
    missing = []
    for wanted in emails_or_handles:
        key = wanted.strip().lower().lstrip("@")
        learner = (
            await Learner.annotate(lower_email=Lower("email")).filter(lower_email=key).first()
            or await Learner.filter(telegram_username=key).first()
        )
        if learner is None:
            missing.append(wanted)
        else:
            chosen.append(learner)
    if missing:
        raise DripperError(
            f"no learner {', '.join(missing)}; import them first with `dripper learners import`"
        )
    unique = {learner.id: learner for learner in chosen}
    return list(unique.values())


@click.command("enroll")
@click.argument("curriculum_id")
@click.option("--cohort", "cohort_name", required=True, help="Cohort name, e.g. 'Excel Dec 2026'.")
@click.option(
    "--course-end",
    required=True,
    help='When the course ended: "2026-12-04 17:00" in the curriculum\'s time zone, or with an '
    "offset.",
)
@click.option(
    "--learners",
    "csv_file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Import this CSV, then enroll everyone in it.",
)
@click.option("--all", "everyone", is_flag=True, help="Enroll every learner in the database.")
@click.option("--learner", "named", multiple=True, help="Email or @telegram handle; repeatable.")
@pass_app
def enroll_cmd(
    app: AppContext,
    curriculum_id: str,
    cohort_name: str,
    course_end: str,
    csv_file: Path | None,
    everyone: bool,
    named: tuple[str, ...],
) -> None:
    """Enroll learners in CURRICULUM_ID as a cohort whose course ended at --course-end.

    Steps are timed from the course end and sent by `dripper run` in each learner's own send
    window. Enrolling the same learner twice in a cohort does nothing.
    """
    if not (csv_file or everyone or named):
        raise click.UsageError("say who to enroll: --learners FILE.csv, --all or --learner EMAIL")
    checked = find_curriculum(Path(app.settings.curricula_dir), curriculum_id)
    curriculum = checked.curriculum
    assert curriculum is not None
    end = parse_local_time(course_end, learner_zone(None, curriculum))

    parsed = read_learner_file(csv_file) if csv_file else None

    async def work() -> None:
        learners = await select_learners(named, everyone, parsed)
        report = await enroll(checked, cohort_name, end, learners, datetime.now(UTC))
        click.echo(
            f"cohort '{report.cohort}' ({curriculum.id}, course end {end:%Y-%m-%d %H:%M} UTC): "
            f"{report.enrolled} enrolled, {report.already} already enrolled, "
            f"{len(report.rejected)} rejected"
        )
        for line in report.rejected:
            click.echo(f"  rejected: {line}", err=True)
        if report.rejected:
            raise SystemExit(1)

    with_db(app.settings.database_url, work)
    notify_wake(app.settings.database_url)


@click.group("cohort")
def cohort_group() -> None:
    """List cohorts, pause and resume them, move their course date."""


@cohort_group.command("list")
@pass_app
def cohort_list(app: AppContext) -> None:
    """Every cohort with its curriculum, course end and learners."""

    async def work() -> None:
        for cohort in await Cohort.all().order_by("course_end"):
            active = await Enrollment.filter(cohort_id=cohort.id, state="active").count()
            paused = await Enrollment.filter(cohort_id=cohort.id, state="paused").count()
            flag = " (paused)" if cohort.paused else ""
            click.echo(
                f"{cohort.name}{flag}: {cohort.curriculum_key}, course end "
                f"{cohort.course_end:%Y-%m-%d %H:%M} UTC, {active} active, {paused} paused"
            )

    with_db(app.settings.database_url, work)


@cohort_group.command("pause")
@click.argument("name")
@pass_app
def cohort_pause(app: AppContext, name: str) -> None:
    """Pause a cohort: nothing more is sent until it is resumed."""

    async def work() -> None:
        count = await pause_cohort(name, datetime.now(UTC))
        click.echo(f"cohort '{name}' paused ({count} enrollments)")

    with_db(app.settings.database_url, work)


@cohort_group.command("resume")
@click.argument("name")
@pass_app
def cohort_resume(app: AppContext, name: str) -> None:
    """Resume a paused cohort; the rest of its drip moves later by the time paused."""

    async def work() -> None:
        report = await resume_cohort(name, datetime.now(UTC))
        still = (
            f"; {report.still_paused} paused by the learner or a trainer stay paused"
            if report.still_paused
            else ""
        )
        click.echo(f"cohort '{name}' resumed ({report.resumed} enrollments{still})")

    with_db(app.settings.database_url, work)
    notify_wake(app.settings.database_url)


@cohort_group.command("move")
@click.argument("name")
@click.option("--course-end", required=True, help='The new course end, e.g. "2026-12-11 17:00".')
@pass_app
def cohort_move(app: AppContext, name: str, course_end: str) -> None:
    """Move a cohort's course date: every unsent step is recomputed, sent ones stay as they are."""

    async def work() -> None:
        cohort = await cohort_named(name)
        checked: CheckResult = find_curriculum(
            Path(app.settings.curricula_dir), cohort.curriculum_key
        )
        assert checked.curriculum is not None
        end = parse_local_time(course_end, learner_zone(None, checked.curriculum))
        report = await move_cohort(name, end, datetime.now(UTC))
        click.echo(
            f"cohort '{name}' now ends {end:%Y-%m-%d %H:%M} UTC: {report.enrollments} "
            f"enrollments replanned, {report.rescheduled} queued deliveries rescheduled"
        )

    with_db(app.settings.database_url, work)
    notify_wake(app.settings.database_url)


@click.command("apply")
@click.option("--yes", is_flag=True, help="Apply without asking.")
@click.option("--dry-run", is_flag=True, help="Only show what would change.")
@pass_app
def apply_cmd(app: AppContext, yes: bool, dry_run: bool) -> None:
    """Move enrollments to the edited versions of their curricula, after showing what changes.

    New steps are scheduled (one whose time has already passed for a learner is recorded as
    skipped, not sent late), removed steps are cancelled where unsent, edited texts are used for
    everything not sent yet, sent steps are untouched. Editing a file alone changes nothing.
    """
    from dripper.enrollments.apply import apply_changes, pending_changes

    directory = Path(app.settings.curricula_dir)

    async def work() -> None:
        items = await pending_changes(directory)
        if not items:
            click.echo("every enrollment runs the current version of its curriculum")
            return
        for item in items:
            assert item.checked.curriculum is not None
            changes = item.changes
            click.echo(
                f"{item.checked.curriculum.id} ({item.checked.path}): {item.enrollments} "
                "enrollments on an older version"
            )
            for label, steps in (
                ("new steps, scheduled", changes.added),
                ("removed steps, cancelled where unsent", changes.removed),
                ("edited steps, new text/timing for unsent ones", changes.edited),
            ):
                if steps:
                    click.echo(f"  {label}: {', '.join(steps)}")
            if changes.window_changed:
                click.echo("  send window, zone or anchor changed: unsent steps are re-timed")
            if changes.empty:
                click.echo("  only comments or formatting changed")
        if dry_run:
            return
        if not yes and not click.confirm("Apply these changes?", default=False):
            raise SystemExit(1)
        report = await apply_changes(items, datetime.now(UTC))
        click.echo(
            f"applied to {report.enrollments} enrollments: {report.cancelled} deliveries "
            f"cancelled, {report.rescheduled} re-timed, {report.skipped_new} new steps already "
            "past (skipped)"
        )

    with_db(app.settings.database_url, work)
    notify_wake(app.settings.database_url)


@click.command("unenroll")
@click.argument("learner")
@click.option("--curriculum", "curriculum_id", help="Only the enrollment in this curriculum.")
@click.option("--cohort", "cohort_name", help="Only the enrollment in this cohort.")
@pass_app
def unenroll_cmd(
    app: AppContext, learner: str, curriculum_id: str | None, cohort_name: str | None
) -> None:
    """Take LEARNER (email or @handle) out of a drip: everything not sent yet is cancelled.

    Without --curriculum or --cohort the learner's only active or paused enrollment; with
    several, name one. What was sent, answered and written stays, for the reports and the
    inbox.
    """
    from tortoise.transactions import in_transaction

    from dripper.store.enrollments import cancel_enrollments

    async def work() -> list[tuple[str, str, int]]:
        [found] = await select_learners((learner,), False, None)
        query = Enrollment.filter(learner_id=found.id, state__in=["active", "paused"])
        if curriculum_id:
            query = query.filter(curriculum__key=curriculum_id)
        if cohort_name:
            query = query.filter(cohort__name=cohort_name)
        chosen = await query.prefetch_related("cohort", "curriculum").order_by("id")
        if not chosen:
            raise DripperError(f"{learner} has no active or paused enrollment{_which()}")
        if len(chosen) > 1 and not (curriculum_id or cohort_name):
            names = ", ".join(f"{e.cohort.name} ({e.curriculum.key})" for e in chosen)
            raise DripperError(
                f"{learner} is enrolled in {names}: say which with --cohort or --curriculum"
            )
        done = []
        now = datetime.now(UTC)
        for enrollment in chosen:
            async with in_transaction() as tx:
                _, cancelled = await cancel_enrollments(tx, [enrollment.id], "unenrolled", now)
            done.append((enrollment.cohort.name, enrollment.curriculum.key, cancelled))
        return done

    def _which() -> str:
        parts = [f"in curriculum {curriculum_id!r}"] if curriculum_id else []
        parts += [f"in cohort {cohort_name!r}"] if cohort_name else []
        return (" " + " and ".join(parts)) if parts else ""

    for cohort, curriculum, cancelled in with_db(app.settings.database_url, work):
        click.echo(
            f"{learner}: unenrolled from {cohort} ({curriculum}); "
            f"{cancelled} unsent message{'s' if cancelled != 1 else ''} cancelled"
        )
