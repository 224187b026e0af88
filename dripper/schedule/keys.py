"""Business keys: the unique name of every delivery, so a double fire cannot double-send.

A delivery's key is unique in the outbox (the database refuses a second row with it): planning
the same step twice, a re-ask planned by two answers racing, or a reminder planned twice all
collapse into one row. Occurrence 0 is a step's first sending; each re-ask of a quiz is the
next occurrence; reminders of an asking are numbered after it.
"""

from __future__ import annotations


def step_key(enrollment_id: int, step_id: str, occurrence: int = 0) -> str:
    """One asking of a step: the first sending (occurrence 0) or a re-ask (1, 2, ...)."""
    return f"{enrollment_id}:{step_id}:{occurrence}"


def nudge_key(enrollment_id: int, step_id: str, occurrence: int, number: int) -> str:
    """The `number`th reminder (1-based) of one asking of a step."""
    return f"{step_key(enrollment_id, step_id, occurrence)}:n{number}"


def feedback_key(inbound_id: int) -> str:
    """The feedback on an answer given by email: one per received email, however often it is
    processed."""
    return f"feedback:{inbound_id}"


def reply_key(message_id: int) -> str:
    """A trainer's reply: one delivery per reply message."""
    return f"reply:{message_id}"
