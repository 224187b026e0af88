"""Structured hostile mail: the parser, the classifier and the embedded IMAP server's
BODYSTRUCTURE never raise, whatever the headers, parameters, encodings and nesting."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imapclient.response_parser import parse_fetch_response  # type: ignore[import-untyped]

from dripper.inbound.email.classify import classify
from dripper.inbound.email.parse import (
    attachment_contents,
    attachments_from_bodystructure,
    parse_mail,
)
from dripper.sandbox.imap import _structure

KEY = b"fuzz-hmac-key-0123456789abcdef"

_word = st.text(alphabet=st.sampled_from(list("abcXYZ09-_.=%'*\"é\x00 ;")), max_size=12)
_param_name = st.sampled_from(
    [
        "name",
        "name*",
        "name*0*",
        "name*1",
        "filename",
        "filename*",
        "filename*0*",
        "charset",
        "boundary",
        "boundary*",
        "boundary*0*",
        "report-type",
    ]
)
_param = st.builds(lambda k, v: f"; {k}={v}", _param_name, _word | st.just("utf-8''%FF%FE"))
_ctype = st.sampled_from(
    [
        "text/plain",
        "text/html",
        "multipart/mixed",
        "multipart/alternative",
        "multipart/report",
        "message/rfc822",
        "message/delivery-status",
        "application/pdf",
        "image/png",
        "bogus",
        "",
    ]
)
_encoding = st.sampled_from(["7bit", "8bit", "base64", "quoted-printable", "x-uuencode", "??"])
_header_value = _word | st.sampled_from(
    ["=?utf-8?b?w7w=?=", "=?bogus?q?x?=", "=?utf-8?q?=FF?=", "<a@b>", "auto-replied", "bulk"]
)


@st.composite
def _part(draw: st.DrawFn, depth: int = 0) -> bytes:
    ctype = draw(_ctype)
    params = "".join(draw(st.lists(_param, max_size=3)))
    lines = [f"Content-Type: {ctype}{params}"]
    if draw(st.booleans()):
        lines.append(f"Content-Transfer-Encoding: {draw(_encoding)}")
    if draw(st.booleans()):
        lines.append(
            f"Content-Disposition: attachment{''.join(draw(st.lists(_param, max_size=2)))}"
        )
    for name in draw(
        st.lists(
            st.sampled_from(
                [
                    "Subject",
                    "Auto-Submitted",
                    "Precedence",
                    "X-Autoreply",
                    "In-Reply-To",
                    "References",
                    "Reply-To",
                    "To",
                    "Message-ID",
                ]
            ),
            max_size=4,
        )
    ):
        lines.append(f"{name}: {draw(_header_value)}")
    head = "\r\n".join(lines).encode("utf-8", "surrogatepass")
    if ctype.startswith("multipart/") and depth < 3:
        boundary = draw(st.sampled_from(["B", "b1", "", "x y"]))
        children = draw(st.lists(_part(depth + 1), max_size=3))
        body = b"".join(b"--" + boundary.encode() + b"\r\n" + child + b"\r\n" for child in children)
        if draw(st.booleans()):
            body += b"--" + boundary.encode() + b"--\r\n"
        head = head.replace(
            f"Content-Type: {ctype}".encode(),
            f'Content-Type: {ctype}; boundary="{boundary}"'.encode(),
            1,
        )
    else:
        body = draw(st.binary(max_size=60)) if draw(st.booleans()) else draw(_word).encode()
    return head + b"\r\n\r\n" + body


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sender=_header_value, part=_part())
def test_any_structured_mail_parses_and_classifies(sender: str, part: bytes) -> None:
    raw = f"From: {sender}\r\nMIME-Version: 1.0\r\n".encode("utf-8", "surrogatepass") + part
    mail = parse_mail(raw)
    classify(mail, KEY)
    # The media fetcher takes the files out by the same walk: one for each listed, in order.
    if not mail.defects:
        contents = attachment_contents(raw)
        assert [len(c) for c in contents] == [a.size for a in mail.attachments]


def _as_imaplib_gives_it(response: bytes) -> list[bytes | tuple[bytes, bytes]]:
    """A response line with literals split out the way imaplib hands them to imapclient."""
    pieces: list[bytes | tuple[bytes, bytes]] = []
    while (match := re.search(rb"\{(\d+)\}\r\n", response)) is not None:
        end = match.end() + int(match.group(1))
        pieces.append(
            (response[: match.start()] + match.group(0)[:-2], response[match.end() : end])
        )
        response = response[end:]
    pieces.append(response)
    return pieces


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(part=_part())
def test_the_embedded_server_always_gives_a_bodystructure_clients_can_read(part: bytes) -> None:
    raw = b"From: a@example.com\r\nMIME-Version: 1.0\r\n" + part
    structure = _structure(raw)
    assert b"\x00" not in structure
    parsed = parse_fetch_response(_as_imaplib_gives_it(b"1 (BODYSTRUCTURE " + structure + b")"))
    attachments_from_bodystructure(parsed[1][b"BODYSTRUCTURE"])


def test_a_nul_in_a_charset_label_is_an_unknown_charset() -> None:
    # Found by the fuzz above: codecs.lookup raises ValueError, not LookupError, on a NUL.
    raw = b"From: a@example.com\r\nContent-Type: text/plain; charset=\x00\r\n\r\nhello\r\n"
    assert "hello" in parse_mail(raw).text
