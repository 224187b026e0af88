"""Doctor checks of this machine's own setup: the curricula, the channels, the HMAC key, DKIM
(the key, and its DNS record when DNS answers) and the web server's public_url and listen.

A problem is what makes `dripper run` fail or refuse to start; what only makes it work less
well (a curriculum file with errors, a DKIM record missing from DNS) is a warning, so that
`dripper doctor` before `dripper run` (systemd ExecStartPre) never keeps a working bot down."""

from __future__ import annotations

import asyncio
import errno
import socket
import stat
from collections.abc import Awaitable, Callable

from dripper.config import Settings
from dripper.doctor.findings import Finding
from dripper.errors import DripperError

MIN_HMAC_KEY_LENGTH = 16
_NEW_KEY = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'


class DnsUnavailable(DripperError):
    """DNS did not answer (no network, no resolver): a record could be neither found nor denied."""


DnsLookup = Callable[[str], Awaitable[list[str] | None]]
"""TXT strings of a name (each record's strings joined), None when the name has none."""


async def system_dns_txt(name: str) -> list[str] | None:
    """TXT records of `name` from the system's resolver (dnspython, 5 s at most)."""
    import dns.exception
    import dns.resolver

    def lookup() -> list[str] | None:
        try:
            answer = dns.resolver.resolve(name, "TXT", lifetime=5.0)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        except (dns.exception.DNSException, OSError) as exc:
            raise DnsUnavailable(str(exc) or type(exc).__name__) from None
        return [b"".join(record.strings).decode("ascii", "replace") for record in answer]

    return await asyncio.to_thread(lookup)


def check_curricula(settings: Settings) -> Finding:
    from dripper.curriculum import check_paths

    folder = settings.curricula_dir
    results, problems = check_paths([folder])
    for result in results:
        problems.extend(result.problems)
    if problems:
        first = sorted(problems)[0]
        files = len({problem.path for problem in problems})
        # A warning: `dripper run` sends what is enrolled already, whatever the files say now;
        # enroll and apply refuse a broken file themselves.
        return Finding.warning(
            "curricula",
            f"{len(problems)} problem(s) in {files} file(s), the first: {first}",
            f"run `dripper check {folder}` for all of them",
        )
    if not results:
        return Finding.warning(
            "curricula",
            f"no curriculum in {folder}",
            "`dripper init` writes a starter curriculum there",
        )
    names = ", ".join(sorted(result.curriculum.id for result in results if result.curriculum))
    return Finding.ok("curricula", f"{len(results)} in {folder}: {names}")


def check_channels(settings: Settings) -> Finding | None:
    if settings.telegram.token is None and not settings.smtp.host:
        return Finding.problem(
            "channels",
            "no channel is configured, so nothing could be sent",
            "set DRIPPER_TELEGRAM_TOKEN (or [telegram] token_file), and/or [smtp] host and "
            "from_address",
        )
    return None


def check_hmac_key(settings: Settings) -> Finding:
    key = settings.security.hmac_key
    if key is None:
        if settings.smtp.host:
            return Finding.problem(
                "hmac key",
                "not set: email cannot be sent without it (it signs reply addresses, "
                "unsubscribe links, return paths and Message-IDs)",
                "`dripper init` writes hmac.key; point [security] hmac_key_file at it, or set "
                f"DRIPPER_HMAC_KEY (make one with: {_NEW_KEY})",
            )
        return Finding.info("hmac key", "not set (only email needs it)")
    if len(key.get_secret_value()) < MIN_HMAC_KEY_LENGTH:
        return Finding.warning(
            "hmac key",
            f"only {len(key.get_secret_value())} characters: short keys can be guessed",
            f"make a longer one with: {_NEW_KEY} (every earlier reply address and unsubscribe "
            "link then stops working)",
        )
    return Finding.ok("hmac key", "set")


