"""The daily digest: what a trainer should look at this morning, counts first.

- unanswered learner messages (open conversations with messages newer than the last trainer
  reply; check-in taps do not count), oldest first, with how long they have waited;
- silent learners: the last `silent_after` prompts (questions, quizzes, check-ins) sent to them
  got no reply, tap or answer, and they wrote nothing since the first of them;
- the most-missed quiz questions, with the share of each wrong option among first answers;
- channel changes (switches, blocked bots, bounces) and opt-outs since `since`;
- items received but not filed, and deliveries that may not have arrived.

`gather` reads it for some cohorts (a trainer's, or one named) or all; `render` writes it as
Markdown for Telegram and email, or as plain text for `dripper digest`; `to_json` for --json.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from dripper.content.render import escape_markdown
from dripper.inbox.filing import PROMPT_KINDS
from dripper.models import Cohort
from dripper.reports.steps import step_figures
from dripper.store import digest as store
from dripper.store.curricula import curriculum_of
from dripper.store.problems import count_flagged_items
from dripper.store.reach import SWITCHED, reach_events
from dripper.trainers.notices import EMAIL_HINT, TAP_FLAG, excerpt

SILENT_AFTER = 3  # prompts without any answer that make a learner silent
SHOWN = 5  # entries shown per section; the rest are counted
MISSED_SHOWN = 3  # quiz questions shown
EXCERPT = 80


@dataclass(frozen=True)
class Unanswered:
    conversation_id: int
    learner: str
    cohort: str | None
    waiting: int  # learner messages since the last reply
    since: datetime  # the oldest of them
    excerpt: str  # the newest, shortened


@dataclass(frozen=True)
class Silent:
    learner: str
    cohort: str
    prompts: int
    since: datetime  # when the first of those prompts went out


@dataclass(frozen=True)
class Missed:
    cohort: str
    step_id: str
    summary: str
    answered: int
    wrong_share: float
    wrong_options: tuple[tuple[str, float], ...]  # (label, share of first answers), biggest first


@dataclass(frozen=True)
class Change:
    learner: str
    text: str  # the conversation's system line
    kind: str  # blocked / bounced / unreachable / reachable
    switched: bool
    at: datetime


@dataclass(frozen=True)
class OptOut:
    learner: str
    cohort: str
    at: datetime


@dataclass(frozen=True)
class Digest:
    scope: str  # "every cohort", or the cohort names
    since: datetime
    now: datetime
    unanswered: list[Unanswered] = field(default_factory=list)
    silent: list[Silent] = field(default_factory=list)
    missed: list[Missed] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    opt_outs: list[OptOut] = field(default_factory=list)
    flagged: int = 0
    uncertain: int = 0

    @property
    def empty(self) -> bool:
        """Nothing that asks for the trainer (the most-missed questions alone do not)."""
        return not (
            self.unanswered
            or self.silent
            or self.changes
            or self.opt_outs
            or self.flagged
            or self.uncertain
        )

    def counts(self) -> dict[str, int]:
        return {
            "unanswered": len(self.unanswered),
            "silent": len(self.silent),
            "channel_switches": sum(1 for c in self.changes if c.switched),
            "blocked": sum(1 for c in self.changes if c.kind == "blocked"),
            "bounced": sum(1 for c in self.changes if c.kind == "bounced"),
            "opt_outs": len(self.opt_outs),
            "flagged": self.flagged,
            "uncertain": self.uncertain,
        }


async def gather(
    cohort_ids: Sequence[int] | None,
    now: datetime,
    *,
    since: datetime | None = None,
    silent_after: int = SILENT_AFTER,
) -> Digest:
    """The digest of these cohorts (None: every cohort) for the day before `now`."""
    since = since or now - timedelta(days=1)
    cohorts = await Cohort.all().order_by("name")
    chosen = [c for c in cohorts if cohort_ids is None or c.id in cohort_ids]
    scope = "every cohort" if cohort_ids is None else ", ".join(c.name for c in chosen)
    waiting = await store.unanswered(cohort_ids, now, tap_flag=TAP_FLAG)
    bodies = await store.message_bodies([int(row["last_id"]) for row in waiting])
    changes = await reach_events(since, cohort_ids=cohort_ids)
    return Digest(
        scope=scope or "no cohort",
        since=since,
        now=now,
        unanswered=[
            Unanswered(
                int(row["conversation_id"]),
                str(row["learner"] or "(no name)"),
                row["cohort"],
                int(row["waiting"]),
                row["since"],
                excerpt(bodies.get(int(row["last_id"]), ""), EXCERPT),
            )
            for row in waiting
        ],
        silent=await _silent(cohort_ids, silent_after),
        missed=await _missed([c.name for c in chosen]),
        changes=[
            Change(
                str(row["learner"] or "(no name)"),
                str(row["body"]),
                next((f for f in row["flags"] if f != SWITCHED), ""),
                SWITCHED in row["flags"],
                row["at"],
            )
            for row in changes
        ],
        opt_outs=[
            OptOut(str(row["learner"] or "(no name)"), str(row["cohort"]), row["at"])
            for row in await store.opt_outs(cohort_ids, since)
        ],
        # Items not filed belong to no cohort: the digest of every cohort lists them.
        flagged=await count_flagged_items() if cohort_ids is None else 0,
        uncertain=await store.uncertain_count(cohort_ids),
    )


async def _silent(cohort_ids: Sequence[int] | None, silent_after: int) -> list[Silent]:
    sent: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in await store.sent_steps(cohort_ids):
        curriculum = await curriculum_of(int(row["curriculum_id"]))
        try:
            kind = getattr(curriculum.step(str(row["step_id"])), "kind", "")
        except KeyError:
            continue  # a step an edit removed: not a prompt any more
        if kind in PROMPT_KINDS and len(sent[row["enrollment_id"]]) < silent_after:
            sent[row["enrollment_id"]].append(row)  # newest first
    # What they did anywhere counts: a learner who writes in one cohort is not silent in
    # another. Any reply or answer after the first of those prompts is one to them.
    last_seen = await store.last_activity()
    silent = []
    for prompts in sent.values():
        if len(prompts) < silent_after:
            continue
        first = prompts[-1]
        seen = last_seen.get(int(first["learner_id"]))
        if seen is not None and first["sent_at"] is not None and seen >= first["sent_at"]:
            continue
        silent.append(
            Silent(
                str(first["learner"] or "(no name)"),
                str(first["cohort"]),
                len(prompts),
                first["sent_at"],
            )
        )
    return sorted(silent, key=lambda s: (s.since, s.learner))


async def _missed(cohort_names: Sequence[str]) -> list[Missed]:
    missed = []
    for name in cohort_names:
        for figures in await step_figures(name):
            if figures.kind != "quiz" or not figures.answered or figures.correct is None:
                continue
            wrong = figures.answered - figures.correct
            if not wrong:
                continue
            options = sorted(
                (
                    (option.label, option.count / figures.answered)
                    for option in figures.options
                    if option.correct is False and option.count
                ),
                key=lambda pair: -pair[1],
            )
            missed.append(
                Missed(
                    name,
                    figures.step_id,
                    figures.summary,
                    figures.answered,
                    wrong / figures.answered,
                    tuple(options),
                )
            )
    missed.sort(key=lambda m: (-m.wrong_share, -m.answered, m.cohort, m.step_id))
    return missed[:MISSED_SHOWN]


# --------------------------------------------------------------------------- writing


def age(since: datetime, now: datetime) -> str:
    """ "3 h", "2 d", "25 min": how long something has waited."""
    minutes = max(0, int((now - since).total_seconds() // 60))
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h"
    return f"{minutes // (24 * 60)} d"


def _percent(share: float) -> str:
    return f"{round(share * 100)} %"


def headline(digest: Digest) -> str:
    """The counts, in one line: '2 unanswered · 1 silent · 1 channel switch · 1 opt-out'."""
    counts = digest.counts()
    words = [
        ("unanswered", "unanswered", "unanswered"),
        ("silent", "silent learner", "silent learners"),
        ("channel_switches", "channel switch", "channel switches"),
        ("blocked", "blocked bot", "blocked bots"),
        ("bounced", "bounce", "bounces"),
        ("opt_outs", "opt-out", "opt-outs"),
        ("flagged", "item not filed", "items not filed"),
        ("uncertain", "uncertain delivery", "uncertain deliveries"),
    ]
    parts = [
        f"{counts[k]} {one if counts[k] == 1 else many}" for k, one, many in words if counts[k]
    ]
    return " · ".join(parts) or "nothing waiting"


def render(digest: Digest, *, markdown: bool = True, by_email: bool = False) -> str:
    """The digest as a message (Markdown; an email says where to answer, a Telegram message
    how) or as plain text for a terminal."""
    esc = escape_markdown if markdown else (lambda text: text)
    bold = (lambda text: f"**{text}**") if markdown else (lambda text: text)
    now = digest.now
    parts = [f"☀️ {bold('Digest')} ({esc(digest.scope)}): {headline(digest)}"]

    def section(title: str, lines: list[str], total: int) -> None:
        if not lines:
            return
        more = total - len(lines)
        tail = [f"…and {more} more"] if more > 0 else []
        parts.append("\n".join([bold(title), *lines, *tail]))

    section(
        f"Unanswered ({len(digest.unanswered)})",
        [
            f"#{u.conversation_id} {esc(u.learner)}"
            + (f" ({esc(u.cohort)})" if u.cohort else "")
            + f", waiting {age(u.since, now)}"
            + (f", {u.waiting} messages" if u.waiting > 1 else "")
            + (f": {esc(u.excerpt)}" if u.excerpt else "")
            for u in digest.unanswered[:SHOWN]
        ],
        len(digest.unanswered),
    )
    section(
        f"Silent ({len(digest.silent)})",
        [
            f"{esc(s.learner)} ({esc(s.cohort)}): no answer to the last {s.prompts} prompts, "
            f"the first sent {age(s.since, now)} ago"
            for s in digest.silent[:SHOWN]
        ],
        len(digest.silent),
    )
    section(
        "Most missed",
        [
            f"{esc(m.cohort)} / {esc(m.step_id)} ({esc(m.summary)}): {_percent(m.wrong_share)} "
            f"wrong of {m.answered}"
            + (
                "; "
                + ", ".join(f"{esc(label)} {_percent(share)}" for label, share in m.wrong_options)
                if m.wrong_options
                else ""
            )
            for m in digest.missed
        ],
        len(digest.missed),
    )
    section(
        f"Channels ({len(digest.changes)})",
        [f"{esc(c.learner)}: {esc(c.text)}" for c in digest.changes[:SHOWN]],
        len(digest.changes),
    )
    section(
        f"Opted out ({len(digest.opt_outs)})",
        [f"{esc(o.learner)} ({esc(o.cohort)})" for o in digest.opt_outs[:SHOWN]],
        len(digest.opt_outs),
    )
    if digest.flagged or digest.uncertain:
        parts.append(
            f"{bold('Needs a look')}: {digest.flagged} received but not filed, "
            f"{digest.uncertain} deliveries that may not have arrived (dripper tui, F4)"
        )
    if digest.unanswered and by_email:
        parts.append(EMAIL_HINT)
    elif digest.unanswered and markdown:
        parts.append(
            "To answer, reply to this message starting with the number, e.g. “#"
            f"{digest.unanswered[0].conversation_id} Thanks…”"
        )
    return "\n\n".join(parts)


def to_json(digest: Digest) -> dict[str, Any]:
    data: dict[str, Any] = _jsonable(asdict(digest))
    data["counts"] = digest.counts()
    return data


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
