"""Quiz and check-in answers' SQL: the first answer to an asking, and how many were right."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from tortoise.backends.base.client import BaseDBAsyncClient

from dripper.models import Channel
from dripper.store.sql import as_json, is_postgres, json_param, q, returning, ts


async def insert_answer(
    tx: BaseDBAsyncClient,
    enrollment_id: int,
    step_id: str,
    occurrence: int,
    choices: Sequence[int],
    correct: bool | None,
    channel: Channel,
    now: datetime,
) -> bool:
    """Store the answer unless one to this asking exists; True when this one was stored."""
    stored_correct: bool | int | None = correct
    if correct is not None and not is_postgres(tx):
        stored_correct = int(correct)
    inserted = await returning(
        tx,
        "INSERT INTO quiz_answer (enrollment_id, step_id, occurrence, choices, correct, "
        "channel, answered_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (enrollment_id, step_id, occurrence) DO NOTHING RETURNING id",
        [
            enrollment_id,
            step_id,
            occurrence,
            json_param(tx, list(choices)),
            stored_correct,
            channel.value,
            ts(tx, now),
        ],
    )
    return bool(inserted)


async def first_answer(
    tx: BaseDBAsyncClient, enrollment_id: int, step_id: str, occurrence: int
) -> tuple[tuple[int, ...], bool | None]:
    """The answer that counts for one asking (its choices, whether right), or ((), None)."""
    rows = await tx.execute_query_dict(
        q(
            tx,
            "SELECT choices, correct FROM quiz_answer "
            "WHERE enrollment_id = ? AND step_id = ? AND occurrence = ?",
        ),
        [enrollment_id, step_id, occurrence],
    )
    if not rows:
        return (), None
    correct = rows[0]["correct"]
    return (
        tuple(int(c) for c in as_json(rows[0]["choices"])),
        None if correct is None else bool(correct),
    )


async def right_answers(tx: BaseDBAsyncClient, enrollment_id: int, step_id: str) -> int:
    """How many askings of this quiz the learner answered right, this one included."""
    rows = await tx.execute_query_dict(
        q(
            tx,
            "SELECT COUNT(*) AS n FROM quiz_answer WHERE enrollment_id = ? AND step_id = ? "
            "AND correct = ?",
        ),
        [enrollment_id, step_id, True if is_postgres(tx) else 1],
    )
    return int(rows[0]["n"])
