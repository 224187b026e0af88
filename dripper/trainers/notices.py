"""Which new learner messages a trainer hears of, and what the notification says. Pure.

A trainer hears of a learner's message when it is a message a person wrote (not a button tap
filed for the record), its conversation is unassigned or assigned to them, and its cohort is
one they follow (all, unless they named some). One notification lists every such message
since the last one, grouped by conversation, newest conversations last, within Telegram's
length limit; a notification about one conversation can be answered by replying to it, one
about several by starting the reply with the conversation's number (`#12`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dripper.content.render import escape_markdown

TAP_FLAG = "tap"  # a check-in button pressed, filed as a message for the record
EXCERPT = 280  # characters of each message shown
MAX_CONVERSATIONS = 8  # shown in one notification; the rest are counted
CHANNEL_NAMES = {"telegram": "Telegram", "email": "email"}
# What an emailed notice or digest says: a reply to the email would reach nobody.
EMAIL_HINT = (
    "Answer in `dripper tui`. To get these in Telegram and answer from there, ask for a "
    "trainer link (`dripper trainers invite`)."
)


@dataclass(frozen=True)
class NewMessage:
    id: int
    conversation_id: int
    assignee_id: int | None
    cohort_id: int | None
    cohort: str | None
    learner: str
    channel: str | None
    body: str
    attachments: int
    flags: tuple[str, ...]
    created_at: datetime | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> NewMessage:
        return cls(
            int(row["id"]),
            int(row["conversation_id"]),
            row["assignee_id"],
            row["cohort_id"],
            row["cohort"],
            str(row["learner"] or "(no name)"),
            row["channel"],
            str(row["body"] or ""),
            len(row["attachments"] or []),
            tuple(row["flags"] or ()),
            row["created_at"],
        )


@dataclass(frozen=True)
class Follower:
    """What deciding whether a trainer hears of a message needs."""

    id: int
    follows: frozenset[int]  # cohort ids; empty: every cohort


def is_for(trainer: Follower, message: NewMessage) -> bool:
    if TAP_FLAG in message.flags:
        return False
    if message.assignee_id is not None and message.assignee_id != trainer.id:
        return False
    return not trainer.follows or message.cohort_id in trainer.follows


@dataclass(frozen=True)
class Notice:
    markdown: str
    subject: str
    conversations: tuple[int, ...]
    messages: tuple[int, ...]


def compose(messages: Sequence[NewMessage], *, by_email: bool = False) -> Notice:
    """The notification of `messages` (at least one), grouped by conversation."""
    assert messages
    groups: dict[int, list[NewMessage]] = {}
    for message in messages:
        groups.setdefault(message.conversation_id, []).append(message)
    shown = list(groups)[:MAX_CONVERSATIONS]
    total = len(messages)
    one = len(groups) == 1
    first = messages[0]
    if one:
        head = f"💬 {_who(first)} wrote" + (f" {total} messages" if total > 1 else "")
        subject = f"{first.learner} wrote" + (f" ({total} messages)" if total > 1 else "")
    else:
        head = f"💬 {total} new messages in {len(groups)} conversations"
        subject = head.removeprefix("💬 ")
    parts = [head]
    for conversation_id in shown:
        group = groups[conversation_id]
        lines = [] if one else [f"**#{conversation_id}** {_who(group[0])}"]
        lines += [f"» {_excerpt(message)}" for message in group]
        parts.append("\n".join(lines))
    hidden = len(groups) - len(shown)
    if hidden:
        parts.append(f"…and {hidden} more conversations: open `dripper tui` to see them.")
    if by_email:
        parts.append(EMAIL_HINT)
    elif one:
        parts.append("Reply to this message to answer; or reply /claim, /close or /snooze 4h.")
    else:
        numbers = ", ".join(f"#{i}" for i in shown)
        parts.append(
            f"To answer, reply to this message starting with the number ({numbers}), "
            "e.g. “#" + str(shown[0]) + " Thanks, good question…”"
        )
    return Notice("\n\n".join(parts), subject, tuple(groups), tuple(m.id for m in messages))


def _who(message: NewMessage) -> str:
    where = " · ".join(
        part
        for part in (message.cohort, CHANNEL_NAMES.get(message.channel or "", message.channel))
        if part
    )
    name = f"**{escape_markdown(message.learner)}**"
    return f"{name} ({escape_markdown(where)})" if where else name


def excerpt(text: str, limit: int = EXCERPT) -> str:
    """The text on one line, cut to `limit` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def _excerpt(message: NewMessage) -> str:
    text = excerpt(message.body)
    parts = [escape_markdown(text)] if text else []
    if message.attachments:
        plural = "s" if message.attachments > 1 else ""
        parts.append(f"[+{message.attachments} attachment{plural}]")
    return " ".join(parts) or "(empty)"
