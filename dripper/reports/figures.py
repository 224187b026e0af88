"""Figures about cohorts, learners and steps for the dashboard and `dripper report`: read-only.

No UI code: async queries that return frozen dataclasses. Each function runs a fixed handful of
aggregate queries, whatever the number of learners; `learner_rows` pages, and only looks at the
learners of its page after the first query.

Definitions, so that every screen tells the same story:

- A step is *delivered* when its first sending (delivery kind `step`) was sent; reminders and
  re-asks are not counted again. *Failed*, *uncertain* and *skipped* are the other outcomes of
  that first sending.
- A step is *due* when its first sending is in the outbox and its time has come (or it was
  sent). The planner puts steps in the outbox shortly before they are due, so `steps_due`
  counts what `dripper run` has planned so far; `steps_total` is the whole plan.
- A learner *replied* to a step when a message of theirs in the conversation of that
  enrollment is linked to the step (`Message.step_id`). A quiz or check-in is *answered* by
  its first recorded answer to the first asking (`QuizAnswer`, occurrence 0).
- An enrollment is *completed* when it is marked so, or when it is active, every step is in
  the outbox and none still waits to go out (nothing in dripper marks enrollments completed).
  Cancelled enrollments are left out of the planned counts and of progress; what was sent or
  answered before the cancellation still counts.
- Rates are fractions from 0 to 1, None when there is nothing to divide by.

Enrollments of one cohort may run different versions of its curriculum (`dripper apply` moves
them): steps are listed in the order of the newest version the cohort runs, followed by steps
only older versions have. Answers are read against the version the learner ran.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dripper.curriculum import Checkin, Curriculum, Quiz, StepBase
from dripper.db import connection
from dripper.errors import DripperError
from dripper.hints import did_you_mean
from dripper.models import (
    Channel,
    Cohort,
    CurriculumVersion,
    DeliveryKind,
    DeliveryState,
    EnrollmentState,
    MessageDirection,
    Reachability,
)
from dripper.store.curricula import curriculum_of
from dripper.store.sql import as_datetime, as_json, in_list, is_postgres, like_escape, q, ts

_STEP = DeliveryKind.STEP.value
_SENT = DeliveryState.SENT.value
_FAILED = DeliveryState.FAILED.value
_UNCERTAIN = DeliveryState.UNCERTAIN.value
_SKIPPED = DeliveryState.SKIPPED.value
_NOT_SENT = DeliveryState.CANCELLED.value
_CANCELLED = EnrollmentState.CANCELLED.value
_INBOUND = MessageDirection.INBOUND.value

# The enrollment's state, with "completed" derived (see the module docstring). Every value in
# these fragments is one of the constants above: no user input is ever pasted into SQL.
_FINISHED = f"e.state = '{EnrollmentState.ACTIVE.value}' AND e.plan_due_at IS NULL"
_WAITING = (
    f"w.kind = '{_STEP}' AND w.state IN ('{DeliveryState.PENDING.value}', "
    f"'{DeliveryState.CLAIMED.value}', '{DeliveryState.HELD.value}')"
)
_COMPLETED = EnrollmentState.COMPLETED.value
# Per row: a lookup in the delivery index (fastest on SQLite, and for a few enrollments).
_ENROLLMENT_STATE = (
    f"CASE WHEN {_FINISHED} AND NOT EXISTS (SELECT 1 FROM delivery w WHERE "
    f"w.enrollment_id = e.id AND {_WAITING}) THEN '{_COMPLETED}' ELSE e.state END"
)
# For every enrollment on PostgreSQL: one pass over the waiting deliveries, joined as `u`. It
# estimates the lookups per row so dear that its JIT compiler takes longer than the query.
_WAITING_ENROLLMENTS = f"SELECT DISTINCT w.enrollment_id FROM delivery w WHERE {_WAITING}"
_ENROLLMENT_STATES = (
    f"CASE WHEN {_FINISHED} AND u.enrollment_id IS NULL THEN '{_COMPLETED}' ELSE e.state END"
)
# One SUM per outcome rather than a GROUP BY state: SQLite sorts every row it groups.
_OUTCOMES = (_SENT, _FAILED, _UNCERTAIN, _SKIPPED)
_OUTCOME_SUMS = ", ".join(
    f"SUM(CASE WHEN d.state = '{state}' THEN 1 ELSE 0 END) AS {state}" for state in _OUTCOMES
)
SUMMARY_LENGTH = 60
KNOWN_NAMES_SHOWN = 20


@dataclass(frozen=True)
class CohortRow:
    """One cohort, for the Cohorts screen."""

    name: str
    curriculum_key: str
    curriculum_title: str
    course_end: datetime
    paused: bool  # the whole cohort is paused
    learners: int  # enrollments, cancelled ones left out
    learners_active: int
    learners_paused: int
    learners_completed: int
    learners_cancelled: int
    steps_sent: int  # first sendings sent
    steps_due: int  # first sendings in the outbox whose time has come
    steps_total: int  # every step of every (not cancelled) enrollment's plan
    progress: float | None  # steps_sent / steps_due
    overall: float | None  # steps_sent / steps_total
    failed: int  # deliveries of any kind
    uncertain: int


@dataclass(frozen=True)
class LearnerRow:
    """One learner, for the Learners screen (figures limited to one cohort when asked)."""

    learner_id: int
    name: str
    email: str | None
    telegram: str | None  # "@handle"
    telegram_connected: bool  # the learner started the bot: dripper knows their chat
    email_status: Reachability
    telegram_status: Reachability
    timezone: str | None
    opted_out: bool
    cohorts: tuple[str, ...]  # by course end
    enrollment_ids: tuple[int, ...]  # in the same order
    state: EnrollmentState | None  # paused, else active, else completed, else cancelled
    paused_until: datetime | None  # the earliest automatic resume of a paused enrollment
    steps_sent: int
    steps_due: int  # in the outbox and due (or sent), as of `now`
    steps_total: int
    progress: float | None  # steps_sent / steps_total
    failures: int  # failed and uncertain deliveries
    last_failure: str | None  # the reason of the newest one
    last_failure_at: datetime | None
    last_reply_at: datetime | None


@dataclass(frozen=True)
class OptionCount:
    """How many first answers chose one quiz option or check-in button."""

    label: str
    count: int
    correct: bool | None  # for a quiz: whether it is a right option; None for a check-in


@dataclass(frozen=True)
class StepFigures:
    """One step of a cohort's curriculum, for the per-step table and `dripper report`."""

    step_id: str
    kind: str  # tip, question, quiz, checkin ("" for a step no stored version knows)
    when: str  # the step's `after:` as written, e.g. "1w 2d" or "3d 14:00"
    summary: str  # the first line of its text, shortened
    in_curriculum: bool  # False: only older versions of the curriculum have it
    planned: int  # enrollments (not cancelled) whose version has the step
    delivered: int
    failed: int
    uncertain: int
    skipped: int
    replied: int  # learners with a message linked to the step
    answered: int  # quizzes and check-ins: first answers to the first asking
    correct: int | None  # quizzes only
    delivered_rate: float | None  # delivered / planned
    reply_rate: float | None  # replied / delivered
    answer_rate: float | None  # answered / delivered, quizzes and check-ins only
    correct_rate: float | None  # correct / answered, quizzes only
    options: tuple[OptionCount, ...]  # quiz options and check-in buttons, in curriculum order


