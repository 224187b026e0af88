"""What dripper does about each Telegram event: bind chats, learner commands, answers, filing.

One method per event type of dripper.inbound.telegram.events; each changes the database in short
transactions and then replies with a direct Bot API call (conversational replies are not drips:
they do not go through the outbox). A reply that fails is logged and never undoes what was
recorded. A handler returns None when the item is done, or the reason to flag it for a human.

Decisions worth knowing:
- `/start` alone in a chat that is already bound says nothing (Telegram sends it when a learner
  unblocks the bot), except that it ends an opt-out: starting the bot again asks for messages.
- `/pause` alone pauses for 7 days; at most 90 days. `/resume` resumes only what the learner
  paused, never a pause by the trainer or of the whole cohort.
- `/timezone` re-plans the learner's queued first sendings of steps in the new zone; nudges and
  re-asks already queued keep their time (they are at most a few days out).
- A first answer wins; a later tap (on a nudge, or a double tap) shows the recorded answer.
- Unknown `/commands` are filed as learner text (nothing a learner writes is dropped) and get a
  short list of the commands.
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Message
from telegram.constants import ParseMode
from telegram.error import TelegramError
from tortoise.transactions import in_transaction

from dripper.config import canonical_timezone
from dripper.content.compose import CALLBACK_SUBMIT, CALLBACK_TOGGLE
from dripper.content.render import TELEGRAM_TEXT_LIMIT, telegram_html, visible_length
from dripper.curriculum import Checkin, Curriculum, Quiz, StepBase
from dripper.curriculum.templates import render
from dripper.enrollments.answers import (
    AnswerResult,
    AnswerStatus,
    explanation_context,
    record_quiz_answer,
)
from dripper.enrollments.move import replan_unsent
from dripper.enrollments.pause import pause, resume
from dripper.inbound.telegram.events import (
    BadTap,
    Command,
    Event,
    Ignored,
    LearnerMessage,
    MemberChange,
    Tap,
)
from dripper.inbound.telegram.trainer_chat import TrainerChat
from dripper.inbox import AnsweredPrompt, IncomingMessage, record_learner_message
from dripper.learners.invites import Redeemed, redeem
from dripper.models import (
    Channel,
    Delivery,
    Enrollment,
    EnrollmentState,
    Learner,
    QuizAnswer,
    Reachability,
    Trainer,
)
from dripper.schedule.offsets import parse_duration
from dripper.store.curricula import curriculum_of
from dripper.store.reach import Unreachable, mark_reachable, mark_unreachable
from dripper.trainers.notices import TAP_FLAG
from dripper.trainers.roster import is_trainer_token, trainer_chat_ids, trainer_of_chat

log = logging.getLogger("dripper.inbound.telegram.poller")

UNKNOWN_CHAT = "unknown chat"
DEFAULT_PAUSE = timedelta(days=7)
MAX_PAUSE = timedelta(days=90)
CHECKED, UNCHECKED = "☑", "☐"

HELP = (
    "I send you the follow-up of your course. Just reply to write to your trainer.\n\n"
    "/pause 7d - no messages for a while (e.g. 3d, 2w)\n"
    "/resume - continue now\n"
    "/timezone Europe/Berlin - get messages at your local time\n"
    "/stop - no more messages\n"
    "/help - this list"
)
NOT_CONNECTED = (
    "Hi! I deliver the follow-up of a course. To connect, open the personal link your trainer "
    "gave you (it looks like t.me/…?start=…). No link? Please ask your trainer for it."
)
INVALID_LINK = (
    "This link doesn't work: it may be incomplete or mistyped. Please open the personal link "
    "exactly as your trainer sent it, or ask your trainer for a new one."
)
USED_ELSEWHERE = (
    "This link was already used from another Telegram account. Each link works for one person "
    "only: please ask your trainer for your own link."
)
CHAT_TAKEN = (
    "This Telegram account is already connected to another learner. Please ask your trainer "
    "for help."
)
STOPPED = "Done: you won't get more messages from this course. Changed your mind? Send /start."
NO_TAP = "This button is no longer active."


class Batch:
    """What one processing round shares: learners by chat (loaded at once), which items are
    filed already (a restart re-processes items whose outcome was not recorded), and learners
    to mark reachable (written at once)."""

    def __init__(
        self,
        filed: set[int],
        learners: dict[int, Learner | None],
        trainers: dict[int, Trainer] | None = None,
    ) -> None:
        self.filed = filed
        self._learners = learners
        self._trainers = trainers or {}  # trainers' own chats: never a learner's
        self._reachable: set[int] = set()
        # Learner messages are filed together at the end of the round, in one transaction.
        self.to_file: list[IncomingMessage] = []

    @classmethod
    async def load(cls, filed: set[int], chat_ids: Sequence[int]) -> Batch:
        learners: dict[int, Learner | None] = dict.fromkeys(chat_ids)
        if learners:
            for learner in await Learner.filter(telegram_chat_id__in=list(learners)):
                learners[int(learner.telegram_chat_id or 0)] = learner
        return cls(filed, learners, await trainer_chat_ids(list(learners)))

    def trainer(self, chat_id: int) -> Trainer | None:
        return self._trainers.get(chat_id)

    async def learner(self, chat_id: int) -> Learner | None:
        if chat_id not in self._learners:
            self._learners[chat_id] = await Learner.get_or_none(telegram_chat_id=chat_id)
        return self._learners[chat_id]

    def known_learner(self, chat_id: int) -> int | None:
        """The id of the chat's learner as last read, without reading it (for log lines)."""
        learner = self._learners.get(chat_id)
        return learner.id if learner is not None else None

    def forget(self, chat_id: int) -> None:
        """The chat's learner may have changed (bound, opted out, blocked): read it again."""
        self._learners.pop(chat_id, None)

    async def bound_trainer(self, chat_id: int) -> None:
        """The chat became a trainer's: its next items go to the trainer's handling."""
        trainer = await trainer_of_chat(chat_id)
        if trainer is not None:
            self._trainers[chat_id] = trainer

    def reachable(self, learner: Learner) -> None:
        """The learner wrote: Telegram works for them. Only a first contact is recorded here;
        back from unreachable is the `my_chat_member` update's to say (an old message read
        late must not undo a block the dispatcher saw since)."""
        if learner.telegram_status == Reachability.UNKNOWN:
            self._reachable.add(learner.id)
            learner.telegram_status = Reachability.OK

    async def save(self) -> None:
        if self._reachable:
            # Only a first contact: a block seen meanwhile (this round's my_chat_member, the
            # dispatcher's 403) stands.
            await Learner.filter(
                id__in=sorted(self._reachable), telegram_status=Reachability.UNKNOWN
            ).update(telegram_status=Reachability.OK)
            self._reachable.clear()


