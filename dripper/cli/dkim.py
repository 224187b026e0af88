"""Subcommands: `dripper dkim keygen`, the DKIM key and the DNS record to publish for it."""

from __future__ import annotations

from pathlib import Path

import click

from dripper.cli.app import AppContext, pass_app
from dripper.errors import DripperError


@click.group("dkim")
def dkim_group() -> None:
    """Sign outgoing mail with DKIM: make the key and the DNS record to publish."""


@dkim_group.command("keygen")
@click.option(
    "--selector",
    required=True,
    help="The DKIM selector, a DNS label such as dripper2026 (a new one for each new key).",
)
@click.option(
    "--domain",
    help="The signing domain (default: [smtp] dkim_domain, else from_address's domain).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("dkim.key"),
    show_default=True,
    help="Where to write the private key (mode 0600; an existing file is never replaced).",
)
@click.option(
    "--bits",
    type=click.Choice(["2048", "3072", "4096"]),
    default="2048",
    show_default=True,
    help="RSA key size (2048 fits every DNS provider).",
)
@pass_app
def keygen_cmd(app: AppContext, selector: str, domain: str | None, out: Path, bits: str) -> None:
    """Write a new DKIM private key and print the TXT record to publish in DNS.

    Publish the record, wait until `dig TXT SELECTOR._domainkey.DOMAIN` shows it, then set
    [smtp] dkim_selector and dkim_key_file, and run `dripper doctor`.
    """
    from dripper.channels.email.dkim import (
        dns_record_value,
        generate_key,
        public_key,
        valid_selector,
        write_key,
        zone_file_line,
    )

    if not valid_selector(selector):
        raise DripperError(
            f"--selector {selector!r} is not a DNS label: use letters, digits and hyphens, "
            "such as dripper2026"
        )
    domain = (domain or app.settings.smtp.signing_domain or "").lower().rstrip(".")
    if not domain or "." not in domain:
        raise DripperError(
            "which domain signs? give --domain example.com, or set [smtp] from_address"
        )
    key = generate_key(int(bits))
    try:
        write_key(out, key)
    except FileExistsError:
        raise DripperError(
            f"{out} exists; nothing written (mail signed with it would fail if its DNS record "
            "were replaced): choose another --out, and a new --selector"
        ) from None
    except OSError as exc:
        raise DripperError(f"cannot write {out}: {exc.strerror}") from None
    name = f"{selector}._domainkey.{domain}"
    value = dns_record_value(public_key(key))
    click.echo(f"wrote {out} (the DKIM private key, readable by you alone)\n")
    click.echo(f"Publish this TXT record in the DNS of {domain}:\n")
    click.echo(f"name:  {name}")
    click.echo(f"value: {value}\n")
    click.echo("As a zone-file line (split into strings of at most 255 characters):")
    click.echo(zone_file_line(name, value))
    click.echo(
        "\nThen, under [smtp] in dripper.toml:\n"
        f'  dkim_selector = "{selector}"\n'
        f'  dkim_key_file = "{out.resolve()}"\n'
        "and check it with `dripper doctor`. The key must be readable by the user `dripper run`\n"
        f"runs as, and by nobody else (e.g. chown dripper {out.resolve()})."
    )