@dataclass(frozen=True)
class StepAnswer:
    """One learner's answer to one step: their messages, or their choice."""

    learner_id: int
    enrollment_id: int
    conversation_id: int | None
    learner_name: str
    channel: Channel | None  # of the first answer
    answered_at: datetime  # the first answer
    messages: tuple[str, ...]  # bodies of the learner's messages linked to the step, oldest first
    text: str  # the messages joined by blank lines
    choices: tuple[str, ...]  # the chosen option or button texts
    correct: bool | None  # quizzes only


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _name(first: Any, last: Any) -> str:
    return f"{first or ''} {last or ''}".strip()


# --------------------------------------------------------------------------- cohorts


async def cohort_rows(now: datetime) -> list[CohortRow]:
    """Every cohort with its learners, progress and failures, by course end."""
    conn = connection()
    cohorts = await conn.execute_query_dict(
        "SELECT id, name, curriculum_key, course_end, paused FROM cohort ORDER BY course_end, name"
    )
    enrollments = (
        f"SELECT e.cohort_id, e.curriculum_id, {_ENROLLMENT_STATES} AS st FROM enrollment e "
        f"LEFT JOIN ({_WAITING_ENROLLMENTS}) u ON u.enrollment_id = e.id"
        if is_postgres(conn)
        else f"SELECT e.cohort_id, e.curriculum_id, {_ENROLLMENT_STATE} AS st FROM enrollment e"
    )
    states = await conn.execute_query_dict(
        "SELECT x.cohort_id, x.curriculum_id, x.st, COUNT(*) AS n "
        f"FROM ({enrollments}) x GROUP BY x.cohort_id, x.curriculum_id, x.st"
    )
    step_of_live = f"d.kind = '{_STEP}' AND e.state <> '{_CANCELLED}'"
    sums = await conn.execute_query_dict(
        q(
            conn,
            "SELECT e.cohort_id, "
            f"SUM(CASE WHEN {step_of_live} AND d.state = '{_SENT}' THEN 1 ELSE 0 END) AS sent, "
            f"SUM(CASE WHEN {step_of_live} AND d.state <> '{_NOT_SENT}' "
            f"AND (d.state = '{_SENT}' OR d.due_at <= ?) THEN 1 ELSE 0 END) AS due, "
            f"SUM(CASE WHEN d.state = '{_FAILED}' THEN 1 ELSE 0 END) AS failed, "
            f"SUM(CASE WHEN d.state = '{_UNCERTAIN}' THEN 1 ELSE 0 END) AS uncertain "
            "FROM delivery d JOIN enrollment e ON e.id = d.enrollment_id GROUP BY e.cohort_id",
        ),
        [ts(conn, now)],
    )
    by_cohort: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    versions_of: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for row in states:
        cohort_id, state, count = int(row["cohort_id"]), str(row["st"]), int(row["n"])
        by_cohort[cohort_id][state] += count
        if state != _CANCELLED:
            versions_of[cohort_id][int(row["curriculum_id"])] += count
    lengths = {
        version_id: len((await curriculum_of(version_id)).steps)
        for version_id in sorted({v for counts in versions_of.values() for v in counts})
    }
    by_version, by_key = await _titles({str(row["curriculum_key"]) for row in cohorts})
    delivered = {int(row["cohort_id"]): row for row in sums}
    out = []
    for row in cohorts:
        cohort_id = int(row["id"])
        counts = by_cohort[cohort_id]
        figures = delivered.get(cohort_id, {})
        running = versions_of[cohort_id]
        sent = int(figures.get("sent") or 0)
        due = int(figures.get("due") or 0)
        total = sum(lengths[version_id] * n for version_id, n in running.items())
        key = str(row["curriculum_key"])
        newest = max(running, default=0)
        course_end = as_datetime(row["course_end"])
        assert course_end is not None
        out.append(
            CohortRow(
                name=str(row["name"]),
                curriculum_key=key,
                curriculum_title=by_version.get(newest) or by_key.get(key, key),
                course_end=course_end,
                paused=bool(row["paused"]),
                learners=sum(n for state, n in counts.items() if state != _CANCELLED),
                learners_active=counts[EnrollmentState.ACTIVE.value],
                learners_paused=counts[EnrollmentState.PAUSED.value],
                learners_completed=counts[EnrollmentState.COMPLETED.value],
                learners_cancelled=counts[_CANCELLED],
                steps_sent=sent,
                steps_due=due,
                steps_total=total,
                progress=_rate(sent, due),
                overall=_rate(sent, total),
                failed=int(figures.get("failed") or 0),
                uncertain=int(figures.get("uncertain") or 0),
            )
        )
    return out