def _escape(text: str) -> str:
    return html.escape(text, quote=False)


class TelegramActions:
    """Carries out events for one bot; `handle` returns None, or why the item is flagged."""

    def __init__(
        self,
        bot: Bot,
        now: Callable[[], datetime],
        signing_key: bytes | None,
        wake: asyncio.Event | None = None,
    ) -> None:
        self._bot = bot
        self._now = now
        self._key = signing_key
        self._wake = wake
        self._trainer_chat = TrainerChat(bot, now, wake)

    async def handle(self, event: Event, inbound_id: int, batch: Batch) -> str | None:
        """Act on one event of a processing round."""
        trainer = batch.trainer(getattr(event, "chat_id", 0))
        if trainer is not None:
            return await self._trainer_chat.handle(trainer, event, self._key)
        if isinstance(event, Command):
            try:
                return await self._command(event, inbound_id, batch)
            finally:
                batch.forget(event.chat_id)
        if isinstance(event, LearnerMessage):
            return await self._message(event, inbound_id, batch)
        if isinstance(event, Tap):
            return await self._tap(event, inbound_id, batch)
        if isinstance(event, BadTap):
            await self._answer(event.query_id, NO_TAP)
            return None
        if isinstance(event, MemberChange):
            batch.forget(event.chat_id)
            return await self._member(event)
        assert isinstance(event, Ignored)
        return event.reason

    # ---- replies -------------------------------------------------------------------------

    async def _reply(self, chat_id: int, text_html: str) -> None:
        try:
            await self._bot.send_message(chat_id, text_html, parse_mode=ParseMode.HTML)
        except TelegramError as exc:
            log.warning("could not reply in chat %d: %s", chat_id, exc.message)

    async def _answer(self, query_id: str, text: str | None = None) -> None:
        try:
            await self._bot.answer_callback_query(query_id, text=text)
        except TelegramError as exc:
            # Too old after downtime (Telegram allows about 15 s): the learner saw a spinner.
            log.info("could not answer button press %s: %s", query_id, exc.message)

    def _poke_dispatcher(self) -> None:
        if self._wake is not None:
            self._wake.set()

    # ---- commands ------------------------------------------------------------------------

    async def _command(self, command: Command, inbound_id: int, batch: Batch) -> str | None:
        learner = await batch.learner(command.chat_id)
        if command.name == "start":
            return await self._start(command, learner, batch)
        if learner is None:
            await self._reply(command.chat_id, _escape(NOT_CONNECTED))
            return UNKNOWN_CHAT
        if command.name == "stop":
            if learner.opted_out_at is None:
                learner.opted_out_at = self._now()
                await learner.save(update_fields=["opted_out_at", "updated_at"])
            await self._reply(command.chat_id, _escape(STOPPED))
        elif command.name == "pause":
            await self._pause(learner, command)
        elif command.name == "resume":
            await self._resume(learner, command.chat_id)
        elif command.name == "timezone":
            await self._timezone(learner, command)
        elif command.name == "help":
            await self._reply(command.chat_id, _escape(HELP))
        else:
            message = LearnerMessage(command.chat_id, command.text, ())
            flag = await self._message(message, inbound_id, batch)
            await self._reply(
                command.chat_id,
                _escape(f"I passed your message on to your trainer. Commands I know:\n\n{HELP}"),
            )
            return flag
        return None

    async def _start(self, command: Command, learner: Learner | None, batch: Batch) -> str | None:
        chat_id = command.chat_id
        token = command.argument
        if not token:
            if learner is None:
                await self._reply(chat_id, _escape(NOT_CONNECTED))
                return UNKNOWN_CHAT
            was_stopped = learner.opted_out_at is not None
            learner.opted_out_at = None
            if learner.telegram_status == Reachability.UNKNOWN:  # back from blocked: _member
                learner.telegram_status = Reachability.OK
            await learner.save(update_fields=["opted_out_at", "telegram_status", "updated_at"])
            if was_stopped:
                await self._reply(chat_id, _escape(self._welcome(learner, back=True)))
                self._poke_dispatcher()
            return None
        if self._key is None:
            log.error("an invite link was opened but no HMAC key is configured (DRIPPER_HMAC_KEY)")
            await self._reply(chat_id, _escape(INVALID_LINK))
            return "invite link opened, but no HMAC key is configured to check it"
        if is_trainer_token(self._key, token):  # bind_chat refuses a learner's chat
            flag = await self._trainer_chat.bind(chat_id, self._key, token)
            await batch.bound_trainer(chat_id)
            return flag
        result = await redeem(self._key, token, chat_id, self._now())
        if result.outcome is Redeemed.BOUND:
            assert result.learner is not None
            await self._reply(chat_id, _escape(self._welcome(result.learner)))
            self._poke_dispatcher()
            return None
        if result.outcome is Redeemed.AGAIN:
            await self._reply(chat_id, _escape("You're already connected. " + HELP))
            return None
        if result.outcome is Redeemed.USED_ELSEWHERE:
            await self._reply(chat_id, _escape(USED_ELSEWHERE))
            return "invite link already used by another chat"
        if result.outcome is Redeemed.CHAT_TAKEN:
            await self._reply(chat_id, _escape(CHAT_TAKEN))
            return "this chat is bound to another learner; invite link not used"
        await self._reply(chat_id, _escape(INVALID_LINK))
        return "invalid invite token"

    @staticmethod
    def _welcome(learner: Learner, *, back: bool = False) -> str:
        hello = f"Welcome back, {learner.first_name}!" if back else f"Hi {learner.first_name}!"
        return (
            f"{hello} You're connected: your course follow-ups will arrive here, and your "
            f"replies reach your trainer.\n\n{HELP}"
        )

    async def _pause(self, learner: Learner, command: Command) -> None:
        try:
            length = parse_duration(command.argument) if command.argument else DEFAULT_PAUSE
        except ValueError:
            length = timedelta(0)
        if not timedelta(hours=1) <= length <= MAX_PAUSE:
            await self._reply(
                command.chat_id,
                _escape("Tell me for how long, from 1h to 90d: e.g. /pause 7d or /pause 2w."),
            )
            return
        now = self._now()
        until = now + length
        active = [
            enrollment.id
            for enrollment in await Enrollment.filter(
                learner_id=learner.id, state=EnrollmentState.ACTIVE
            )
        ]
        extended = await Enrollment.filter(
            learner_id=learner.id, state=EnrollmentState.PAUSED, pause_reason="learner"
        ).update(resume_at=until)
        if not active and not extended:
            await self._reply(command.chat_id, _escape("There is nothing to pause right now."))
            return
        await pause(active, "learner", now, until)
        self._poke_dispatcher()
        local = until.astimezone(ZoneInfo(learner.timezone or "UTC"))
        await self._reply(
            command.chat_id,
            _escape(
                f"Paused until {local:%A %-d %B, %H:%M} ({local.tzname()}). "
                "Send /resume to continue earlier."
            ),
        )

    async def _resume(self, learner: Learner, chat_id: int) -> None:
        paused = await Enrollment.filter(
            learner_id=learner.id, state=EnrollmentState.PAUSED
        ).values("id", "pause_reason")
        mine = [int(row["id"]) for row in paused if row["pause_reason"] == "learner"]
        if not mine:
            text = (
                "Your trainer has paused this course for now; it continues when they resume it."
                if paused
                else "Nothing is paused: your messages keep coming."
            )
            await self._reply(chat_id, _escape(text))
            return
        await resume(mine, self._now())
        self._poke_dispatcher()
        await self._reply(chat_id, _escape("Welcome back! Your course messages continue."))

    async def _timezone(self, learner: Learner, command: Command) -> None:
        if not command.argument:
            current = learner.timezone or "not set (the course's default applies)"
            await self._reply(
                command.chat_id,
                _escape(f"Your time zone: {current}. To change it: /timezone Europe/Berlin"),
            )
            return
        try:
            zone = canonical_timezone(command.argument)
        except ValueError as exc:
            await self._reply(command.chat_id, _escape(str(exc)))
            return
        now = self._now()
        learner.timezone = zone
        async with in_transaction() as tx:
            await learner.save(using_db=tx, update_fields=["timezone", "updated_at"])
            enrollments = await Enrollment.filter(
                learner_id=learner.id, state__in=[EnrollmentState.ACTIVE, EnrollmentState.PAUSED]
            ).using_db(tx)
            for enrollment in enrollments:
                curriculum = await curriculum_of(enrollment.curriculum_id, tx)  # type: ignore[attr-defined]
                await replan_unsent(
                    tx,
                    enrollment.id,
                    curriculum,
                    enrollment.anchor_at,
                    timedelta(seconds=enrollment.shift_seconds),
                    zone,
                    now,
                )
        self._poke_dispatcher()
        local = now.astimezone(ZoneInfo(zone))
        await self._reply(
            command.chat_id,
            _escape(f"Time zone set to {zone}: it's {local:%H:%M} there now."),
        )

    # ---- messages and membership ---------------------------------------------------------

    async def _message(self, message: LearnerMessage, inbound_id: int, batch: Batch) -> str | None:
        learner = await batch.learner(message.chat_id)
        if learner is None:
            await self._reply(message.chat_id, _escape(NOT_CONNECTED))
            return UNKNOWN_CHAT
        batch.reachable(learner)
        if inbound_id in batch.filed:
            return None
        batch.to_file.append(
            IncomingMessage(
                learner.id,
                Channel.TELEGRAM,
                message.body,
                attachments=tuple(message.attachments),
                inbound_id=inbound_id,
                flags=("edited",) if message.edited else (),
            )
        )
        batch.filed.add(inbound_id)
        return None

    async def _member(self, change: MemberChange) -> str | None:
        """The learner blocked the bot (or started it again): an event in their conversations
        once, whether the dispatcher or this update notices first."""
        if change.status not in ("kicked", "member"):
            return None
        learner = await Learner.get_or_none(telegram_chat_id=change.chat_id)
        if learner is None:
            return None
        now = self._now()
        async with in_transaction() as tx:
            if change.status == "kicked":
                event = Unreachable(learner.id, Channel.TELEGRAM, "blocked")
                await mark_unreachable(tx, event, now)
            else:
                await mark_reachable(tx, learner.id, Channel.TELEGRAM, now)
        return None

    # ---- button taps ---------------------------------------------------------------------

    async def _tap(self, tap: Tap, inbound_id: int, batch: Batch) -> str | None:
        learner = await batch.learner(tap.chat_id)
        delivery = await Delivery.get_or_none(id=tap.delivery_id)
        if (
            learner is None
            or delivery is None
            or delivery.learner_id != learner.id  # type: ignore[attr-defined]
            or delivery.enrollment_id is None  # type: ignore[attr-defined]
            or delivery.step_id is None
        ):
            await self._answer(tap.query_id, NO_TAP)
            if learner is None:
                return UNKNOWN_CHAT
            if delivery is not None and delivery.learner_id != learner.id:  # type: ignore[attr-defined]
                return f"button of delivery {tap.delivery_id}, which is not this learner's"
            return None
        enrollment = await Enrollment.get(id=delivery.enrollment_id).prefetch_related("cohort")  # type: ignore[attr-defined]
        curriculum = await curriculum_of(enrollment.curriculum_id)  # type: ignore[attr-defined]
        try:
            step = curriculum.step(delivery.step_id)
        except KeyError:
            await self._answer(tap.query_id, "This question is no longer part of the course.")
            return None
        answering = _Answering(tap, learner, delivery, enrollment, curriculum, step)
        options = step.options if isinstance(step, Quiz) else getattr(step, "buttons", [])
        if tap.option is not None and tap.option >= len(options):
            await self._answer(tap.query_id, NO_TAP)
            return f"button option {tap.option} out of range"
        if isinstance(step, Quiz) and step.multiple and tap.action == CALLBACK_TOGGLE:
            return await self._toggle(answering, step, tap.option or 0)
        if isinstance(step, Quiz) and step.multiple and tap.action == CALLBACK_SUBMIT:
            selected = [int(i) for i in _selected(delivery)]
            if not selected:
                await self._answer(tap.query_id, "Pick at least one option, then Submit.")
                return None
            return await self._answer_quiz(answering, step, selected)
        if isinstance(step, Quiz) and not step.multiple and tap.option is not None:
            return await self._answer_quiz(answering, step, [tap.option])
        if isinstance(step, Checkin) and tap.option is not None:
            return await self._checkin(answering, step, tap.option, inbound_id, batch.filed)
        await self._answer(tap.query_id, NO_TAP)
        return f"button {tap.action!r} does not fit step {step.id!r} ({step.kind})"  # type: ignore[attr-defined]

    async def _toggle(self, answering: _Answering, quiz: Quiz, option: int) -> str | None:
        tap, delivery = answering.tap, answering.delivery
        existing = await answering.existing_answer()
        if existing is not None:
            await self._answer(tap.query_id, "You already answered this one.")
            await self._show_result(answering, existing.choices, existing.correct)
            return None
        selected = set(_selected(delivery)) ^ {option}
        delivery.payload = {**delivery.payload, "selected": sorted(selected)}
        await Delivery.filter(id=delivery.id).update(payload=delivery.payload)
        await self._answer(tap.query_id)
        if tap.message is not None:
            markup = _toggled_keyboard(tap.message, selected)
            try:
                await self._bot.edit_message_reply_markup(
                    tap.chat_id, int(tap.message["message_id"]), reply_markup=markup
                )
            except TelegramError as exc:
                log.info("could not update the choices in chat %d: %s", tap.chat_id, exc.message)
        return None

    async def _answer_quiz(
        self, answering: _Answering, quiz: Quiz, choices: Sequence[int]
    ) -> str | None:
        result = await answering.record(list(choices), self._now())
        if result.status is AnswerStatus.INVALID:
            await self._answer(answering.tap.query_id, NO_TAP)
            return f"answer not recorded: {result.reason}"
        if result.status is AnswerStatus.ALREADY_ANSWERED:
            await self._answer(answering.tap.query_id, "You already answered this one.")
        else:
            await self._answer(
                answering.tap.query_id, "✅ Right!" if result.correct else "❌ Not quite"
            )
        await self._show_result(answering, result.choices, result.correct)
        return None

    async def _checkin(
        self, answering: _Answering, step: Checkin, option: int, inbound_id: int, filed: set[int]
    ) -> str | None:
        existing = await answering.existing_answer()
        if existing is not None:
            await self._answer(answering.tap.query_id, "You already answered this one.")
            await self._show_result(answering, existing.choices, existing.correct)
            return None
        delivery = answering.delivery
        if inbound_id not in filed:
            # Filed before the answer is recorded: a restart in between files it only once.
            await record_learner_message(
                answering.learner.id,
                Channel.TELEGRAM,
                f"Check-in: {step.buttons[option]}",
                self._now(),
                inbound_id=inbound_id,
                flags=(TAP_FLAG,),
                answers=AnsweredPrompt(
                    answering.enrollment.id, step.id, delivery.occurrence, delivery.id
                ),
            )
            filed.add(inbound_id)
        result = await answering.record([option], self._now())
        await self._answer(answering.tap.query_id, "Thanks!")
        await self._show_result(answering, result.choices, result.correct)
        return None

    async def _show_result(
        self, answering: _Answering, choices: Sequence[int], correct: bool | None
    ) -> None:
        """Replace the buttons under the prompt by the recorded answer (and the explanation)."""
        tap = answering.tap
        if tap.message is None:
            return
        result = answering.result_html(choices, correct)
        message_id = int(tap.message["message_id"])
        base = _message_html(tap.message, self._bot)
        try:
            if base is not None and visible_length(f"{base}\n\n{result}") <= TELEGRAM_TEXT_LIMIT:
                await self._bot.edit_message_text(
                    f"{base}\n\n{result}",
                    chat_id=tap.chat_id,
                    message_id=message_id,
                    parse_mode=ParseMode.HTML,
                    reply_markup=None,
                )
                return
            await self._bot.edit_message_reply_markup(tap.chat_id, message_id, reply_markup=None)
        except TelegramError as exc:
            # "message is not modified": a repeated tap on a prompt already showing its result.
            log.info("could not show the answer in chat %d: %s", tap.chat_id, exc.message)
            return
        await self._reply(tap.chat_id, result)


