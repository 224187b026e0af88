"""DKIM (RFC 6376): signing every outgoing message with dkimpy, and making the key.

`[smtp] dkim_selector` and `dkim_key_file` turn signing on; the signing domain is the From
address's domain (`dkim_domain` to sign for a parent domain, which DMARC's relaxed alignment
accepts). `dripper dkim keygen` writes a 2048-bit RSA key (mode 0600) and prints the TXT record
to publish at `<selector>._domainkey.<domain>`.

Signed: the headers dkimpy recommends (From, To, Subject, Date, Message-ID, Reply-To,
In-Reply-To, References, List-Id, List-Unsubscribe, MIME-Version, Content-Type...) plus
List-Unsubscribe-Post and Auto-Submitted, as RFC 8058 asks of one-click unsubscribe; From and
the two List-Unsubscribe headers are signed once more than they occur, so none can be added
later. Canonicalisation relaxed/relaxed: survives the whitespace changes relays make.
"""

from __future__ import annotations

import base64
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dripper.errors import DripperError

KEY_BITS = 2048
_SELECTOR = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*$")
_ALSO_SIGNED = (b"list-unsubscribe-post", b"auto-submitted")
_OVERSIGNED = (b"from", b"list-unsubscribe", b"list-unsubscribe-post")


def valid_selector(selector: str) -> bool:
    """A DNS label (or dotted labels) as DKIM selectors are: `dripper2026`, `mail.jan`."""
    return bool(_SELECTOR.match(selector)) and len(selector) <= 253


@dataclass(frozen=True)
class DkimSigner:
    """Signs a whole message (CRLF line ends) for `domain` with the key of `selector`."""

    selector: str
    domain: str
    private_key: bytes = field(repr=False)

    def sign(self, message: bytes) -> bytes:
        """`message` with its DKIM-Signature header in front."""
        import dkim

        _use_fast_rsa(dkim)
        signer = dkim.DKIM(message, linesep=b"\r\n")
        signer.should_sign = signer.should_sign | set(_ALSO_SIGNED)
        signer.frozen_sign = signer.frozen_sign | set(_OVERSIGNED)
        signature: bytes = signer.sign(
            self.selector.encode(),
            self.domain.encode(),
            self.private_key,
            canonicalize=(b"relaxed", b"relaxed"),
        )
        return signature + message

    @property
    def record_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"

    def public_record(self) -> str:
        """The TXT record value this key needs in DNS: `v=DKIM1; k=rsa; p=...`."""
        return dns_record_value(public_key(self.private_key))


# dkimpy computes the RSA signature in pure Python: 7-8 ms a message here, the event loop
# blocked all along. The same PKCS#1 v1.5 signature from `cryptography` (OpenSSL) takes 0.4 ms,
# so dkimpy's RSA step is swapped for it; its canonicalisation and header building are kept.
# The signatures are the same bytes (PKCS#1 v1.5 is deterministic); a test checks both.
_keys: dict[int, Any] = {}


def _fast_rsa_sign(digest: Any, private_key: dict[str, int]) -> bytes:
    """dkim.crypto.RSASSA_PKCS1_v1_5_sign(hash, key dict), done by OpenSSL."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

    key = _keys.get(private_key["modulus"])
    if key is None:
        numbers = rsa.RSAPrivateNumbers(
            p=private_key["prime1"],
            q=private_key["prime2"],
            d=private_key["privateExponent"],
            dmp1=private_key["exponent1"],
            dmq1=private_key["exponent2"],
            iqmp=private_key["coefficient"],
            public_numbers=rsa.RSAPublicNumbers(
                private_key["publicExponent"], private_key["modulus"]
            ),
        )
        key = _keys[private_key["modulus"]] = numbers.private_key()
    algorithm = {"sha256": hashes.SHA256(), "sha1": hashes.SHA1()}[digest.name]
    signature: bytes = key.sign(digest.digest(), padding.PKCS1v15(), utils.Prehashed(algorithm))
    return signature


def _use_fast_rsa(module: Any) -> None:
    if getattr(module, "RSASSA_PKCS1_v1_5_sign", None) is not _fast_rsa_sign and hasattr(
        module, "RSASSA_PKCS1_v1_5_sign"
    ):
        module.RSASSA_PKCS1_v1_5_sign = _fast_rsa_sign


def load_signer(selector: str, domain: str, key_file: Path) -> DkimSigner:
    """The signer for the settings; DripperError saying what to fix when the key is unusable."""
    from dkim.crypto import UnparsableKeyError, parse_pem_private_key

    if not valid_selector(selector):
        raise DripperError(
            f"[smtp] dkim_selector {selector!r} is not a DNS label: use letters, digits and "
            "hyphens, such as dripper2026"
        )
    try:
        key = key_file.read_bytes()
    except OSError as exc:
        raise DripperError(
            f"cannot read the DKIM key {key_file} ({exc.strerror}): check [smtp] dkim_key_file, "
            f"or make one with `dripper dkim keygen --selector {selector} --domain {domain}`"
        ) from None
    try:
        parse_pem_private_key(key)
    except (UnparsableKeyError, ValueError, IndexError):
        raise DripperError(
            f"{key_file} is not a PEM RSA private key: make one with `dripper dkim keygen`"
        ) from None
    return DkimSigner(selector, domain, key)


def generate_key(bits: int = KEY_BITS) -> bytes:
    """A new RSA private key as PEM (PKCS#1, what dkimpy and OpenDKIM read)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def public_key(private_pem: bytes) -> str:
    """The base64 DER SubjectPublicKeyInfo of a PEM private key: the record's p= value."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(private_pem, password=None)
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode("ascii")


def dns_record_value(public: str) -> str:
    return f"v=DKIM1; k=rsa; p={public}"


def zone_file_line(name: str, value: str) -> str:
    """A BIND zone-file line for the TXT record, split into strings of at most 255 characters
    (a 2048-bit key is longer than one TXT string may be)."""
    parts = " ".join(f'"{value[i : i + 255]}"' for i in range(0, len(value), 255))
    return f"{name}. IN TXT ( {parts} )"


def write_key(path: Path, key: bytes) -> None:
    """Create `path` with mode 0600 from the start; refuses to replace an existing file (mail
    signed with it would fail once the DNS record changes)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(key)