async def _titles(keys: set[str]) -> tuple[dict[int, str], dict[str, str]]:
    """Curriculum titles by version id, and by key (the newest version's title)."""
    by_version: dict[int, str] = {}
    by_key: dict[str, str] = {}
    if keys:
        rows = (
            await CurriculumVersion.filter(key__in=sorted(keys))
            .order_by("id")
            .values("id", "key", "title")
        )
        for row in rows:
            by_version[int(row["id"])] = by_key[str(row["key"])] = str(row["title"])
    return by_version, by_key


async def _cohort(name: str) -> Cohort:
    """The cohort called `name`; an unknown name is an error that lists the known ones."""
    cohort = await Cohort.get_or_none(name=name)
    if cohort is not None:
        return cohort
    names = [str(n) for n in await Cohort.all().order_by("name").values_list("name", flat=True)]
    if not names:
        raise DripperError(
            f"no cohort named '{name}': there are no cohorts yet (`dripper enroll` creates one)"
        )
    shown = ", ".join(f"'{n}'" for n in names[:KNOWN_NAMES_SHOWN])
    more = f" and {len(names) - KNOWN_NAMES_SHOWN} more" if len(names) > KNOWN_NAMES_SHOWN else ""
    raise DripperError(
        f"no cohort named '{name}'{did_you_mean(name, names)}; known cohorts: {shown}{more}"
    )


