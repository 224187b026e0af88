"""Every doctor check, in the order an operator fixes things: local setup, then services."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable
from dataclasses import dataclass

from dripper.config import Settings
from dripper.doctor.findings import Finding
from dripper.doctor.local import (
    DnsLookup,
    check_channels,
    check_curricula,
    check_dkim,
    check_hmac_key,
    check_listen,
    check_public_url,
    system_dns_txt,
)
from dripper.doctor.services import check_database, check_imap, check_smtp, check_telegram


@dataclass(frozen=True)
class DoctorOptions:
    """Test seams: a TLS context for a sandbox's self-signed certificate, a DNS stand-in."""

    smtp_tls_context: ssl.SSLContext | None = None
    dns_txt: DnsLookup = system_dns_txt


async def diagnose(settings: Settings, options: DoctorOptions | None = None) -> list[Finding]:
    options = options or DoctorOptions()
    findings: list[Finding] = [check_curricula(settings)]
    channels = check_channels(settings)
    if channels is not None:
        findings.append(channels)
    # The services answer in parallel: a host that does not answer costs one timeout, not four.
    checks: list[tuple[str, Awaitable[Finding | list[Finding]]]] = [
        ("database", check_database(settings)),
        ("telegram", check_telegram(settings)),
        ("smtp", check_smtp(settings, options.smtp_tls_context)),
        ("imap", check_imap(settings)),
        ("dkim", check_dkim(settings, options.dns_txt)),
    ]
    results = await asyncio.gather(*(work for _, work in checks), return_exceptions=True)
    for (name, _), result in zip(checks, results, strict=True):
        if isinstance(result, BaseException):
            if not isinstance(result, Exception):
                raise result  # KeyboardInterrupt, cancellation
            # A check that breaks is itself a finding; the others still report.
            findings.append(
                Finding.problem(name, f"the check failed: {type(result).__name__}: {result}")
            )
        elif isinstance(result, Finding):
            findings.append(result)
        else:
            findings.extend(result)
        if name == "imap":
            findings.append(check_hmac_key(settings))
    for optional in (check_public_url(settings), check_listen(settings)):
        if optional is not None:
            findings.append(optional)
    return findings