class _Answering:
    """One tap on one delivery's prompt, with what recording and showing an answer need."""

    def __init__(
        self,
        tap: Tap,
        learner: Learner,
        delivery: Delivery,
        enrollment: Enrollment,
        curriculum: Curriculum,
        step: StepBase,
    ) -> None:
        self.tap = tap
        self.learner = learner
        self.delivery = delivery
        self.enrollment = enrollment
        self.curriculum = curriculum
        self.step = step

    async def existing_answer(self) -> QuizAnswer | None:
        return await QuizAnswer.get_or_none(
            enrollment_id=self.enrollment.id,
            step_id=self.step.id,
            occurrence=self.delivery.occurrence,
        )

    async def record(self, choices: list[int], now: datetime) -> AnswerResult:
        """The first answer wins; a quiz's re-ask is planned and the prompt's nudges cancelled
        (see `answers.record_quiz_answer`)."""
        return await record_quiz_answer(
            self.enrollment.id,
            self.step.id,
            self.delivery.occurrence,
            choices,
            Channel.TELEGRAM,
            now,
        )

    def result_html(self, choices: Sequence[int], correct: bool | None) -> str:
        step = self.step
        if isinstance(step, Checkin):
            labels = [step.buttons[i] for i in choices if i < len(step.buttons)]
            return f"Your answer: <b>{_escape(', '.join(labels))}</b>"
        assert isinstance(step, Quiz)
        chosen = ", ".join(step.options[i] for i in choices if i < len(step.options))
        lines = [
            ("✅ <b>Right!</b>" if correct else "❌ <b>Not quite.</b>")
            + f" Your answer: {_escape(chosen)}"
        ]
        if not correct:
            lines.append(f"Right answer: {_escape(', '.join(step.correct_options))}")
        text = "\n".join(lines)
        if step.explanation:
            text += "\n\n" + self._explanation_html(step.explanation)
        return text

    def _explanation_html(self, template: str) -> str:
        context = explanation_context(self.learner, self.enrollment.cohort, self.curriculum)
        return telegram_html(render(template, context))