# --------------------------------------------------------------------------- steps


@dataclass(frozen=True)
class _CohortPlan:
    """The curriculum versions one cohort runs, and where each step comes from."""

    cohort_id: int
    curriculum_key: str
    running: dict[int, int]  # version id -> enrollments (not cancelled) on it
    versions: dict[int, Curriculum]  # the versions its enrollments run (else the newest stored)
    reference: Curriculum | None  # the newest version the cohort runs (or stored, if none)

    @classmethod
    async def load(cls, cohort: Cohort) -> _CohortPlan:
        conn = connection()
        rows = await conn.execute_query_dict(
            q(
                conn,
                "SELECT curriculum_id, state, COUNT(*) AS n FROM enrollment WHERE cohort_id = ? "
                "GROUP BY curriculum_id, state",
            ),
            [cohort.id],
        )
        running: dict[int, int] = defaultdict(int)
        any_version: set[int] = set()
        for row in rows:
            any_version.add(int(row["curriculum_id"]))
            if row["state"] != _CANCELLED:
                running[int(row["curriculum_id"])] += int(row["n"])
        versions = {version_id: await curriculum_of(version_id) for version_id in any_version}
        newest = max(running or any_version, default=None)
        if newest is None:
            stored = await _stored_versions(cohort.curriculum_key)
            newest = stored[0] if stored else None
            if newest is not None:
                versions[newest] = await curriculum_of(newest)
        return cls(
            cohort.id,
            cohort.curriculum_key,
            dict(running),
            versions,
            versions[newest] if newest is not None else None,
        )

    async def steps(self, also: Iterable[str] = ()) -> list[tuple[StepBase | None, str, bool]]:
        """(definition, id, in the reference version) of every step: the reference version's
        in order, then those only other versions the cohort runs have, then the ids in `also`
        (steps with recorded activity) that no running version has, looked up in older ones."""
        listed: list[tuple[StepBase | None, str, bool]] = []
        seen: set[str] = set()
        if self.reference is not None:
            for step in self.reference.steps:
                listed.append((step, step.id, True))
                seen.add(step.id)
        for version_id in sorted(self.versions, reverse=True):
            for step in self.versions[version_id].steps:
                if step.id not in seen:
                    listed.append((step, step.id, False))
                    seen.add(step.id)
        missing = [step_id for step_id in dict.fromkeys(also) if step_id not in seen]
        if missing:
            found = await self._older_steps(set(missing))
            listed.extend((found.get(step_id), step_id, False) for step_id in missing)
        return listed

    async def _older_steps(self, wanted: set[str]) -> dict[str, StepBase]:
        found: dict[str, StepBase] = {}
        for version_id in await _stored_versions(self.curriculum_key):
            if not wanted - set(found):
                break
            if version_id in self.versions:
                continue
            for step in (await curriculum_of(version_id)).steps:
                if step.id in wanted:
                    found.setdefault(step.id, step)
        return found

    async def version(self, version_id: int) -> Curriculum:
        """A version an enrollment of the cohort runs (`dripper apply` may have just moved it)."""
        return self.versions.get(version_id) or await curriculum_of(version_id)

    def planned(self, step_id: str) -> int:
        return sum(
            count
            for version_id, count in self.running.items()
            if any(step.id == step_id for step in self.versions[version_id].steps)
        )


async def _stored_versions(key: str) -> list[int]:
    """Ids of every stored version of a curriculum, newest first."""
    rows = await CurriculumVersion.filter(key=key).order_by("-id").values("id")
    return [int(row["id"]) for row in rows]


def _summary(step: StepBase | None) -> str:
    if step is None:
        return ""
    line = next((line.strip() for line in step.text.splitlines() if line.strip()), "")
    line = " ".join(line.split())
    return line if len(line) <= SUMMARY_LENGTH else line[: SUMMARY_LENGTH - 1].rstrip() + "…"


def _labels(step: StepBase | None) -> list[str]:
    if isinstance(step, Quiz):
        return list(step.options)
    if isinstance(step, Checkin):
        return list(step.buttons)
    return []


def _chosen(curriculum: Curriculum | None, step_id: str, choices: Sequence[int]) -> list[str]:
    """Option texts of 0-based choices, read against the version the learner ran."""
    labels: list[str] = []
    if curriculum is not None:
        try:
            labels = _labels(curriculum.step(step_id))
        except KeyError:
            labels = []
    return [labels[i] if 0 <= i < len(labels) else f"option {i + 1}" for i in choices]