async def check_dkim(settings: Settings, dns_txt: DnsLookup = system_dns_txt) -> list[Finding]:
    """The key loads and signs; its record is in DNS (when DNS answers); d= aligns with From."""
    from dripper.channels.email.dkim import load_signer, public_key

    smtp = settings.smtp
    if not smtp.host:
        return []
    if not smtp.dkim_selector or not smtp.dkim_key_file:
        return [
            Finding.warning(
                "dkim",
                "mail is not DKIM-signed: Gmail and Yahoo require DKIM of bulk senders, and "
                "unsigned mail is more often filed as spam",
                "run `dripper dkim keygen --selector dripper1`, publish the record it prints, "
                "then set [smtp] dkim_selector and dkim_key_file",
            )
        ]
    domain = smtp.signing_domain or ""
    try:
        signer = load_signer(smtp.dkim_selector, domain, smtp.dkim_key_file)
    except DripperError as exc:
        return [Finding.problem("dkim", str(exc))]
    findings: list[Finding] = []
    mode = smtp.dkim_key_file.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        findings.append(
            Finding.warning(
                "dkim",
                f"the key {smtp.dkim_key_file} is readable by other users "
                f"(mode {stat.filemode(mode)})",
                f"chmod 600 {smtp.dkim_key_file}",
            )
        )
    from_domain = (smtp.from_address or "").rpartition("@")[2].lower()
    if from_domain != domain and not from_domain.endswith(f".{domain}"):
        findings.append(
            Finding.warning(
                "dkim",
                f"signing as {domain}, but mail is from {from_domain}: DMARC needs them aligned",
                "remove [smtp] dkim_domain, or set it to the From domain or a parent of it",
            )
        )
    name, expected = signer.record_name, signer.public_record()
    publish = f"publish the TXT record {name} = {expected}"
    try:
        records = await dns_txt(name)
    except DnsUnavailable as exc:
        findings.append(
            Finding.warning(
                "dkim",
                f"signing as {domain} with selector {smtp.dkim_selector}; the DNS record could "
                f"not be looked up ({exc})",
                f"make sure it is published: {name} = {expected}",
            )
        )
        return findings
    keys = [_tag(record, "p") for record in records or [] if "DKIM1" in record or "p=" in record]
    mine = public_key(signer.private_key)
    # Warnings, not problems: mail still goes out (and a record just published may not have
    # reached every resolver), but receivers fail its signature and may file it as spam.
    if not keys:
        findings.append(
            Finding.warning(
                "dkim",
                f"no DKIM record at {name}: receivers fail the signature, and may junk the mail",
                publish,
            )
        )
    elif mine not in keys:
        findings.append(
            Finding.warning(
                "dkim",
                f"the record at {name} holds another key than {smtp.dkim_key_file}: receivers "
                "fail the signature, and may junk the mail",
                publish,
            )
        )
    else:
        findings.append(
            Finding.ok("dkim", f"signing as {domain}, selector {smtp.dkim_selector}; DNS matches")
        )
    return findings


def _tag(record: str, name: str) -> str:
    for part in record.split(";"):
        key, _, value = part.partition("=")
        if key.strip() == name:
            return "".join(value.split())
    return ""


def check_public_url(settings: Settings) -> Finding | None:
    if not settings.smtp.host:
        if settings.public_url:
            return Finding.info("public_url", f"{settings.public_url} (only email uses it)")
        return None
    if settings.public_url is None:
        return Finding.warning(
            "public_url",
            "not set: emails offer unsubscribe by mailto only, and Gmail and Yahoo require "
            "one-click unsubscribe (RFC 8058) of bulk senders",
            f"set public_url to the https:// address your reverse proxy forwards to listen "
            f"({settings.listen})",
        )
    return Finding.ok(
        "public_url",
        f"one-click unsubscribe at {settings.public_url}/u/..., served on {settings.listen}",
    )


def check_listen(settings: Settings) -> Finding | None:
    """Whether `dripper run` could listen where it will (only when it serves HTTP)."""
    if not settings.serves_http:
        return None
    host, port = settings.listen_host_port
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return Finding.warning(
                "listen",
                f"{settings.listen} is in use (by a running `dripper run`, or another program)",
                "if dripper is not running, set listen (DRIPPER_LISTEN) to a free host:port",
            )
        return Finding.problem(
            "listen",
            f"cannot listen on {settings.listen}: {exc.strerror}",
            "set listen (DRIPPER_LISTEN) to an address of this machine",
        )
    return Finding.ok("listen", f"{settings.listen} is free")
