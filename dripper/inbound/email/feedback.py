"""Feedback on a quiz or check-in answered by email, as Telegram gives it under the buttons.

A learner who answers "2" to a quiz email gets a reply in the same thread within moments:
right or wrong, the right answer, and the step's explanation. It is queued as a FEEDBACK
delivery (business key `feedback:<inbound item>`, so a re-processed email never gets two) in
the transaction that records the answer, and sent by the dispatcher like any other mail.
"""

from __future__ import annotations

from datetime import datetime

from tortoise.backends.base.client import BaseDBAsyncClient

from dripper.content.compose import answer_feedback
from dripper.curriculum import Checkin, Curriculum, Quiz
from dripper.curriculum.templates import safe_render
from dripper.enrollments.answers import AnswerResult, AnswerStatus, explanation_context
from dripper.models import Channel, DeliveryKind, Enrollment, Learner
from dripper.schedule.keys import feedback_key
from dripper.store.outbox import NewDelivery, insert_in


async def queue_feedback(
    tx: BaseDBAsyncClient,
    *,
    inbound_id: int,
    learner: Learner,
    enrollment: Enrollment,
    curriculum: Curriculum,
    step: Quiz | Checkin,
    occurrence: int,
    result: AnswerResult,
    now: datetime,
) -> bool:
    """Queue the feedback on `result` (nothing for an answer that was not understood);
    True when queued."""
    if result.status is AnswerStatus.INVALID:
        return False
    explanation = None
    if isinstance(step, Quiz) and step.explanation:
        explanation = await _explanation(step.explanation, learner, enrollment, curriculum)
    markdown = answer_feedback(
        step,
        result.choices,
        result.correct,
        already=result.status is AnswerStatus.ALREADY_ANSWERED,
        explanation=explanation,
    )
    await insert_in(
        tx,
        [
            NewDelivery(
                business_key=feedback_key(inbound_id),
                enrollment_id=enrollment.id,
                learner_id=learner.id,
                kind=DeliveryKind.FEEDBACK.value,
                step_id=step.id,
                occurrence=occurrence,
                channel_preference=Channel.EMAIL.value,
                due_at=now,
                expires_at=None,
                payload={"inbound_id": inbound_id, "markdown": markdown},
            )
        ],
        now,
    )
    return True


async def _explanation(
    template: str, learner: Learner, enrollment: Enrollment, curriculum: Curriculum
) -> str | None:
    context = explanation_context(learner, await enrollment.cohort, curriculum)
    text, _error = safe_render(template, context)
    return text
