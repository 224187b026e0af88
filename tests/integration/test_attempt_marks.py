"""Both channels mark a send attempted just before writing it, and write nothing when the mark
fails: the dispatcher then gives the claim back untouched (real SMTP sink, real emulator)."""

from __future__ import annotations

import pytest

from dripper.channels.base import Outbound, Outcome
from dripper.content.compose import compose_reply
from tests.fixtures.sandboxes import smtp_sandbox, telegram_sandbox

TOKEN = "6161:MARKS-test"
CHAT = 4242


class MarkFailed(Exception):
    pass


def _message(delivery_id: int) -> Outbound:
    return Outbound(
        delivery_id=delivery_id,
        business_key=f"reply:{delivery_id}",
        content=compose_reply(f"answer {delivery_id}", "Your course"),
        telegram_chat_id=CHAT,
        email="ann@example.net",
        learner_name="Ann",
    )


async def _refuse() -> None:
    raise MarkFailed


async def test_telegram_writes_nothing_when_the_mark_fails_and_marks_once() -> None:
    async with telegram_sandbox(TOKEN) as sandbox:
        sandbox.emulator.create_user(CHAT, "Ann")
        sandbox.emulator.start(TOKEN, CHAT)
        with pytest.raises(MarkFailed):
            await sandbox.channel.send(_message(1), _refuse)
        assert sandbox.emulator.messages(TOKEN, CHAT) == []
        marks: list[int] = []

        async def mark() -> None:
            marks.append(len(sandbox.emulator.messages(TOKEN, CHAT)))

        long = _message(2)
        long = Outbound(**{**long.__dict__, "content": compose_reply("x " * 5000, "Course")})
        result = await sandbox.channel.send(long, mark)
        assert result.outcome is Outcome.SENT
        assert marks == [0]  # once, before the first of its parts was written
        assert len(sandbox.emulator.messages(TOKEN, CHAT)) > 1


async def test_email_writes_nothing_when_the_mark_fails_and_the_connection_lives_on() -> None:
    async with smtp_sandbox("course@example.com") as (sink, channel):
        with pytest.raises(MarkFailed):
            await channel.send(_message(1), _refuse)
        assert sink.messages == []
        marks: list[int] = []

        async def mark() -> None:
            marks.append(len(sink.messages))

        result = await channel.send(_message(2), mark)
        assert result.outcome is Outcome.SENT
        assert marks == [0]
        assert len(sink.messages) == 1


class _TakenOverFirst:
    """A Telegram channel during whose pacing another worker recovers and takes the claim (as
    when this worker stalls past its lease)."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.name = inner.name  # type: ignore[attr-defined]
        self.rate = None
        self.parallel = 1

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def send(self, message: Outbound, attempting):  # type: ignore[no-untyped-def]
        from dripper.models import Delivery

        await Delivery.filter(id=message.delivery_id).update(claimed_by="another-worker")
        return await self.inner.send(message, attempting)  # type: ignore[attr-defined]


async def test_a_claim_taken_over_before_its_mark_is_not_sent(db: str) -> None:
    """The mark finds the claim no longer this worker's: nothing is written, the other
    worker's claim is left as it is, so the message cannot arrive twice."""
    from datetime import UTC, datetime, timedelta

    from dripper.clock import ManualClock
    from dripper.engine.dispatcher import Dispatcher
    from dripper.enrollments.enroll import enroll
    from dripper.models import Channel as ChannelName
    from dripper.models import Delivery, DeliveryState, Learner
    from dripper.sandbox.seed import minute_steps_curriculum

    now = datetime(2026, 12, 10, 9, 0, tzinfo=UTC)
    async with telegram_sandbox(TOKEN) as sandbox:
        sandbox.emulator.create_user(CHAT, "Ann")
        sandbox.emulator.start(TOKEN, CHAT)
        learner = await Learner.create(first_name="Ann", telegram_chat_id=CHAT)
        await enroll(minute_steps_curriculum(1), "c", now - timedelta(hours=1), [learner], now)
        channel = _TakenOverFirst(sandbox.channel)
        dispatcher = Dispatcher({ChannelName.TELEGRAM: channel}, ManualClock(now), "this-worker")  # type: ignore[dict-item]
        await dispatcher.run_until_idle()
        assert sandbox.emulator.messages(TOKEN, CHAT) == []
    (delivery,) = await Delivery.all()
    assert (delivery.state, delivery.claimed_by) == (DeliveryState.CLAIMED, "another-worker")
    assert delivery.attempted_at is None and delivery.attempts == 1
