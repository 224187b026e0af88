"""Quiz and check-in answers, whatever the channel: record the first one, plan the re-ask.

`record_quiz_answer` is the one place an answer is stored: the email receiver calls it for a
reply such as "2" or "1, 3", the Telegram receiver for a button tap. The first answer to one
asking (enrollment, step, occurrence) wins, enforced by the database's unique constraint; a
second answer is reported as ALREADY_ANSWERED with the answer that counts. Correctness comes
from the curriculum version the enrollment runs. A quiz with `reask_after` gets its spaced
repetition planned as a REASK delivery (business key "<enrollment>:<step>:<occurrence + 1>", so
a double answer cannot plan two), and pending nudges for the step are cancelled, all in one
transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from tortoise.transactions import in_transaction

from dripper.content.compose import CourseView, LearnerView
from dripper.curriculum import Checkin, Curriculum, Quiz
from dripper.models import Channel, Cohort, DeliveryKind, Enrollment, Learner
from dripper.schedule.keys import step_key
from dripper.schedule.plan import learner_zone, plan_reask, window_of
from dripper.schedule.slots import expires_at
from dripper.store.answers import first_answer, insert_answer, right_answers
from dripper.store.curricula import curriculum_of
from dripper.store.enrollments import reactivate
from dripper.store.outbox import NewDelivery, cancel_nudges, insert_in


class AnswerStatus(StrEnum):
    RECORDED = "recorded"
    ALREADY_ANSWERED = "already-answered"  # the first answer stands; `choices` is that one
    INVALID = "invalid"  # not a quiz or check-in, or choices that do not fit its options


@dataclass(frozen=True)
class AnswerResult:
    status: AnswerStatus
    choices: tuple[int, ...] = ()  # 0-based option indexes of the answer that counts
    correct: bool | None = None  # None for a check-in (no right answer) and when INVALID
    reask_at: datetime | None = None  # when the quiz is asked again (RECORDED only)
    explanation: str | None = None  # the step's explanation template, to show after answering
    reason: str = ""  # why INVALID, in words fit for a trainer


def _invalid(reason: str) -> AnswerResult:
    return AnswerResult(AnswerStatus.INVALID, reason=reason)


async def record_quiz_answer(
    enrollment_id: int,
    step_id: str,
    occurrence: int,
    choices: list[int],
    channel: Channel,
    now: datetime,
) -> AnswerResult:
    """Record an answer (0-based option indexes) to one asking of a quiz or check-in.

    Never raises for a bad answer: a step that is not a quiz or check-in, an index out of range
    or several choices for a single-choice question return INVALID and change nothing.
    """
    enrollment = await Enrollment.get_or_none(id=enrollment_id)
    if enrollment is None:
        return _invalid(f"no enrollment {enrollment_id}")
    curriculum = await curriculum_of(enrollment.curriculum_id)  # type: ignore[attr-defined]
    try:
        step = curriculum.step(step_id)
    except KeyError:
        return _invalid(f"step '{step_id}' is not in the enrollment's curriculum")
    if not isinstance(step, Quiz | Checkin):
        return _invalid(f"step '{step_id}' is a {getattr(step, 'kind', '?')}, not a quiz")
    labels = step.options if isinstance(step, Quiz) else step.buttons
    picked = tuple(sorted(set(choices)))
    if not picked or any(index < 0 or index >= len(labels) for index in picked):
        return _invalid(f"choose between 1 and {len(labels)}")
    multiple = isinstance(step, Quiz) and step.multiple
    if len(picked) > 1 and not multiple:
        return _invalid("only one answer may be chosen")
    correct: bool | None = None
    explanation: str | None = None
    if isinstance(step, Quiz):
        correct = {labels[i] for i in picked} == set(step.correct_options)
        explanation = step.explanation

    learner = await Learner.get(id=enrollment.learner_id)  # type: ignore[attr-defined]
    async with in_transaction() as tx:
        inserted = await insert_answer(
            tx, enrollment_id, step_id, occurrence, picked, correct, channel, now
        )
        if not inserted:
            first_choices, first_correct = await first_answer(
                tx, enrollment_id, step_id, occurrence
            )
            return AnswerResult(
                AnswerStatus.ALREADY_ANSWERED, first_choices, first_correct, None, explanation
            )
        reask_at = None
        if isinstance(step, Quiz) and correct is not None:
            right_so_far = await right_answers(tx, enrollment_id, step_id)
            tz = learner_zone(learner.timezone, curriculum)
            window = window_of(curriculum)
            reask_at = plan_reask(step, now, correct, right_so_far, window, tz, enrollment_id)
            if reask_at is not None:
                await insert_in(
                    tx,
                    [
                        NewDelivery(
                            business_key=step_key(enrollment_id, step_id, occurrence + 1),
                            enrollment_id=enrollment_id,
                            learner_id=learner.id,
                            kind=DeliveryKind.REASK.value,
                            step_id=step_id,
                            occurrence=occurrence + 1,
                            channel_preference=step.channel,
                            due_at=reask_at,
                            expires_at=expires_at(reask_at, window),
                            payload={},
                        )
                    ],
                    now,
                )
                await reactivate(tx, enrollment_id)  # a finished drip has this re-ask to send
        await cancel_nudges(enrollment_id, step_id, now, tx)
    return AnswerResult(AnswerStatus.RECORDED, picked, correct, reask_at, explanation)


def explanation_context(learner: Learner, cohort: Cohort, curriculum: Curriculum) -> dict[str, Any]:
    """What a step's explanation template sees once the learner has answered, on any channel."""
    return {
        "learner": LearnerView(
            first_name=learner.first_name,
            last_name=learner.last_name,
            email=learner.email,
            timezone=learner.timezone or curriculum.timezone,
            language=learner.language,
            attributes=learner.attributes or {},
        ).context(),
        "course": CourseView(
            curriculum.id,
            curriculum.title,
            cohort.name,
            cohort.course_end.strftime("%A %-d %B %Y"),
        ).context(),
    }