async def step_figures(cohort_name: str) -> list[StepFigures]:
    """Delivered, replied and answered figures of every step of the cohort's curriculum."""
    conn = connection()
    cohort = await _cohort(cohort_name)
    plan = await _CohortPlan.load(cohort)
    outcomes = await conn.execute_query_dict(
        q(
            conn,
            f"SELECT d.step_id, {_OUTCOME_SUMS} FROM delivery d "
            "JOIN enrollment e ON e.id = d.enrollment_id "
            f"WHERE e.cohort_id = ? AND d.kind = '{_STEP}' GROUP BY d.step_id",
        ),
        [cohort.id],
    )
    replies = await conn.execute_query_dict(
        q(
            conn,
            "SELECT m.step_id, COUNT(DISTINCT c.enrollment_id) AS n FROM message m "
            "JOIN conversation c ON c.id = m.conversation_id "
            "JOIN enrollment e ON e.id = c.enrollment_id "
            f"WHERE e.cohort_id = ? AND m.direction = '{_INBOUND}' AND m.step_id IS NOT NULL "
            "GROUP BY m.step_id",
        ),
        [cohort.id],
    )
    answers = await conn.execute_query_dict(
        q(
            conn,
            "SELECT qa.step_id, e.curriculum_id, CAST(qa.choices AS TEXT) AS choices, "
            "qa.correct, COUNT(*) AS n FROM quiz_answer qa "
            "JOIN enrollment e ON e.id = qa.enrollment_id "
            "WHERE e.cohort_id = ? AND qa.occurrence = 0 "
            "GROUP BY qa.step_id, e.curriculum_id, CAST(qa.choices AS TEXT), qa.correct",
        ),
        [cohort.id],
    )
    by_state = {
        str(row["step_id"]): {state: int(row[state] or 0) for state in _OUTCOMES}
        for row in outcomes
    }
    replied = {str(row["step_id"]): int(row["n"]) for row in replies}
    answered: dict[str, int] = defaultdict(int)
    right: dict[str, int] = defaultdict(int)
    picked: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in answers:
        step_id, count = str(row["step_id"]), int(row["n"])
        answered[step_id] += count
        if row["correct"] is not None and bool(row["correct"]):
            right[step_id] += count
        version = await plan.version(int(row["curriculum_id"]))
        choices = [int(c) for c in as_json(row["choices"])]
        for label in _chosen(version, step_id, choices):
            picked[step_id][label] += count

    active = [*by_state, *replied, *answered]
    figures = []
    for step, step_id, in_curriculum in await plan.steps(active):
        planned = plan.planned(step_id)
        states = by_state.get(step_id, {})
        if not in_curriculum and not (
            planned or any(states.values()) or step_id in replied or answered[step_id]
        ):
            continue
        delivered = states.get(_SENT, 0)
        is_quiz = isinstance(step, Quiz)
        answerable = isinstance(step, Quiz | Checkin) or answered[step_id] > 0
        correct = right[step_id] if is_quiz else None
        figures.append(
            StepFigures(
                step_id=step_id,
                kind=getattr(step, "kind", ""),
                when=str(step.after) if step is not None else "",
                summary=_summary(step),
                in_curriculum=in_curriculum,
                planned=planned,
                delivered=delivered,
                failed=states.get(_FAILED, 0),
                uncertain=states.get(_UNCERTAIN, 0),
                skipped=states.get(_SKIPPED, 0),
                replied=replied.get(step_id, 0),
                answered=answered[step_id],
                correct=correct,
                delivered_rate=_rate(delivered, planned),
                reply_rate=_rate(replied.get(step_id, 0), delivered),
                answer_rate=_rate(answered[step_id], delivered) if answerable else None,
                correct_rate=_rate(right[step_id], answered[step_id]) if is_quiz else None,
                options=_option_counts(step, picked.get(step_id, {})),
            )
        )
    return figures


def _option_counts(step: StepBase | None, counts: dict[str, int]) -> tuple[OptionCount, ...]:
    """Every option of the step in curriculum order (zero counts included), then any other
    label an older version offered."""
    labels = _labels(step)
    right = set(step.correct_options) if isinstance(step, Quiz) else None
    ordered = labels + [label for label in counts if label not in labels]
    return tuple(
        OptionCount(label, counts.get(label, 0), None if right is None else label in right)
        for label in ordered
    )


