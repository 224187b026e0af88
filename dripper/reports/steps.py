"""The steps read model: one cohort's figures step by step, and every answer to one step."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dripper.curriculum import Checkin, Curriculum, Quiz, StepBase
from dripper.errors import DripperError
from dripper.hints import did_you_mean
from dripper.models import Channel, Cohort, CurriculumVersion
from dripper.reports.common import cohort_named, full_name, rate
from dripper.store import reports as store
from dripper.store.curricula import curriculum_of
from dripper.store.reports import CANCELLED, FAILED, OUTCOMES, SENT, SKIPPED, UNCERTAIN
from dripper.store.sql import as_datetime, as_json

SUMMARY_LENGTH = 60


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
        rows = await store.cohort_versions(cohort.id)
        running: dict[int, int] = defaultdict(int)
        any_version: set[int] = set()
        for row in rows:
            any_version.add(int(row["curriculum_id"]))
            if row["state"] != CANCELLED:
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
    cohort = await cohort_named(cohort_name)
    plan = await _CohortPlan.load(cohort)
    outcomes = await store.step_outcomes(cohort.id)
    replies = await store.step_replies(cohort.id)
    reached = {
        str(row["step_id"]): int(row["n"])
        for row in await store.step_reached_by_cancelled(cohort.id)
    }
    answers = await store.step_choices(cohort.id)
    by_state = {
        str(row["step_id"]): {state: int(row[state] or 0) for state in OUTCOMES} for row in outcomes
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
        # Enrollments running the step, and those cancelled after it reached them.
        planned = plan.planned(step_id) + reached.get(step_id, 0)
        states = by_state.get(step_id, {})
        if not in_curriculum and not (
            planned or any(states.values()) or step_id in replied or answered[step_id]
        ):
            continue
        delivered = states.get(SENT, 0)
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
                failed=states.get(FAILED, 0),
                uncertain=states.get(UNCERTAIN, 0),
                skipped=states.get(SKIPPED, 0),
                replied=replied.get(step_id, 0),
                answered=answered[step_id],
                correct=correct,
                delivered_rate=rate(delivered, planned),
                reply_rate=rate(replied.get(step_id, 0), delivered),
                answer_rate=rate(answered[step_id], delivered) if answerable else None,
                correct_rate=rate(right[step_id], answered[step_id]) if is_quiz else None,
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
    cohort = await cohort_named(cohort_name)
    plan = await _CohortPlan.load(cohort)
    known = [sid for _, sid, _ in await plan.steps()]
    if step_id not in known:
        more = await plan.steps([step_id])
        if not any(sid == step_id and step is not None for step, sid, _ in more):
            raise DripperError(
                f"cohort '{cohort.name}' has no step '{step_id}'{did_you_mean(step_id, known)}; "
                f"its steps: {', '.join(known) or 'none'}"
            )
    messages = await store.answer_messages(cohort.id, step_id)
    choices = await store.answer_choices(cohort.id, step_id)
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
            learner_name=full_name(row["first_name"], row["last_name"]),
            bodies=[],
            choices=[],
        )
    return entry
