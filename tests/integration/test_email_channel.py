"""The email channel against the real SMTP sink on 127.0.0.1: messages, security, pool, faults."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dripper.channels.base import Outbound, Outcome
from dripper.channels.email.channel import EmailChannel
from dripper.channels.email.message import (
    ANSWER_MANY,
    ANSWER_ONE,
    Sender,
    build_email,
    message_id_for,
    parse,
    reply_subject,
    sanitise,
)
from dripper.channels.ratelimit import TokenBucket
from dripper.config import SmtpSettings
from dripper.content.compose import Content, compose_reply
from dripper.content.render import escape_markdown
from dripper.errors import DripperError
from dripper.sandbox.smtp import SmtpSink
from dripper.tokens import (
    BOUNCE,
    REPLY,
    UNSUBSCRIBE,
    address_token,
    reply_token,
    unsubscribe_token,
    verify,
)

KEY = b"test-hmac-key-0123456789abcdef"
FROM = "course@example.com"
NOW = datetime(2025, 3, 4, 9, 30, tzinfo=UTC)
SENDER = Sender(FROM, "Leadership Course", KEY)


def outbound(
    n: int = 1,
    *,
    name: str = "Ada Lovelace",
    email: str | None = "ada@example.org",
    content: Content | None = None,
    **extra: Any,
) -> Outbound:
    fields: dict[str, Any] = {
        "conversation_token": reply_token(KEY, 7, 70),
        "unsubscribe_token": unsubscribe_token(KEY, 7),
    }
    fields.update(extra)
    return Outbound(
        delivery_id=n,
        business_key=f"enr:1/step:tip-{n}/occ:0",
        content=content or compose_reply(f"Hello **{escape_markdown(name)}**,\n\nTip {n}.", "Tip"),
        telegram_chat_id=None,
        email=email,
        learner_name=name,
        **fields,
    )


def quiz(multiple: bool = False) -> Content:
    return Content(
        markdown="Which helps memory most?",
        subject="Quiz",
        options=("Cramming", "Spaced repetition", "Re-reading <notes>"),
        multiple=multiple,
    )


def built(message: Outbound) -> EmailMessage:
    return parse(build_email(message, SENDER, NOW).data)


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    return str(text.get_content()).replace("\r\n", "\n"), str(html.get_content())


def display_name(message: EmailMessage) -> str:
    """The To display name, with spaces removed: Python's parser wrongly inserts a space
    between adjacent encoded words in a phrase (RFC 2047 6.2 says to ignore it), even in
    its own output, so only the characters are compared."""
    return str(message["To"].addresses[0].display_name).replace(" ", "")


def _channel(settings: SmtpSettings, **options: Any) -> EmailChannel:
    return EmailChannel(settings, signing_key=KEY, **options)


def smtp_settings(sink: SmtpSink, **overrides: Any) -> SmtpSettings:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": sink.port,
        "security": "none",
        "from_address": FROM,
        "from_name": "Leadership Course",
        "connections": 1,
    }
    values.update(overrides)
    return SmtpSettings(**values)


@pytest.fixture
async def sink() -> AsyncIterator[SmtpSink]:
    async with SmtpSink() as running:
        yield running


@pytest.fixture
async def channel(sink: SmtpSink) -> AsyncIterator[EmailChannel]:
    email = _channel(smtp_settings(sink), limiter=TokenBucket(None), timeout=5)
    await email.start()
    yield email
    await email.close()


# --------------------------------------------------------------------------- the message


async def test_headers_of_a_drip(channel: EmailChannel, sink: SmtpSink) -> None:
    result = await channel.send(outbound())
    assert result.outcome is Outcome.SENT
    [received] = await sink.wait_for(1)
    message = received.message
    purpose, token = address_token(received.mail_from) or ("", "")
    assert received.mail_from.startswith("course+bounce-")  # VERP: the bounce names delivery 1
    assert purpose == BOUNCE and verify(KEY, BOUNCE, token) == (1,)
    assert received.rcpt_tos == ("ada@example.org",)
    assert message["From"] == f"Leadership Course <{FROM}>"
    assert message["To"] == "Ada Lovelace <ada@example.org>"
    assert message["Subject"] == "Tip"
    assert message["Date"].datetime is not None
    assert message["Message-ID"] == result.provider_message_id
    assert message["Message-ID"].endswith("@example.com>")
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-Auto-Response-Suppress"] == "All"
    assert message["List-Id"] == "Leadership Course <course.example.com>"
    reply_to = message["Reply-To"].addresses[0].addr_spec
    purpose, token = address_token(reply_to) or ("", "")
    assert purpose == REPLY and verify(KEY, REPLY, token) == (7, 70)
    unsubscribe = message["List-Unsubscribe"]
    assert unsubscribe.startswith("<mailto:course+unsub-") and unsubscribe.endswith(">")
    address = unsubscribe[len("<mailto:") :].split("?")[0]
    purpose, token = address_token(address) or ("", "")
    assert purpose == UNSUBSCRIBE and verify(KEY, UNSUBSCRIBE, token) == (7,)
    # Without public_url there is no page to POST to: mailto only, and no one-click claim.
    assert "List-Unsubscribe-Post" not in message
    assert "In-Reply-To" not in message and "References" not in message


def test_with_a_public_url_the_unsubscribe_headers_offer_one_click_first() -> None:
    sender = Sender(FROM, "Leadership Course", KEY, public_url="https://drip.example.com")
    message = parse(build_email(outbound(), sender, NOW).data)
    token = unsubscribe_token(KEY, 7)
    assert message["List-Unsubscribe"] == (
        f"<https://drip.example.com/u/{token}>, "
        f"<mailto:course+unsub-{token}@example.com?subject=unsubscribe>"
    )
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # The footer links to the page (a click), in both parts.
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert f"Unsubscribe: https://drip.example.com/u/{token}" in text
    assert f'href="https://drip.example.com/u/{token}"' in html


def test_message_id_is_stable_per_business_key() -> None:
    first = build_email(outbound(), SENDER, NOW)
    again = build_email(outbound(), SENDER, datetime(2025, 3, 5, tzinfo=UTC))
    other = build_email(outbound(2), SENDER, NOW)
    assert (
        first.message_id
        == again.message_id
        == message_id_for(KEY, "enr:1/step:tip-1/occ:0", "example.com")
    )
    assert other.message_id != first.message_id


def test_message_id_cannot_be_computed_without_the_key() -> None:
    """A stranger who guesses the business key still cannot make our Message-ID: the one the
    old unkeyed scheme gave, and the one another key gives, both differ."""
    business_key = "enr:1/step:tip-1/occ:0"
    ours = build_email(outbound(), SENDER, NOW).message_id
    digest = hashlib.sha256(business_key.encode()).digest()[:16]
    unkeyed = f"<{base64.b32encode(digest).decode().rstrip('=').lower()}@example.com>"
    assert ours not in (unkeyed, message_id_for(b"another key", business_key, "example.com"))
    with pytest.raises(ValueError, match="HMAC key"):
        Sender(FROM, "Leadership Course", b"")


def test_without_verp_the_envelope_sender_is_the_from_address() -> None:
    sender = Sender(FROM, "Leadership Course", KEY, verp=False)
    assert build_email(outbound(), sender, NOW).mail_from == FROM


def test_multipart_alternative_from_the_same_markdown() -> None:
    content = compose_reply(
        "Try **spaced** repetition:\n\n- day 1\n- day 3\n\n[More](https://example.com/x)", "Tip"
    )
    message = built(outbound(content=content))
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
    text, html = parts(message)
    assert text.startswith(content.text.strip())
    assert "<strong" in html and ">spaced</strong>" in html
    assert '<a style="' in html and 'href="https://example.com/x"' in html
    assert "<li" in html and "day 3</li>" in html
    assert "max-width:600px" in html and 'name="viewport"' in html
    assert "Unsubscribe" in html and "Unsubscribe: mailto:course+unsub-" in text


@pytest.mark.parametrize("name", ["<script>alert(1)</script>", 'Bob & "Co"'])
def test_html_escapes_learner_text(name: str) -> None:
    text, html = parts(built(outbound(name=name)))
    assert "<script>" not in html
    assert (
        "&lt;script&gt;" in html or "Bob &amp; &quot;Co&quot;" in html or 'Bob &amp; "Co"' in html
    )
    assert name in text


def test_raw_html_in_markdown_is_not_passed_through() -> None:
    content = compose_reply('<img src=x onerror="alert(1)"> [x](javascript:alert(1))', "Tip")
    _, html = parts(built(outbound(content=content)))
    assert "<img src=x" not in html and "&lt;img src=x" in html
    assert 'href="javascript' not in html


INJECTIONS = [
    "Ada\r\nBcc: victim@example.net",
    "Ada\nBcc: victim@example.net",
    "Ada\rBcc: victim@example.net",
    "=?utf-8?q?Ada=0D=0ABcc:_victim@example.net?=",
    "=?utf-8?b?QWRhDQpCY2M6IHZpY3RpbUBleGFtcGxlLm5ldA==?=",
    "Ada\x00\x85\u2028Bcc: victim@example.net",
]


@pytest.mark.parametrize("evil", INJECTIONS)
def test_header_injection_in_name_and_subject_adds_no_header(evil: str) -> None:
    content = compose_reply("Hi", evil)
    data = build_email(outbound(name=evil, content=content), SENDER, NOW).data
    head = data.split(b"\r\n\r\n", 1)[0].decode()
    assert "\nBcc" not in head.replace("\r\n ", " ")
    message = parse(data)
    assert "Bcc" not in message
    assert len(message.get_all("To") or []) == 1
    assert message["To"].addresses[0].addr_spec == "ada@example.org"
    assert "\n" not in str(message["To"]) and "\n" not in str(message["Subject"])
    assert display_name(message) == sanitise(evil).replace(" ", "")
    assert message["Subject"] == sanitise(evil)


@settings(max_examples=200, deadline=None)
@given(name=st.text(max_size=80), subject=st.text(max_size=120))
def test_any_name_and_subject_round_trip_without_extra_headers(name: str, subject: str) -> None:
    content = compose_reply("Hi", subject)
    message = built(outbound(name=name, content=content))
    assert sorted(message.keys()) == sorted(built(outbound()).keys())
    assert message["To"].addresses[0].addr_spec == "ada@example.org"
    assert display_name(message) == sanitise(name).replace(" ", "")
    assert str(message["Subject"]) == sanitise(subject)


def test_non_ascii_names_and_subjects() -> None:
    content = compose_reply("Grüße", "Schöne Grüße, Zoë — 学习 🎓")
    message = built(outbound(name="Zoë Müller-Łukasiewicz 学", content=content))
    assert message["To"].addresses[0].display_name == "Zoë Müller-Łukasiewicz 学"
    assert message["Subject"] == "Schöne Grüße, Zoë — 学习 🎓"
    raw = build_email(outbound(name="Zoë " * 20, content=content), SENDER, NOW).data
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()  # encoded words, no raw 8-bit headers
    assert all(len(line) <= 78 for line in head.split(b"\r\n") if b"<mailto:" not in line)


@pytest.mark.parametrize(("multiple", "hint"), [(False, ANSWER_ONE), (True, ANSWER_MANY)])
def test_quiz_options_are_numbered_in_both_parts(multiple: bool, hint: str) -> None:
    text, html = parts(built(outbound(content=quiz(multiple))))
    assert "1. Cramming\n2. Spaced repetition\n3. Re-reading <notes>" in text
    assert hint in text
    assert "<ol" in html and ">Re-reading &lt;notes&gt;</li>" in html and hint in html


def test_reply_threads_with_the_learners_mail() -> None:
    thread = ("<root@example.com>", "<second@mail.example.org>")
    message = built(
        outbound(
            content=compose_reply("Thanks!", "Tip 3"),
            in_reply_to="<last@mail.example.org>",
            references=thread,
        )
    )
    assert message["In-Reply-To"] == "<last@mail.example.org>"
    assert message["References"].split() == [*thread, "<last@mail.example.org>"]
    assert message["Subject"] == "Re: Tip 3"
    assert "Auto-Submitted" not in message
    again = built(outbound(content=compose_reply("Ok", "RE: Tip 3"), in_reply_to="<x@y.z>"))
    assert again["Subject"] == "RE: Tip 3"
    assert reply_subject("Re:Tip") == "Re:Tip" and reply_subject("Tip") == "Re: Tip"


def test_references_are_trimmed_and_checked() -> None:
    refs = (*(f"<m{i}@example.org>" for i in range(30)), "not-an-id\r\nBcc: x@y.z")
    message = built(outbound(in_reply_to="<last@example.org>", references=refs))
    ids = message["References"].split()
    assert len(ids) == 10 and ids[0] == "<m0@example.org>" and ids[-1] == "<last@example.org>"
    assert "Bcc" not in message


# --------------------------------------------------------------------------- sending


async def test_non_ascii_recipient_uses_smtputf8(channel: EmailChannel, sink: SmtpSink) -> None:
    result = await channel.send(outbound(email="zoë@exämple.org"))
    assert result.outcome is Outcome.SENT, result.error
    [received] = await sink.wait_for(1)
    assert "SMTPUTF8" in received.mail_options
    assert received.rcpt_tos == ("zoë@xn--exmple-cua.org",)


@pytest.mark.parametrize("address", [None, "no-at-sign", "a@b@c", "x\r\ny@example.org", "a@-x-"])
async def test_unusable_address_fails_without_sending(
    channel: EmailChannel, sink: SmtpSink, address: str | None
) -> None:
    result = await channel.send(outbound(email=address))
    assert result.outcome is Outcome.FAILED and result.error
    assert sink.received_count == 0


@pytest.mark.parametrize("security", ["starttls", "tls"])
async def test_tls_and_auth(security: str) -> None:
    async with SmtpSink(security=security, credentials=("trainer", "s3cret")) as sink:  # type: ignore[arg-type]
        email = _channel(
            smtp_settings(sink, security=security, username="trainer", password="s3cret"),
            limiter=TokenBucket(None),
            tls_context=sink.client_tls_context(),
        )
        await email.start()
        result = await email.send(outbound())
        await email.close()
        assert result.outcome is Outcome.SENT
        [received] = await sink.wait_for(1)
        assert received.tls and received.username == "trainer"


async def test_auth_without_tls() -> None:
    async with SmtpSink(credentials=("trainer", "s3cret")) as sink:
        email = _channel(
            smtp_settings(sink, username="trainer", password="s3cret"), limiter=TokenBucket(None)
        )
        await email.start()
        assert (await email.send(outbound())).outcome is Outcome.SENT
        await email.close()


async def test_wrong_password_names_the_settings() -> None:
    async with SmtpSink(credentials=("trainer", "s3cret")) as sink:
        email = _channel(smtp_settings(sink, username="trainer", password="nope"))
        with pytest.raises(DripperError, match="DRIPPER_SMTP_USERNAME") as info:
            await email.start()
        assert "535" in str(info.value) and "nope" not in str(info.value)
        assert sink.auth_failures >= 1  # aiosmtplib tries each offered mechanism


async def test_unreachable_server_names_the_host_setting(sink: SmtpSink) -> None:
    port = sink.port
    await sink.stop()
    email = _channel(smtp_settings(sink, port=port), timeout=2)
    with pytest.raises(DripperError, match=r"\[smtp\] host \(DRIPPER_SMTP_HOST\)"):
        await email.start()


async def test_missing_settings_are_named() -> None:
    with pytest.raises(DripperError, match="DRIPPER_SMTP_HOST"):
        await _channel(SmtpSettings()).start()
    with pytest.raises(DripperError, match="DRIPPER_SMTP_FROM_ADDRESS"):
        await _channel(SmtpSettings(host="127.0.0.1")).start()


async def test_tls_mismatch_says_which_setting(sink: SmtpSink) -> None:
    email = _channel(smtp_settings(sink, security="tls"), timeout=2)
    with pytest.raises(DripperError, match="DRIPPER_SMTP_SECURITY"):
        await email.start()


async def test_one_connection_carries_many_messages(channel: EmailChannel, sink: SmtpSink) -> None:
    results = await asyncio.gather(*(channel.send(outbound(n)) for n in range(25)))
    assert {result.outcome for result in results} == {Outcome.SENT}
    await sink.wait_for(25)
    assert sink.connections == 1
    assert len({m.message["Message-ID"] for m in sink.messages}) == 25


async def test_pool_uses_at_most_its_connections(sink: SmtpSink) -> None:
    email = _channel(smtp_settings(sink, connections=3), limiter=TokenBucket(None))
    await email.start()
    results = await asyncio.gather(*(email.send(outbound(n)) for n in range(30)))
    await email.close()
    assert {result.outcome for result in results} == {Outcome.SENT}
    assert 1 <= sink.connections <= 3
    assert len({m.connection for m in sink.messages}) == sink.connections


async def test_reconnects_after_the_server_closed_connections(
    channel: EmailChannel, sink: SmtpSink
) -> None:
    for n in range(3):
        assert (await channel.send(outbound(n))).outcome is Outcome.SENT
    sink.drop_connections()
    results = [await channel.send(outbound(n)) for n in range(3, 6)]
    assert {result.outcome for result in results} == {Outcome.SENT}
    await sink.wait_for(6)
    assert sink.connections == 2


@pytest.mark.parametrize(
    ("stage", "code", "text", "outcome"),
    [
        ("data", 451, "4.3.0 Temporary local problem", Outcome.RETRY),
        ("mail", 450, "4.2.1 Mailbox busy, try later", Outcome.RETRY),
        ("rcpt", 452, "4.5.3 Too many recipients", Outcome.RETRY),
        ("data", 554, "5.7.1 Message rejected as spam", Outcome.FAILED),
        ("mail", 550, "5.7.1 Sender not allowed", Outcome.FAILED),
        ("rcpt", 550, "5.7.1 Relaying denied", Outcome.FAILED),
        ("rcpt", 553, "mailbox name not allowed", Outcome.UNREACHABLE),
        ("rcpt", 550, "5.2.1 Mailbox disabled", Outcome.UNREACHABLE),
    ],
)
async def test_server_replies_are_classified_with_their_text(
    channel: EmailChannel, sink: SmtpSink, stage: Any, code: int, text: str, outcome: Outcome
) -> None:
    sink.fail_next(code, text, stage=stage)
    result = await channel.send(outbound())
    assert result.outcome is outcome
    assert result.error is not None and f"{code} {text}" in result.error
    assert (await channel.send(outbound(2))).outcome is Outcome.SENT  # the connection goes on
    assert sink.connections == 1


@pytest.mark.parametrize(
    ("stage", "text", "hint"),
    [
        ("mail", "5.7.1 Not your address", True),  # MAIL FROM refused: always the hint
        ("data", "5.7.60 SMTP; Client does not have permissions to send as this sender", True),
        ("data", "5.7.1 Message rejected as spam", False),
    ],
)
async def test_a_refused_envelope_sender_says_how_to_turn_verp_off(
    channel: EmailChannel, sink: SmtpSink, stage: Any, text: str, hint: bool
) -> None:
    sink.fail_next(550, text, stage=stage)
    result = await channel.send(outbound())
    assert result.outcome is Outcome.FAILED and result.error is not None
    assert ("set [smtp] verp = false" in result.error) is hint
    assert ("the envelope sender was course+bounce-" in result.error) is hint


async def test_unknown_user_is_unreachable(channel: EmailChannel, sink: SmtpSink) -> None:
    sink.reject_recipient("gone@example.org")
    result = await channel.send(outbound(email="gone@example.org"))
    assert result.outcome is Outcome.UNREACHABLE
    assert result.error is not None and "550 5.1.1 <gone@example.org>: user unknown" in result.error


async def test_421_closes_the_connection_and_retries_later(
    channel: EmailChannel, sink: SmtpSink
) -> None:
    sink.fail_next(421, "4.7.0 Too many connections, closing", stage="mail")
    result = await channel.send(outbound())
    assert result.outcome is Outcome.RETRY and "421 4.7.0" in (result.error or "")
    assert (await channel.send(outbound(2))).outcome is Outcome.SENT
    assert sink.connections == 2


async def test_drop_after_data_is_uncertain(channel: EmailChannel, sink: SmtpSink) -> None:
    sink.drop_after_data()
    result = await channel.send(outbound())
    assert result.outcome is Outcome.UNCERTAIN
    expected = message_id_for(KEY, "enr:1/step:tip-1/occ:0", "example.com")
    assert result.provider_message_id == expected
    assert (await channel.send(outbound(2))).outcome is Outcome.SENT
    [dropped, delivered] = await sink.wait_for(2)
    assert not dropped.answered and delivered.answered


async def test_timeout_after_data_is_uncertain(sink: SmtpSink) -> None:
    email = _channel(smtp_settings(sink), limiter=TokenBucket(None), timeout=0.3)
    await email.start()
    sink.hang_after_data()
    result = await email.send(outbound())
    assert result.outcome is Outcome.UNCERTAIN
    assert (await email.send(outbound(2))).outcome is Outcome.SENT
    await email.close()


async def test_server_down_mid_run_is_retry(sink: SmtpSink) -> None:
    email = _channel(smtp_settings(sink), limiter=TokenBucket(None), timeout=2)
    await email.start()
    await sink.stop()
    result = await email.send(outbound())
    assert result.outcome is Outcome.RETRY and result.error


async def test_rate_limit_is_honoured(sink: SmtpSink) -> None:
    email = _channel(smtp_settings(sink, connections=2, messages_per_second=40))
    await email.start()
    started = time.monotonic()
    results = await asyncio.gather(*(email.send(outbound(n)) for n in range(20)))
    elapsed = time.monotonic() - started
    await email.close()
    assert {result.outcome for result in results} == {Outcome.SENT}
    assert elapsed >= 0.45