async def step_answers(cohort_name: str, step_id: str) -> list[StepAnswer]:
    """Every learner's answer to one step of a cohort, side by side, first answers first."""
    conn = connection()
    cohort = await _cohort(cohort_name)
    plan = await _CohortPlan.load(cohort)
    known = [sid for _, sid, _ in await plan.steps()]
    if step_id not in known:
        more = await plan.steps([step_id])
        if not any(sid == step_id and step is not None for step, sid, _ in more):
            raise DripperError(
                f"cohort '{cohort.name}' has no step '{step_id}'{did_you_mean(step_id, known)}; "
                f"its steps: {', '.join(known) or 'none'}"
            )
    messages = await conn.execute_query_dict(
        q(
            conn,
            "SELECT e.id AS enrollment_id, e.learner_id, l.first_name, l.last_name, "
            "c.id AS conversation_id, m.body, m.channel, m.created_at FROM message m "
            "JOIN conversation c ON c.id = m.conversation_id "
            "JOIN enrollment e ON e.id = c.enrollment_id JOIN learner l ON l.id = e.learner_id "
            f"WHERE e.cohort_id = ? AND m.direction = '{_INBOUND}' AND m.step_id = ? "
            "ORDER BY m.created_at, m.id",
        ),
        [cohort.id, step_id],
    )
    choices = await conn.execute_query_dict(
        q(
            conn,
            "SELECT e.id AS enrollment_id, e.learner_id, e.curriculum_id, l.first_name, "
            "l.last_name, c.id AS conversation_id, qa.choices, qa.correct, qa.channel, "
            "qa.answered_at FROM quiz_answer qa JOIN enrollment e ON e.id = qa.enrollment_id "
            "JOIN learner l ON l.id = e.learner_id "
            "LEFT JOIN conversation c ON c.enrollment_id = e.id "
            "WHERE e.cohort_id = ? AND qa.step_id = ? AND qa.occurrence = 0",
        ),
        [cohort.id, step_id],
    )
    gathered: dict[int, _Gathered] = {}
    for row in messages:
        entry = _gathered(gathered, row)
        entry.bodies.append(str(row["body"]))
        entry.saw(as_datetime(row["created_at"]), row["channel"])
    for row in choices:
        entry = _gathered(gathered, row)
        version = await plan.version(int(row["curriculum_id"]))
        entry.choices = _chosen(version, step_id, [int(c) for c in as_json(row["choices"])])
        entry.correct = None if row["correct"] is None else bool(row["correct"])
        entry.saw(as_datetime(row["answered_at"]), row["channel"])
    answers = [entry.answer() for entry in gathered.values()]
    answers.sort(key=lambda a: (a.answered_at, a.learner_name.casefold(), a.enrollment_id))
    return answers


@dataclass
class _Gathered:
    learner_id: int
    enrollment_id: int
    conversation_id: int | None
    learner_name: str
    bodies: list[str]
    choices: list[str]
    correct: bool | None = None
    first_at: datetime | None = None
    channel: Channel | None = None

    def saw(self, moment: datetime | None, channel: Any) -> None:
        if moment is not None and (self.first_at is None or moment < self.first_at):
            self.first_at = moment
            self.channel = Channel(channel) if channel else None

    def answer(self) -> StepAnswer:
        assert self.first_at is not None
        return StepAnswer(
            learner_id=self.learner_id,
            enrollment_id=self.enrollment_id,
            conversation_id=self.conversation_id,
            learner_name=self.learner_name,
            channel=self.channel,
            answered_at=self.first_at,
            messages=tuple(self.bodies),
            text="\n\n".join(self.bodies),
            choices=tuple(self.choices),
            correct=self.correct,
        )


def _gathered(gathered: dict[int, _Gathered], row: dict[str, Any]) -> _Gathered:
    enrollment_id = int(row["enrollment_id"])
    entry = gathered.get(enrollment_id)
    if entry is None:
        conversation = row["conversation_id"]
        entry = gathered[enrollment_id] = _Gathered(
            learner_id=int(row["learner_id"]),
            enrollment_id=enrollment_id,
            conversation_id=None if conversation is None else int(conversation),
            learner_name=_name(row["first_name"], row["last_name"]),
            bodies=[],
            choices=[],
        )
    return entry


# --------------------------------------------------------------------------- learners


