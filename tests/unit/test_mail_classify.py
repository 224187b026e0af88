"""Incoming email, pure: parsing and classification of real-world samples (tests/data/mail)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dripper.inbound.email.classify import Kind, classify, parse_choices
from dripper.inbound.email.parse import (
    attachments_from_bodystructure,
    decode_bytes,
    dedupe_key,
    html_to_text,
    normalise_message_id,
    parse_mail,
    strip_reply,
)
from dripper.tokens import reply_address, reply_token, unsubscribe_address, unsubscribe_token
from tests.fixtures.mail import eml

KEY = b"test-hmac-key-0123456789"
LEARNER = "ann@example.net"
OURS = "<abc123@example.com>"
REPLY_TO = reply_address("course@example.com", reply_token(KEY, 7, 3))
UNSUBSCRIBE_TO = unsubscribe_address("course@example.com", unsubscribe_token(KEY, 7))


def sample(name: str, to: str = REPLY_TO) -> bytes:
    return eml(name, FROM=LEARNER, TO=to, IN_REPLY_TO=OURS, RECIPIENT=LEARNER, ORIGINAL_ID=OURS)


@pytest.mark.parametrize(
    ("name", "kind", "reason"),
    [
        ("dsn_hard_postfix", Kind.BOUNCE, "hard bounce: ann@example.net failed 5.1.1"),
        ("dsn_soft_delayed", Kind.BOUNCE, "soft bounce: ann@example.net delayed 4.4.1"),
        ("dsn_hard_by_message_id", Kind.BOUNCE, "hard bounce"),
        ("ooo_exchange", Kind.AUTO_REPLY, "Auto-Submitted: auto-replied"),
        ("ooo_gmail_vacation", Kind.AUTO_REPLY, "Auto-Submitted: auto-replied"),
        ("ooo_german_subject", Kind.AUTO_REPLY, "out-of-office subject"),
        ("ooo_french_subject", Kind.AUTO_REPLY, "out-of-office subject"),
        ("ooo_x_autoreply", Kind.AUTO_REPLY, "x-autoreply header"),
        ("precedence_bulk", Kind.AUTO_REPLY, "Precedence: bulk"),
        ("stop", Kind.UNSUBSCRIBE, "the message says only stop"),
        ("unsubscribe_mailto", Kind.UNSUBSCRIBE, "the message says only stop"),
        ("quiz_answer", Kind.ANSWER, "an answer"),
        ("quiz_answer_multi", Kind.ANSWER, "an answer"),
        ("reply_gmail", Kind.REPLY, "a reply"),
        ("reply_outlook_html", Kind.REPLY, "a reply"),
        ("reply_latin1_no_charset", Kind.REPLY, "a reply"),
        ("reply_wrong_charset", Kind.REPLY, "a reply"),
        ("reply_bogus_charset", Kind.REPLY, "a reply"),
        ("reply_with_attachment", Kind.REPLY, "a reply"),
        ("malformed_mime", Kind.REPLY, "a reply"),
    ],
)
def test_samples_are_classified(name: str, kind: Kind, reason: str) -> None:
    verdict = classify(parse_mail(sample(name)), KEY)
    assert verdict.kind is kind
    assert verdict.reason.startswith(reason)


@pytest.mark.parametrize(
    ("name", "body"),
    [
        (
            "reply_gmail",
            "I rebuilt the monthly sales report as a table \u2013 it took ten minutes.\n"
            "The totals row is great!",
        ),
        ("reply_outlook_html", "Ich habe die Pivot-Tabelle für die Kostenstellen gebaut."),
        ("reply_latin1_no_charset", "Das Diagramm war schön, danke für den Kurs!"),
        ("reply_wrong_charset", "Très utile, merci ! Les tableaux croisés marchent."),
        ("reply_bogus_charset", "Grüße, it worked \u2013 mostly."),
        ("quiz_answer", "2"),
        ("malformed_mime", "Hello, this is broken base64"),
    ],
)
def test_reply_text_is_decoded_and_stripped(name: str, body: str) -> None:
    mail = parse_mail(sample(name))
    assert mail.body == body
    assert body.split("\n")[0] in mail.text


def test_the_raw_text_keeps_quote_and_signature() -> None:
    mail = parse_mail(sample("reply_gmail"))
    assert "Best regards,\nAnn Example" in mail.text
    assert "> What did you try?" in mail.text
    assert "Best regards" not in mail.body and ">" not in mail.body
    assert mail.thread_ids == (OURS,)
    assert mail.message_id == "<caf=+reply1.gmail@mail.gmail.com>"
    assert mail.from_address == LEARNER and mail.from_name == "Ann Example"


def test_html_only_mail_becomes_text_without_scripts_or_quoted_history() -> None:
    mail = parse_mail(sample("reply_outlook_html"))
    assert mail.html_only
    assert "alert" not in mail.text and "margin" not in mail.text
    assert "Grüße aus München" in mail.text  # a signature: in the raw text, not the body
    assert "Gesendet" not in mail.body


def test_attachments_metadata_with_rfc2231_names() -> None:
    mail = parse_mail(sample("reply_with_attachment"))
    assert [a.as_dict() for a in mail.attachments] == [
        {"filename": "Tabelle übersicht.png", "mime_type": "image/png", "size": 70}
    ]


def test_malformed_mime_keeps_text_attachment_and_defects() -> None:
    mail = parse_mail(sample("malformed_mime"))
    assert "CloseBoundaryNotFoundDefect" in mail.defects
    assert [a.filename for a in mail.attachments] == ["report.pdf"]


def test_bounce_details() -> None:
    verdict = classify(parse_mail(sample("dsn_hard_postfix")), KEY)
    (bounce,) = verdict.bounces
    assert (bounce.recipient, bounce.action, bounce.status) == (LEARNER, "failed", "5.1.1")
    assert bounce.hard and not bounce.soft
    assert "User unknown" in bounce.diagnostic
    assert parse_mail(sample("dsn_hard_postfix")).report.returned_message_ids == (OURS,)  # type: ignore[union-attr]
    soft = classify(parse_mail(sample("dsn_soft_delayed")), KEY).bounces[0]
    assert soft.soft and not soft.hard
    report = parse_mail(sample("dsn_hard_by_message_id")).report
    assert report is not None and report.returned_message_ids == (OURS,)


def test_tokens_are_verified() -> None:
    verdict = classify(parse_mail(sample("reply_gmail")), KEY)
    assert [(t.purpose, t.ids) for t in verdict.tokens] == [("reply", (7, 3))]
    assert classify(parse_mail(sample("reply_gmail")), b"another-key-entirely").tokens == ()
    forged = REPLY_TO.replace("+", "+x", 1)
    assert classify(parse_mail(sample("reply_gmail", to=forged)), KEY).tokens == ()
    assert classify(parse_mail(sample("reply_gmail")), None).tokens == ()


def test_the_unsubscribe_address_wins_over_the_content() -> None:
    verdict = classify(parse_mail(sample("reply_gmail", to=UNSUBSCRIBE_TO)), KEY)
    assert verdict.kind is Kind.UNSUBSCRIBE
    assert [(t.purpose, t.ids) for t in verdict.tokens] == [("unsub", (7,))]


def test_delivered_to_and_x_original_to_carry_the_token() -> None:
    raw = sample("reply_gmail", to="course@example.com")
    raw = f"Delivered-To: {REPLY_TO}\n".encode() + raw
    assert [t.ids for t in classify(parse_mail(raw), KEY).tokens] == [(7, 3)]
    raw = f"X-Original-To: {REPLY_TO}\n".encode() + sample("reply_gmail", to="x@example.com")
    assert [t.ids for t in classify(parse_mail(raw), KEY).tokens] == [(7, 3)]


@pytest.mark.parametrize(
    ("text", "choices"),
    [
        ("2", (1,)),
        ("  3.\n", (2,)),
        ("b", (1,)),
        ("B)", (1,)),
        ("(c)", (2,)),
        ("1, 3", (0, 2)),
        ("1,3", (0, 2)),
        ("1 and 3", (0, 2)),
        ("A und C", (0, 2)),
        ("3 1", (0, 2)),
        ("Answer: 2", (1,)),
        ("#2", (1,)),
        ("2\nbecause exact matches are the default", (1,)),
        ("2 because it is exact", None),
        ("I think 2", None),
        ("0", None),
        ("Thanks!", None),
        ("", None),
        ("12345", None),
    ],
)
def test_parse_choices(text: str, choices: tuple[int, ...] | None) -> None:
    assert parse_choices(text) == choices


@pytest.mark.parametrize(
    ("subject", "auto"),
    [
        ("Out of Office: Re: quiz", True),
        ("Automatic reply: quiz", True),
        ("Abwesenheitsnotiz: quiz", True),
        ("Automatische Antwort: quiz", True),
        ("Respuesta automática: quiz", True),
        ("Risposta automatica: quiz", True),
        ("Automatisch antwoord: quiz", True),
        ("Autosvar: quiz", True),
        ("Автоответ: quiz", True),
        ("自動応答: quiz", True),
        ("Re: quiz", False),
        ("Re: out of office hours question", False),
    ],
)
def test_out_of_office_subjects(subject: str, auto: bool) -> None:
    raw = f"From: {LEARNER}\nSubject: {subject}\nContent-Type: text/plain; charset=utf-8\n\nHi\n"
    verdict = classify(parse_mail(raw.encode()), KEY)
    assert (verdict.kind is Kind.AUTO_REPLY) is auto


@pytest.mark.parametrize(
    ("header", "auto"),
    [
        ("Auto-Submitted: no", False),
        ("Auto-Submitted: auto-generated", True),
        ("Auto-Submitted: auto-replied; owner-email=x@example.net", True),
        ("Precedence: junk", True),
        ("Precedence: list", True),
        ("Precedence: auto_reply", True),
        ("Precedence: first-class", False),
        ("X-Autorespond: on", True),
        ("Return-Path: <>", True),
    ],
)
def test_auto_reply_headers(header: str, auto: bool) -> None:
    raw = f"{header}\nFrom: {LEARNER}\nSubject: Re: quiz\n\nThanks\n"
    assert (classify(parse_mail(raw.encode()), KEY).kind is Kind.AUTO_REPLY) is auto


def test_strip_reply_bottom_posting_and_quote_only() -> None:
    bottom = "> What did you try?\n> --\n\nPivot tables, finally.\n"
    assert strip_reply(bottom) == "Pivot tables, finally."
    assert (
        strip_reply("Ja!\n\nAm 05.12.2026 um 09:00 schrieb Kurs <k@example.com>:\n> Frage\n")
        == "Ja!"
    )
    assert strip_reply("> only a quote\n") == ""


def test_html_to_text_keeps_structure() -> None:
    text = html_to_text(
        "<p>One &amp; two</p><ul><li>a</li><li>b</li></ul><blockquote>old</blockquote>"
        "<style>x{}</style>"
    )
    assert text == "One & two\n\n- a\n- b\n\n> old"


@pytest.mark.parametrize(
    ("data", "charset", "text"),
    [
        ("Grüße".encode(), "utf-8", "Grüße"),
        ("Grüße".encode(), None, "Grüße"),
        ("Grüße".encode(), "us-ascii", "Grüße"),
        ("Grüße".encode("latin-1"), "utf-8", "Grüße"),
        ("Grüße".encode("latin-1"), "no-such-charset", "Grüße"),
        ("Привет".encode("koi8-r"), "koi8-r", "Привет"),
        ("日本語".encode("iso-2022-jp"), "iso-2022-jp", "日本語"),
    ],
)
def test_decode_bytes_is_lenient(data: bytes, charset: str | None, text: str) -> None:
    assert decode_bytes(data, charset) == text


def test_dedupe_key() -> None:
    assert dedupe_key(b"Message-ID:  <AbC@Example.COM>\n\nx") == "<abc@example.com>"
    assert dedupe_key(b"Subject: no id\n\nx").startswith("sha256:")
    assert dedupe_key(b"Subject: no id\n\nx") != dedupe_key(b"Subject: no id\n\ny")
    assert normalise_message_id("garbage") is None
    assert normalise_message_id("<" + "x" * 600 + "@a>").startswith("mid-sha256:")  # type: ignore[union-attr]


def test_attachments_from_bodystructure() -> None:
    # What IMAPClient returns for multipart/mixed with a text part and a base64 PDF.
    structure = (
        [
            (b"text", b"plain", (b"charset", b"utf-8"), None, None, b"7bit", 20, 1, None, None),
            (
                b"application",
                b"pdf",
                (b"name", b"big.pdf"),
                None,
                None,
                b"base64",
                4000,
                None,
                (b"attachment", (b"filename", b"=?utf-8?q?gro=C3=9F.pdf?=")),
                None,
            ),
        ],
        b"mixed",
        (b"boundary", b"b1"),
        None,
        None,
    )
    assert [a.as_dict() for a in attachments_from_bodystructure(structure)] == [
        {"filename": "groß.pdf", "mime_type": "application/pdf", "size": 2923}
    ]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_parse_without_error(data: bytes) -> None:
    mail = parse_mail(data)
    classify(mail, KEY)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300), st.sampled_from(["utf-8", "latin-1", "bogus", "", "utf-16"]))
def test_any_text_part_parses(body: str, charset: str) -> None:
    raw = (
        f"From: {LEARNER}\nContent-Type: text/plain; charset={charset}\n"
        "Content-Transfer-Encoding: 8bit\n\n"
    ).encode() + body.encode("utf-8", "surrogatepass")
    classify(parse_mail(raw), KEY)


# --------------------------------------------------------------------------- authentication


def _with_results(*values: str) -> bytes:
    headers = "".join(f"Authentication-Results: {value}\n" for value in values)
    return headers.encode() + sample("reply_gmail")


@pytest.mark.parametrize(
    "value",
    [
        "mx.google.com; dkim=pass header.i=@example.net; spf=pass smtp.mailfrom=example.net;"
        " dmarc=fail (p=NONE sp=NONE dis=NONE) header.from=example.net",
        "mx.example.com 1; dmarc=FAIL header.from=example.net",
        # Microsoft 365: no authserv-id, which the RFC 8601 parser refuses; read by the fallback.
        "spf=fail (sender IP is 203.0.113.9) smtp.mailfrom=evil.example; dkim=none (message not"
        " signed) header.d=none;dmarc=fail action=none header.from=example.net;compauth=fail",
    ],
)
def test_dmarc_failure_is_read_from_authentication_results(value: str) -> None:
    verdict = classify(parse_mail(_with_results(value)), KEY)
    assert verdict.dmarc_failure is not None and verdict.dmarc_failure.startswith("DMARC failed")


def test_a_dmarc_pass_anywhere_does_not_outweigh_a_failure() -> None:
    """A sender can write its own Authentication-Results; a forged "pass" never adds trust."""
    passed = "mx.example.com; dmarc=pass header.from=example.net"
    failed = "mx.example.com; dmarc=fail header.from=example.net"
    assert classify(parse_mail(_with_results(passed)), KEY).dmarc_failure is None
    assert classify(parse_mail(_with_results(passed, failed)), KEY).dmarc_failure is not None
    assert classify(parse_mail(_with_results("garbage ;;; ===")), KEY).dmarc_failure is None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_authentication_results_header_is_read_without_raising(value: str) -> None:
    line = value.replace("\r", " ").replace("\n", " ")
    mail = parse_mail(f"Authentication-Results: {line}\n".encode() + sample("reply_gmail"))
    classify(mail, KEY)
