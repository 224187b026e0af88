"""DKIM: `dripper dkim keygen` writes a key and prints its DNS record; mail the email channel
sends through the real SMTP sink carries a signature dkimpy verifies against that record, and
which breaks when a signed header (List-Unsubscribe) is changed or added."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import dkim
import pytest

from dripper.channels.base import Outbound
from dripper.channels.email.channel import EmailChannel
from dripper.channels.email.dkim import load_signer
from dripper.channels.ratelimit import TokenBucket
from dripper.config import SmtpSettings
from dripper.content.compose import Content
from dripper.errors import DripperError
from dripper.sandbox.smtp import SmtpSink

KEY = b"dkim-test-hmac-key-0123456789"


def keygen(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dripper", "dkim", "keygen", *args],
        cwd=directory,
        capture_output=True,
        text=True,
        env={**os.environ, "DRIPPER_SMTP_FROM_ADDRESS": "course@example.com"},
        check=False,
    )


def printed_record(output: str) -> tuple[str, str]:
    name = re.search(r"^name:\s+(\S+)$", output, re.MULTILINE)
    value = re.search(r"^value:\s+(.+)$", output, re.MULTILINE)
    assert name and value, output
    return name[1], value[1]


def dns_with(name: str, value: str) -> Callable[..., bytes | None]:
    """dkimpy's DNS function, answering from the printed record and nothing else."""

    def lookup(query: bytes, timeout: int = 5) -> bytes | None:
        return value.encode() if query.decode().rstrip(".") == name else None

    return lookup


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    directory = tmp_path_factory.mktemp("dkim")
    done = keygen(directory, "--selector", "drip2026")
    assert done.returncode == 0, done.stderr
    name, value = printed_record(done.stdout)
    return directory / "dkim.key", name, value


def test_keygen_writes_a_private_key_and_prints_the_record(
    generated: tuple[Path, str, str],
) -> None:
    key, name, value = generated
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_bytes().startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    assert name == "drip2026._domainkey.example.com"
    assert value.startswith("v=DKIM1; k=rsa; p=MII")


def test_keygen_never_replaces_a_key(generated: tuple[Path, str, str]) -> None:
    key, _, _ = generated
    before = key.read_bytes()
    done = keygen(key.parent, "--selector", "drip2026")
    assert done.returncode == 1
    assert "exists; nothing written" in done.stderr
    assert key.read_bytes() == before


def test_keygen_refuses_a_selector_that_is_no_dns_label(tmp_path: Path) -> None:
    done = keygen(tmp_path, "--selector", "no such/selector")
    assert done.returncode == 1 and "not a DNS label" in done.stderr
    assert not (tmp_path / "dkim.key").exists()


async def test_sent_mail_verifies_against_the_printed_record(
    generated: tuple[Path, str, str],
) -> None:
    key, name, value = generated
    sink = SmtpSink("127.0.0.1")
    await sink.start()
    settings = SmtpSettings(
        host="127.0.0.1",
        port=sink.port,
        security="none",
        from_address="course@example.com",
        from_name="Leadership Course",
        dkim_selector="drip2026",
        dkim_key_file=key,
    )
    channel = EmailChannel(
        settings,
        signing_key=KEY,
        limiter=TokenBucket(None),
        public_url="https://drip.example.com",
    )
    await channel.start()
    try:
        content = Content(markdown="Pivot tables *summarise*.", subject="Tip: Grüße")
        await channel.send(
            Outbound(
                delivery_id=1,
                business_key="enr:1/step:tip/occ:0",
                content=content,
                telegram_chat_id=None,
                email="zoe@example.org",
                learner_name="Zoë Ä",
                unsubscribe_token="abcdefghijklmnopqrstuvwxyz",
            )
        )
        [received] = await sink.wait_for(1)
    finally:
        await channel.close()
        await sink.stop()
    data = received.data
    assert data.startswith(b"DKIM-Signature: ")
    assert dkim.verify(data, dnsfunc=dns_with(name, value))
    signature = received.message["DKIM-Signature"]
    tags = {k.strip(): v for k, _, v in (p.partition("=") for p in signature.split(";"))}
    signed = [h.strip() for h in "".join(tags["h"].split()).split(":")]
    for header in (
        "from",
        "to",
        "subject",
        "message-id",
        "list-unsubscribe",
        "list-unsubscribe-post",
    ):
        assert header in signed, signed
    assert tags["d"].strip() == "example.com" and tags["s"].strip() == "drip2026"
    # A relay that changes the one-click URL in the header (the body left as it is), or adds
    # a second header, breaks the signature.
    head, _, body = data.partition(b"\r\n\r\n")
    changed_head = head.replace(b"https://drip.example.com/u/", b"https://evil.example/u/")
    assert changed_head != head
    changed = changed_head + b"\r\n\r\n" + body
    assert not dkim.verify(changed, dnsfunc=dns_with(name, value))
    added = head + b"\r\nList-Unsubscribe: <https://evil.example/u/x>\r\n\r\n" + body
    assert not dkim.verify(added, dnsfunc=dns_with(name, value))


def test_a_key_that_cannot_be_used_is_named_with_the_fix(tmp_path: Path) -> None:
    missing = tmp_path / "nope.key"
    with pytest.raises(DripperError, match=r"cannot read the DKIM key .*nope\.key.*keygen"):
        load_signer("s1", "example.com", missing)
    junk = tmp_path / "junk.key"
    junk.write_text("not a key")
    with pytest.raises(DripperError, match="not a PEM RSA private key"):
        load_signer("s1", "example.com", junk)


def test_dkim_needs_both_settings() -> None:
    with pytest.raises(ValueError, match="both dkim_selector and dkim_key_file"):
        SmtpSettings(host="h", from_address="a@example.com", dkim_selector="s1")


def test_the_openssl_signature_is_the_one_dkimpy_computes(generated: tuple[Path, str, str]) -> None:
    """The RSA step is OpenSSL's (dkimpy's own is pure Python, 20 times slower): PKCS#1 v1.5
    is deterministic, so both must give the same bytes."""
    import hashlib

    from dkim.crypto import RSASSA_PKCS1_v1_5_sign, parse_pem_private_key

    from dripper.channels.email.dkim import _fast_rsa_sign

    key = parse_pem_private_key(generated[0].read_bytes())
    for text in (b"", b"hello", b"x" * 10_000):
        expected = RSASSA_PKCS1_v1_5_sign(dkim.HashThrough(hashlib.sha256(text)), key)
        assert _fast_rsa_sign(dkim.HashThrough(hashlib.sha256(text)), key) == bytes(expected)