def _learner_filter(cohort_id: int | None, search: str | None) -> tuple[str, list[Any]]:
    """WHERE clause (with `?` placeholders) and parameters for the learners of a page."""
    clauses: list[str] = []
    params: list[Any] = []
    if cohort_id is not None:
        clauses.append(
            "EXISTS (SELECT 1 FROM enrollment f WHERE f.learner_id = l.id AND f.cohort_id = ?)"
        )
        params.append(cohort_id)
    term = (search or "").strip().casefold()
    if term:
        pattern = f"%{like_escape(term)}%"
        columns = (
            "l.first_name || ' ' || l.last_name",
            "COALESCE(l.email, '')",
            "'@' || COALESCE(l.telegram_username, '')",
        )
        clauses.append(
            "(" + " OR ".join(f"LOWER({column}) LIKE ? ESCAPE '\\'" for column in columns) + ")"
        )
        params.extend([pattern] * len(columns))
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


async def learner_count(*, cohort: str | None = None, search: str | None = None) -> int:
    """How many learners `learner_rows` pages through with the same filters."""
    conn = connection()
    cohort_id = (await _cohort(cohort)).id if cohort is not None else None
    where, params = _learner_filter(cohort_id, search)
    rows = await conn.execute_query_dict(
        q(conn, f"SELECT COUNT(*) AS n FROM learner l{where}"), params
    )
    return int(rows[0]["n"])


async def learner_rows(
    now: datetime,
    *,
    cohort: str | None = None,
    search: str | None = None,
    limit: int = 200,
    offset: int = 0,
) -> list[LearnerRow]:
    """A page of learners by name, with channels, enrollments, progress, failures and replies.

    `cohort` keeps the learners enrolled in it and limits every figure to that enrollment;
    `search` keeps those whose name, email or @handle contains the text (case is ignored).
    """
    conn = connection()
    cohort_id = (await _cohort(cohort)).id if cohort is not None else None
    where, params = _learner_filter(cohort_id, search)
    learners = await conn.execute_query_dict(
        q(
            conn,
            "SELECT l.id, l.first_name, l.last_name, l.email, l.telegram_username, "
            "l.telegram_chat_id, l.email_status, l.telegram_status, l.timezone, l.opted_out_at "
            f"FROM learner l{where} ORDER BY LOWER(l.first_name), LOWER(l.last_name), l.id "
            "LIMIT ? OFFSET ?",
        ),
        [*params, max(limit, 0), max(offset, 0)],
    )
    ids = [int(row["id"]) for row in learners]
    if not ids:
        return []
    enrollments = await _enrollments(ids, cohort_id)
    sent = await _step_counts([e.id for e in enrollments], now)
    failures = await _failures(ids, cohort_id)
    replies = await _last_replies(ids, cohort_id)
    lengths = {
        version_id: len((await curriculum_of(version_id)).steps)
        for version_id in sorted({e.curriculum_id for e in enrollments})
    }
    mine: dict[int, list[_Enrolled]] = defaultdict(list)
    for enrollment in enrollments:
        mine[enrollment.learner_id].append(enrollment)
    out = []
    for row in learners:
        learner_id = int(row["id"])
        own = mine.get(learner_id, [])
        live = [e for e in own if e.state != _CANCELLED]
        steps_sent = sum(sent.get(e.id, (0, 0))[0] for e in live)
        steps_due = sum(sent.get(e.id, (0, 0))[1] for e in live)
        steps_total = sum(lengths[e.curriculum_id] for e in live)
        failed = failures.get(learner_id, [])
        handle = row["telegram_username"]
        resumes = [e.resume_at for e in own if e.state == "paused" and e.resume_at is not None]
        out.append(
            LearnerRow(
                learner_id=learner_id,
                name=_name(row["first_name"], row["last_name"]),
                email=row["email"],
                telegram=f"@{handle}" if handle else None,
                telegram_connected=row["telegram_chat_id"] is not None,
                email_status=Reachability(row["email_status"]),
                telegram_status=Reachability(row["telegram_status"]),
                timezone=row["timezone"],
                opted_out=row["opted_out_at"] is not None,
                cohorts=tuple(e.cohort for e in own),
                enrollment_ids=tuple(e.id for e in own),
                state=_summary_state(e.state for e in own),
                paused_until=min(resumes) if resumes else None,
                steps_sent=steps_sent,
                steps_due=steps_due,
                steps_total=steps_total,
                progress=_rate(steps_sent, steps_total),
                failures=len(failed),
                last_failure=failed[0][0] if failed else None,
                last_failure_at=failed[0][1] if failed else None,
                last_reply_at=replies.get(learner_id),
            )
        )
    return out


_STATE_PRIORITY = (
    EnrollmentState.PAUSED,
    EnrollmentState.ACTIVE,
    EnrollmentState.COMPLETED,
    EnrollmentState.CANCELLED,
)