def _selected(delivery: Delivery) -> list[int]:
    value = (delivery.payload or {}).get("selected", [])
    return [int(i) for i in value] if isinstance(value, list) else []


def _message_html(message: Mapping[str, Any], bot: Bot) -> str | None:
    """The prompt's text as Telegram HTML, rebuilt from its entities (what the learner sees)."""
    if not isinstance(message.get("text"), str):
        return None
    try:
        return Message.de_json(dict(message), bot).text_html
    except (KeyError, TypeError, ValueError):
        return _escape(str(message["text"]))


def _toggled_keyboard(message: Mapping[str, Any], selected: set[int]) -> InlineKeyboardMarkup:
    """The prompt's keyboard with each toggle button marked by whether it is selected."""
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    out: list[list[InlineKeyboardButton]] = []
    for row in rows:
        buttons = []
        for button in row:
            data = str(button.get("callback_data", ""))
            label = str(button.get("text", ""))
            parts = data.split(":")
            if parts[0] == CALLBACK_TOGGLE and len(parts) == 3 and parts[2].isdigit():
                bare = label.removeprefix(f"{CHECKED} ").removeprefix(f"{UNCHECKED} ")
                mark = CHECKED if int(parts[2]) in selected else UNCHECKED
                label = f"{mark} {bare}"
            buttons.append(InlineKeyboardButton(label, callback_data=data))
        out.append(buttons)
    return InlineKeyboardMarkup(out)