def _summary_state(states: Iterable[str]) -> EnrollmentState | None:
    present = set(states)
    return next((state for state in _STATE_PRIORITY if state.value in present), None)


@dataclass(frozen=True)
class _Enrolled:
    id: int
    learner_id: int
    curriculum_id: int
    cohort: str
    state: str
    resume_at: datetime | None


async def _enrollments(learner_ids: Sequence[int], cohort_id: int | None) -> list[_Enrolled]:
    conn = connection()
    only = " AND e.cohort_id = ?" if cohort_id is not None else ""
    rows = await conn.execute_query_dict(
        q(
            conn,
            f"SELECT e.id, e.learner_id, e.curriculum_id, e.resume_at, c.name, "
            f"{_ENROLLMENT_STATE} AS st FROM enrollment e JOIN cohort c ON c.id = e.cohort_id "
            f"WHERE e.learner_id IN {in_list(conn, len(learner_ids))}{only} "
            "ORDER BY c.course_end, c.name",
        ),
        [*learner_ids, *([cohort_id] if cohort_id is not None else [])],
    )
    return [
        _Enrolled(
            id=int(row["id"]),
            learner_id=int(row["learner_id"]),
            curriculum_id=int(row["curriculum_id"]),
            cohort=str(row["name"]),
            state=str(row["st"]),
            resume_at=as_datetime(row["resume_at"]),
        )
        for row in rows
    ]


async def _step_counts(enrollment_ids: Sequence[int], now: datetime) -> dict[int, tuple[int, int]]:
    """(sent, due) first sendings of each enrollment."""
    if not enrollment_ids:
        return {}
    conn = connection()
    rows = await conn.execute_query_dict(
        q(
            conn,
            f"SELECT enrollment_id, SUM(CASE WHEN state = '{_SENT}' THEN 1 ELSE 0 END) AS sent, "
            f"SUM(CASE WHEN state <> '{_NOT_SENT}' AND (state = '{_SENT}' OR due_at <= ?) "
            "THEN 1 ELSE 0 END) AS due FROM delivery "
            f"WHERE enrollment_id IN {in_list(conn, len(enrollment_ids))} "
            f"AND kind = '{_STEP}' GROUP BY enrollment_id",
        ),
        [ts(conn, now), *enrollment_ids],
    )
    return {
        int(row["enrollment_id"]): (int(row["sent"] or 0), int(row["due"] or 0)) for row in rows
    }


async def _failures(
    learner_ids: Sequence[int], cohort_id: int | None
) -> dict[int, list[tuple[str | None, datetime | None]]]:
    """Failed and uncertain deliveries of each learner, newest first: (reason, when)."""
    conn = connection()
    join = (
        " JOIN enrollment e ON e.id = d.enrollment_id AND e.cohort_id = ?"
        if cohort_id is not None
        else ""
    )
    rows = await conn.execute_query_dict(
        q(
            conn,
            f"SELECT d.learner_id, d.last_error, d.updated_at FROM delivery d{join} "
            f"WHERE d.learner_id IN {in_list(conn, len(learner_ids))} "
            f"AND d.state IN ('{_FAILED}', '{_UNCERTAIN}') "
            "ORDER BY d.updated_at DESC, d.id DESC",
        ),
        [*([cohort_id] if cohort_id is not None else []), *learner_ids],
    )
    found: dict[int, list[tuple[str | None, datetime | None]]] = defaultdict(list)
    for row in rows:
        found[int(row["learner_id"])].append((row["last_error"], as_datetime(row["updated_at"])))
    return found


async def _last_replies(learner_ids: Sequence[int], cohort_id: int | None) -> dict[int, datetime]:
    conn = connection()
    join = (
        " JOIN enrollment e ON e.id = c.enrollment_id AND e.cohort_id = ?"
        if cohort_id is not None
        else ""
    )
    rows = await conn.execute_query_dict(
        q(
            conn,
            "SELECT c.learner_id, MAX(m.created_at) AS t FROM message m "
            f"JOIN conversation c ON c.id = m.conversation_id{join} "
            f"WHERE c.learner_id IN {in_list(conn, len(learner_ids))} "
            f"AND m.direction = '{_INBOUND}' GROUP BY c.learner_id",
        ),
        [*([cohort_id] if cohort_id is not None else []), *learner_ids],
    )
    found = {}
    for row in rows:
        moment = as_datetime(row["t"])
        if moment is not None:
            found[int(row["learner_id"])] = moment
    return found
