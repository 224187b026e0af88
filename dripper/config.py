"""Settings: dripper.toml, then DRIPPER_* environment variables, validated into one frozen model.

Where settings come from, lowest to highest precedence:

1. built-in defaults;
2. the TOML file: `--config PATH` / `DRIPPER_CONFIG`, else `./dripper.toml` when it exists;
3. `DRIPPER_*` environment variables (an empty variable counts as unset).

Relative paths (`curricula_dir`, a relative `sqlite://` path in `database_url`, `*_file` keys) are
resolved against the directory of the TOML file when they come from it, and against the current
directory when they come from the environment. The resolved paths and URL are always absolute.

Secrets (the bot token, the webhook secret, the SMTP and IMAP passwords, the HMAC key) are never
read from the TOML file itself: set the variable, or name a file holding the secret
(`token_file = "/run/secrets/x"` in the file, or the `*_FILE` variable). A secret written in the
TOML file is refused. Secrets are kept as `SecretStr`, so repr(), str() and JSON show `**********`.

Environment variables (top-level keys are DRIPPER_<KEY>, keys of a [section] are
DRIPPER_<SECTION>_<KEY>; secrets are the exception, named for what they are):

=================================  ===============================  ==========================
variable                           setting                          default
=================================  ===============================  ==========================
DRIPPER_DATABASE_URL               database_url                     sqlite:///<dir>/dripper.sqlite3
DRIPPER_CURRICULA_DIR              curricula_dir                    <dir>/curricula
DRIPPER_TIMEZONE                   timezone                         UTC
DRIPPER_TRAINER                    trainer                          (none)
DRIPPER_CANNED_REPLIES             canned_replies                   <dir>/canned-replies.yaml
DRIPPER_LEASE_SECONDS              lease_seconds                    120
DRIPPER_NOTIFY_BATCH_SECONDS       notify_batch_seconds             180
DRIPPER_MEDIA_DIR                  media_dir                        <database dir>/media
DRIPPER_MEDIA_CAP_MB               media_cap_mb                     100
DRIPPER_PUBLIC_URL                 public_url                       (none: mailto unsubscribe)
DRIPPER_LISTEN                     listen                           127.0.0.1:8443
DRIPPER_TELEGRAM_API_URL           telegram.api_url                 https://api.telegram.org/bot
DRIPPER_TELEGRAM_TOKEN             telegram.token (secret)          (none)
DRIPPER_TELEGRAM_TOKEN_FILE        telegram.token_file              (none)
DRIPPER_TELEGRAM_ALLOW_PAID_BROADCAST  telegram.allow_paid_broadcast  false
DRIPPER_TELEGRAM_MESSAGES_PER_SECOND   telegram.messages_per_second   30
DRIPPER_TELEGRAM_WEBHOOK_URL       telegram.webhook_url             (none: long polling)
DRIPPER_TELEGRAM_WEBHOOK_SECRET    telegram.webhook_secret (secret) (none)
DRIPPER_TELEGRAM_WEBHOOK_SECRET_FILE  telegram.webhook_secret_file  (none)
DRIPPER_SMTP_HOST                  smtp.host                        (none)
DRIPPER_SMTP_PORT                  smtp.port                        587 / 465 (tls) / 25 (none)
DRIPPER_SMTP_SECURITY              smtp.security                    starttls
DRIPPER_SMTP_USERNAME              smtp.username                    (none)
DRIPPER_SMTP_PASSWORD              smtp.password (secret)           (none)
DRIPPER_SMTP_PASSWORD_FILE         smtp.password_file               (none)
DRIPPER_SMTP_FROM_ADDRESS          smtp.from_address                (none)
DRIPPER_SMTP_FROM_NAME             smtp.from_name                   (none)
DRIPPER_SMTP_MESSAGES_PER_SECOND   smtp.messages_per_second         14
DRIPPER_SMTP_CONNECTIONS           smtp.connections                 2
DRIPPER_SMTP_VERP                  smtp.verp                        true
DRIPPER_SMTP_DKIM_SELECTOR         smtp.dkim_selector               (none: not signed)
DRIPPER_SMTP_DKIM_KEY_FILE         smtp.dkim_key_file               (none)
DRIPPER_SMTP_DKIM_DOMAIN           smtp.dkim_domain                 from_address's domain
DRIPPER_IMAP_HOST                  imap.host                        (none)
DRIPPER_IMAP_PORT                  imap.port                        993 / 143 (none)
DRIPPER_IMAP_SECURITY              imap.security                    tls
DRIPPER_IMAP_USERNAME              imap.username                    (none)
DRIPPER_IMAP_PASSWORD              imap.password (secret)           (none)
DRIPPER_IMAP_PASSWORD_FILE         imap.password_file               (none)
DRIPPER_IMAP_MAILBOX               imap.mailbox                     INBOX
DRIPPER_HMAC_KEY                   security.hmac_key (secret)       (none)
DRIPPER_HMAC_KEY_FILE              security.hmac_key_file           (none)
=================================  ===============================  ==========================

`<dir>` is the directory of the TOML file, or the current directory when there is none. When
`port` is not set, it follows `security`. With `telegram.webhook_url` set, `dripper run` receives
through a webhook (served on `listen`, behind your HTTPS proxy) instead of long polling;
it then needs `webhook_secret`, which Telegram sends back with every update. A variable that
starts with DRIPPER_TELEGRAM_, DRIPPER_SMTP_, DRIPPER_IMAP_ or DRIPPER_SECURITY_ but is not in
this table is an error (a typo would otherwise be ignored silently); other DRIPPER_* variables
are left to their owners.
"""

from __future__ import annotations

import os
import re
import tomllib
import zoneinfo
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from dripper.errors import ConfigError
from dripper.hints import did_you_mean

CONFIG_FILE_NAME = "dripper.toml"
ENV_PREFIX = "DRIPPER_"
FREE_TELEGRAM_RATE = 30  # messages per second Telegram allows a bot without paid broadcasts

_EMAIL_RE = re.compile(r"^[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\"]+$")
# Telegram's rule for setWebhook's secret_token.
WEBHOOK_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


_URL_FORBIDDEN = re.compile(r"[\x00-\x20\x7f<>,\"\\]")


def _public_https_url(value: str | None, expected: str) -> str | None:
    """`value` when it is an https:// URL with a host and no query or fragment (http:// only
    on a loopback host, for local tests). It goes into mail headers: no space, no control
    character, none of < > , " \\."""
    if value is None:
        return None
    parts = urlsplit(value)
    loopback = parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")
    if (
        (parts.scheme != "https" and not loopback)
        or not parts.hostname
        or parts.query
        or parts.fragment
        or "@" in parts.netloc
        or _URL_FORBIDDEN.search(value)
    ):
        raise ValueError(f"expected {expected}")
    return value


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TelegramSettings(_Section):
    """The bot: where the Bot API is, its token, how fast it may send and how it receives
    (long polling, or a webhook when `webhook_url` is set)."""

    api_url: str = "https://api.telegram.org/bot"
    token: SecretStr | None = None
    allow_paid_broadcast: bool = False
    # Telegram allows ~30 msg/s per bot; paid broadcasts up to 1000 msg/s.
    messages_per_second: float = Field(default=30, gt=0, le=1000, allow_inf_nan=False)
    # The public HTTPS URL Telegram posts updates to; unset: dripper polls with getUpdates.
    # Served on the top-level `listen` address (a reverse proxy forwards webhook_url to it).
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None

    @field_validator("webhook_url")
    @classmethod
    def _https_url(cls, value: str | None) -> str | None:
        # Telegram posts only to HTTPS; plain http is for the local sandbox.
        return _public_https_url(value, "the public https:// URL Telegram should post updates to")

    @field_validator("webhook_secret")
    @classmethod
    def _telegram_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not WEBHOOK_SECRET_RE.fullmatch(value.get_secret_value()):
            raise ValueError(
                "the webhook secret must be 1 to 256 characters A-Z, a-z, 0-9, _ or - "
                "(Telegram's rule); generate one with: python -c \"import secrets; "
                'print(secrets.token_urlsafe(32))"'
            )
        return value

    @model_validator(mode="after")
    def _webhook_needs_a_secret(self) -> TelegramSettings:
        if self.webhook_url is not None and self.webhook_secret is None:
            raise ValueError(
                "webhook_url needs a webhook secret, so that only Telegram can post updates: set "
                "DRIPPER_TELEGRAM_WEBHOOK_SECRET or [telegram] webhook_secret_file"
            )
        return self

    @field_validator("api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _paid_broadcast_for_high_rates(self) -> TelegramSettings:
        if self.messages_per_second > FREE_TELEGRAM_RATE and not self.allow_paid_broadcast:
            raise ValueError(
                f"messages_per_second above {FREE_TELEGRAM_RATE} needs allow_paid_broadcast = true "
                "(paid in Telegram Stars); otherwise Telegram answers 429 Too Many Requests"
            )
        return self


class SmtpSettings(_Section):
    """Outgoing mail. `port` defaults from `security`: 587 starttls, 465 tls, 25 none."""

    host: str | None = None
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    from_address: str | None = None
    from_name: str | None = None
    messages_per_second: float = Field(default=14, gt=0, allow_inf_nan=False)
    connections: int = Field(default=2, ge=1, le=100)
    # Envelope sender local+bounce-<signed delivery id>@domain, so bounces are authenticated.
    verp: bool = True
    # DKIM signing (both set: on). The key is a PEM file (`dripper dkim keygen` writes one);
    # the domain defaults to from_address's.
    dkim_selector: str | None = None
    dkim_key_file: Path | None = None
    dkim_domain: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _port_follows_security(cls, data: Any) -> Any:
        if isinstance(data, dict) and "port" not in data:
            default_ports = {"starttls": 587, "tls": 465, "none": 25}
            port = default_ports.get(str(data.get("security", "starttls")))
            if port is not None:
                return {**data, "port": port}
        return data

    @field_validator("from_address")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not _EMAIL_RE.match(value):
            raise ValueError("expected an email address such as trainer@example.com")
        return value

    @model_validator(mode="after")
    def _dkim_needs_both(self) -> SmtpSettings:
        if (self.dkim_selector is None) != (self.dkim_key_file is None):
            raise ValueError(
                "DKIM signing needs both dkim_selector and dkim_key_file (make them with "
                "`dripper dkim keygen`), or neither"
            )
        return self

    @field_validator("dkim_domain")
    @classmethod
    def _domain(cls, value: str | None) -> str | None:
        if value is not None and _ascii_domain(value) is None:
            raise ValueError("expected a domain name such as example.com")
        return value

    @property
    def signing_domain(self) -> str | None:
        """The DKIM d= domain (ASCII, IDNA for a non-ASCII one): dkim_domain, else the From
        address's domain."""
        if self.dkim_domain:
            return _ascii_domain(self.dkim_domain)
        if self.from_address:
            return _ascii_domain(self.from_address.rpartition("@")[2])
        return None


def _ascii_domain(domain: str) -> str | None:
    """`domain` lower-case and in ASCII (IDNA), None when it is no domain name."""
    name = domain.strip().rstrip(".").lower()
    try:
        ascii_name = name.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    labels = ascii_name.split(".")
    if len(labels) < 2 or not all(
        re.fullmatch(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?", x) for x in labels
    ):
        return None
    return ascii_name


class ImapSettings(_Section):
    """The mailbox learner replies arrive in. `port` defaults from `security`: 993 tls, 143 none."""

    host: str | None = None
    port: int = Field(default=993, ge=1, le=65535)
    security: Literal["tls", "none"] = "tls"
    username: str | None = None
    password: SecretStr | None = None
    mailbox: str = "INBOX"

    @model_validator(mode="before")
    @classmethod
    def _port_follows_security(cls, data: Any) -> Any:
        if isinstance(data, dict) and "port" not in data:
            port = {"tls": 993, "none": 143}.get(str(data.get("security", "tls")))
            if port is not None:
                return {**data, "port": port}
        return data


class SecuritySettings(_Section):
    """Keys: `hmac_key` signs the reply tokens put in Reply-To addresses."""

    hmac_key: SecretStr | None = None


def _default_database_url() -> str:
    return f"sqlite://{(Path.cwd() / 'dripper.sqlite3').as_posix()}"


def _default_curricula_dir() -> Path:
    return Path.cwd() / "curricula"


def _default_canned_replies() -> Path:
    return Path.cwd() / "canned-replies.yaml"


class Settings(_Section):
    """The effective configuration. Build it with `load_settings()`."""

    database_url: str = Field(default_factory=_default_database_url)
    curricula_dir: Path = Field(default_factory=_default_curricula_dir)
    timezone: str = "UTC"
    trainer: str | None = Field(default=None, min_length=1, max_length=64)
    canned_replies: Path = Field(default_factory=_default_canned_replies)
    # How long a worker's claim on a delivery lasts unless renewed: a worker that dies leaves
    # its claims to the others (as uncertain, retried once) after this long.
    lease_seconds: float = Field(default=120, ge=5, le=3600, allow_inf_nan=False)
    # Trainers hear of new learner messages at most once per this long (one notification
    # lists all that came in meanwhile); the first after a quiet spell goes out at once.
    notify_batch_seconds: float = Field(default=180, ge=1, le=86400, allow_inf_nan=False)
    # Where photos, voice notes, videos and files learners send are kept; unset: a `media`
    # folder beside the SQLite database (on PostgreSQL: beside the config file, a folder every
    # worker must share). At most media_cap_mb per learner; past it, files are listed, not kept.
    media_dir: Path | None = None
    media_cap_mb: float = Field(default=100, ge=0, allow_inf_nan=False)
    # The public https:// address of dripper's web server (one-click unsubscribe pages); unset:
    # emails offer only a mailto: unsubscribe.
    public_url: str | None = None
    # host:port the web server of `dripper run` listens on: the one-click unsubscribe pages and
    # the Telegram webhook. A reverse proxy forwards public_url and webhook_url to it.
    listen: str = "127.0.0.1:8443"
    telegram: TelegramSettings = TelegramSettings()
    smtp: SmtpSettings = SmtpSettings()
    imap: ImapSettings = ImapSettings()
    security: SecuritySettings = SecuritySettings()
    # Where the settings were read from; None when no file was used. Not a TOML key.
    config_file: Path | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return canonical_timezone(value)

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        checked = _public_https_url(
            value, "the public https:// address that reaches dripper's web server (listen)"
        )
        return checked.rstrip("/") if checked else None

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError('expected host:port to listen on, such as "127.0.0.1:8443"')
        return value

    @property
    def listen_host_port(self) -> tuple[str, int]:
        """`listen` split into host and port ("[::1]:8443" gives "::1")."""
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)

    @property
    def media_folder(self) -> Path:
        """`media_dir`, else `media` beside the SQLite file, else in the current directory."""
        if self.media_dir is not None:
            return self.media_dir
        if self.database_url.startswith("sqlite://") and ":memory:" not in self.database_url:
            return Path(self.database_url[len("sqlite://") :].partition("?")[0]).parent / "media"
        return Path.cwd() / "media"

    @property
    def serves_http(self) -> bool:
        """Whether `dripper run` serves HTTP: a Telegram webhook or one-click unsubscribe."""
        return self.public_url is not None or self.telegram.webhook_url is not None

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        """The default learner time zone as a ZoneInfo."""
        return zoneinfo.ZoneInfo(self.timezone)

    @field_serializer("database_url", when_used="json")
    def _redacted_url(self, url: str) -> str:
        return _redact_url(url)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # database_url may carry a PostgreSQL password (JSON redacts it too, like a SecretStr).
        for name, value in super().__repr_args__():
            yield name, (_redact_url(value) if name == "database_url" else value)

    def describe(self) -> str:
        """The effective configuration, one `key = value` line each, secrets as set / not set."""
        source = str(self.config_file) if self.config_file else "none (defaults and environment)"
        lines = [f"{'config file':<30} {source}"]
        for key, value in _flatten(self):
            if isinstance(value, SecretStr):
                shown = "set"
            elif value is None:
                shown = "not set"
            elif key == "database_url":
                shown = _redact_url(str(value))
            else:
                shown = str(value)
            lines.append(f"{key:<30} {shown}")
        return "\n".join(lines)


def _flatten(model: BaseModel, prefix: str = "") -> list[tuple[str, object]]:
    items: list[tuple[str, object]] = []
    for name in type(model).model_fields:
        if name == "config_file":
            continue
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            items.extend(_flatten(value, f"{prefix}{name}."))
        else:
            items.append((f"{prefix}{name}", value))
    return items


def _redact_url(url: str) -> str:
    from dripper.db import redact_url

    try:
        return redact_url(url)
    except ValueError:
        return "(unparsable URL)"


@cache
def _zones_by_lower_name() -> dict[str, str]:
    return {name.lower(): name for name in zoneinfo.available_timezones()}


def canonical_timezone(name: str) -> str:
    """The IANA name for `name` (case-insensitive), or ValueError with a did-you-mean hint."""
    canonical = _zones_by_lower_name().get(name.strip().lower())
    if canonical is None:
        hint = did_you_mean(name, _zones_by_lower_name().values())
        raise ValueError(f'unknown time zone "{name}"{hint}; use an IANA name like Europe/Berlin')
    return canonical


# --------------------------------------------------------------------------- the key schema

_SECTIONS: dict[str, type[_Section]] = {
    "telegram": TelegramSettings,
    "smtp": SmtpSettings,
    "imap": ImapSettings,
    "security": SecuritySettings,
}
_TOP_LEVEL_KEYS = (
    "database_url",
    "curricula_dir",
    "timezone",
    "trainer",
    "canned_replies",
    "lease_seconds",
    "notify_batch_seconds",
    "media_dir",
    "media_cap_mb",
    "public_url",
    "listen",
)


@dataclass(frozen=True)
class _Secret:
    section: str
    key: str
    env: str

    @property
    def file_key(self) -> str:
        return f"{self.key}_file"

    @property
    def file_env(self) -> str:
        return f"{self.env}_FILE"


_SECRETS = (
    _Secret("telegram", "token", "DRIPPER_TELEGRAM_TOKEN"),
    _Secret("telegram", "webhook_secret", "DRIPPER_TELEGRAM_WEBHOOK_SECRET"),
    _Secret("smtp", "password", "DRIPPER_SMTP_PASSWORD"),
    _Secret("imap", "password", "DRIPPER_IMAP_PASSWORD"),
    _Secret("security", "hmac_key", "DRIPPER_HMAC_KEY"),
)
_SECRET_BY_LOC: dict[tuple[str, ...], _Secret] = {(s.section, s.key): s for s in _SECRETS}
_SECRET_BY_FILE_LOC: dict[tuple[str, ...], _Secret] = {(s.section, s.file_key): s for s in _SECRETS}


def _file_keys(section: str) -> list[str]:
    """The keys a [section] of dripper.toml may hold (secrets only as *_file)."""
    keys = [k for k in _SECTIONS[section].model_fields if (section, k) not in _SECRET_BY_LOC]
    return keys + [s.file_key for s in _SECRETS if s.section == section]


def _build_env_table() -> dict[str, tuple[str, ...]]:
    table: dict[str, tuple[str, ...]] = {f"{ENV_PREFIX}{k.upper()}": (k,) for k in _TOP_LEVEL_KEYS}
    for section, model in _SECTIONS.items():
        for key in model.model_fields:
            secret = _SECRET_BY_LOC.get((section, key))
            name = secret.env if secret else f"{ENV_PREFIX}{section.upper()}_{key.upper()}"
            table[name] = (section, key)
            if secret:
                table[secret.file_env] = (section, secret.file_key)
    return table


ENV_VARS: dict[str, tuple[str, ...]] = _build_env_table()
"""Every environment variable load_settings reads, mapped to the setting path it sets."""

# Keys that moved, so that an old dripper.toml gets told where to (dotted path -> new path).
_MOVED_KEYS = {"telegram.webhook_listen": "listen"}
_MOVED_ENV = {"DRIPPER_TELEGRAM_WEBHOOK_LISTEN": "DRIPPER_LISTEN"}

_OWNED_ENV_PREFIXES = tuple(f"{ENV_PREFIX}{section.upper()}_" for section in _SECTIONS)


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class _Origin:
    """Where a value came from, for error messages: a TOML position or an environment variable."""

    where: str  # "path:line:col" / "path", or the variable name
    key: str  # dotted setting path
    from_env: bool
    base_dir: Path  # relative paths are resolved against this

    def error(self, message: str) -> ConfigError:
        if self.from_env:
            return ConfigError(f"{self.where}: {message}")
        return ConfigError(f"{self.where}: {self.key}: {message}")


def load_settings(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read dripper.toml (explicit `path`, else ./dripper.toml if present) and DRIPPER_* overrides.

    Raises ConfigError with `file:line:col` or the variable name; never shows a secret.
    """
    env = os.environ if environ is None else environ
    config_file = _find_config_file(path)
    base_dir = config_file.resolve().parent if config_file else Path.cwd()
    data: dict[str, Any] = {}
    origins: dict[tuple[str, ...], _Origin] = {}
    if config_file is not None:
        text = _read_config_text(config_file)
        raw = _parse_toml(config_file, text)
        _check_file_keys(config_file, text, raw)
        for loc, value in _leaves(raw):
            origin = _Origin(_position(config_file, text, loc), ".".join(loc), False, base_dir)
            _put(data, origins, loc, value, origin)
    _apply_environment(env, data, origins)
    _read_secret_files(data, origins)
    _resolve_paths(data, origins, base_dir)
    data["config_file"] = config_file.resolve() if config_file else None
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise _config_error(exc, origins, config_file) from None


def _find_config_file(path: Path | None) -> Path | None:
    """The file to read, spelled as the user gave it (messages show it that way)."""
    if path is not None:
        path = path.expanduser()
        if not path.is_file():
            what = "is a directory" if path.is_dir() else "does not exist"
            raise ConfigError(
                f"{path}: the config file {what}; run `dripper init` to create one, "
                "or fix --config / DRIPPER_CONFIG"
            )
        return path
    default = Path(CONFIG_FILE_NAME)
    return default if default.is_file() else None


def _read_config_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text; save the file as UTF-8") from None


_TOML_POSITION = re.compile(r"^(?P<msg>.*?) \(at line (?P<line>\d+), column (?P<col>\d+)\)$")


def _parse_toml(path: Path, text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = _TOML_POSITION.match(message)
        if match:
            where = f"{path}:{match['line']}:{match['col']}"
            message = match["msg"]
        else:
            message = message.replace(" (at end of document)", " at the end of the file")
            where = f"{path}:{len(text.splitlines()) or 1}"
        raise ConfigError(f"{where}: invalid TOML: {message}") from None


def _check_file_keys(path: Path, text: str, raw: dict[str, Any]) -> None:
    """Refuse unknown keys, misplaced tables and secrets written in the file."""
    for key, value in raw.items():
        where = _position(path, text, (key,))
        if key in _SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f'{where}: "{key}" must be a [{key}] table')
            for sub_key in value:
                sub_where = _position(path, text, (key, sub_key))
                secret = _SECRET_BY_LOC.get((key, sub_key))
                if secret is not None:
                    raise ConfigError(
                        f"{sub_where}: {key}.{sub_key} is a secret and must not be written in "
                        f"{path.name}: set {secret.env}, or put it in a file readable only by "
                        f'you and set {secret.file_key} = "/path/to/file" (or {secret.file_env})'
                    )
                moved = _MOVED_KEYS.get(f"{key}.{sub_key}")
                if moved is not None:
                    raise ConfigError(
                        f'{sub_where}: "{key}.{sub_key}" is now the top-level key "{moved}" '
                        f"(it serves the unsubscribe pages too): move it above the first [section]"
                    )
                if sub_key not in _file_keys(key):
                    hint = did_you_mean(f"{key}.{sub_key}", [f"{key}.{k}" for k in _file_keys(key)])
                    raise ConfigError(f'{sub_where}: unknown key "{key}.{sub_key}"{hint}')
        elif key not in _TOP_LEVEL_KEYS:
            if key == "hmac_key":
                raise ConfigError(
                    f"{where}: hmac_key is a secret and must not be written in {path.name}: "
                    'set DRIPPER_HMAC_KEY, or hmac_key_file = "/path/to/file" under [security]'
                )
            hint = did_you_mean(key, [*_TOP_LEVEL_KEYS, *_SECTIONS])
            raise ConfigError(f'{where}: unknown key "{key}"{hint}')


def _leaves(raw: dict[str, Any]) -> list[tuple[tuple[str, ...], Any]]:
    leaves: list[tuple[tuple[str, ...], Any]] = []
    for key, value in raw.items():
        if key in _SECTIONS:
            leaves.extend(((key, sub_key), sub_value) for sub_key, sub_value in value.items())
        else:
            leaves.append(((key,), value))
    return leaves


def _position(path: Path, text: str, loc: tuple[str, ...]) -> str:
    """`path:line:col` of the key at `loc`, found with a cheap scan; `path` when not found."""
    key_re = r'\s*(?:"{k}"|\'{k}\'|{k})\s*='
    section: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        header = re.match(r"\s*\[\s*([A-Za-z0-9_\-\"'. ]+?)\s*\]\s*(?:#.*)?$", line)
        if header:
            section = header[1].strip("\"'")
            if len(loc) == 1 and section == loc[0]:
                return f"{path}:{number}:{line.index('[') + 1}"
            continue
        if len(loc) == 1 and section is None:
            key = re.escape(loc[0])
            match = re.match(key_re.format(k=key) + "|" + rf"\s*{key}\s*\.", line)
        elif len(loc) == 2 and section == loc[0]:
            match = re.match(key_re.format(k=re.escape(loc[1])), line)
        elif len(loc) == 2 and section is None:
            match = re.match(rf"\s*{re.escape(loc[0])}\s*\.\s*{re.escape(loc[1])}\s*=", line)
        else:
            match = None
        if match:
            return f"{path}:{number}:{len(line) - len(line.lstrip()) + 1}"
    return str(path)


def _put(
    data: dict[str, Any],
    origins: dict[tuple[str, ...], _Origin],
    loc: tuple[str, ...],
    value: Any,
    origin: _Origin,
) -> None:
    target = data
    for part in loc[:-1]:
        target = target.setdefault(part, {})
    target[loc[-1]] = value
    origins[loc] = origin


def _apply_environment(
    env: Mapping[str, str], data: dict[str, Any], origins: dict[tuple[str, ...], _Origin]
) -> None:
    for name in sorted(env):
        if name.startswith(_OWNED_ENV_PREFIXES) and name not in ENV_VARS:
            if name in _MOVED_ENV:
                raise ConfigError(f"{name}: renamed to {_MOVED_ENV[name]}")
            hint = did_you_mean(name, ENV_VARS)
            raise ConfigError(f"{name}: unknown dripper setting{hint}")
    for name, loc in ENV_VARS.items():
        value = env.get(name, "")
        if value == "":
            continue
        secret = _SECRET_BY_LOC.get(loc)
        if secret is not None and env.get(secret.file_env, ""):
            raise ConfigError(f"set {secret.env} or {secret.file_env}, not both")
        origin = _Origin(name, ".".join(loc), True, Path.cwd())
        if secret is not None:
            # The value replaces any *_file from the TOML file.
            _drop(data, origins, (secret.section, secret.file_key))
        file_secret = _SECRET_BY_FILE_LOC.get(loc)
        if file_secret is not None:
            _drop(data, origins, (file_secret.section, file_secret.key))
        _put(data, origins, loc, value, origin)


def _drop(
    data: dict[str, Any], origins: dict[tuple[str, ...], _Origin], loc: tuple[str, ...]
) -> None:
    data.get(loc[0], {}).pop(loc[1], None)
    origins.pop(loc, None)


def _read_secret_files(data: dict[str, Any], origins: dict[tuple[str, ...], _Origin]) -> None:
    for secret in _SECRETS:
        file_loc = (secret.section, secret.file_key)
        section = data.get(secret.section, {})
        if file_loc not in origins:
            continue
        origin = origins.pop(file_loc)
        name = section.pop(secret.file_key)
        if not isinstance(name, str) or not name.strip():
            raise origin.error("expected the path of a file holding the secret")
        file_path = (origin.base_dir / Path(name).expanduser()).resolve()
        try:
            value = file_path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise origin.error(
                f'cannot read the secret file "{file_path}": {exc.strerror}'
            ) from None
        except UnicodeDecodeError:
            raise origin.error(f'the secret file "{file_path}" is not UTF-8 text') from None
        if not value:
            raise origin.error(f'the secret file "{file_path}" is empty')
        secret_origin = _Origin(
            origin.where, f"{secret.section}.{secret.key}", origin.from_env, origin.base_dir
        )
        _put(data, origins, (secret.section, secret.key), value, secret_origin)


def _resolve_paths(
    data: dict[str, Any], origins: dict[tuple[str, ...], _Origin], base_dir: Path
) -> None:
    url = data.get("database_url")
    if url is None:
        data["database_url"] = f"sqlite://{(base_dir / 'dripper.sqlite3').resolve().as_posix()}"
    elif isinstance(url, str):
        data["database_url"] = absolute_sqlite_url(url, origins[("database_url",)].base_dir)
    curricula = data.get("curricula_dir", "curricula")
    if isinstance(curricula, str):
        origin = origins.get(("curricula_dir",))
        directory = origin.base_dir if origin else base_dir
        data["curricula_dir"] = (directory / Path(curricula).expanduser()).resolve()
    dkim_key = data.get("smtp", {}).get("dkim_key_file")
    if isinstance(dkim_key, str):
        origin = origins.get(("smtp", "dkim_key_file"))
        directory = origin.base_dir if origin else base_dir
        data["smtp"]["dkim_key_file"] = (directory / Path(dkim_key).expanduser()).resolve()
    media = data.get("media_dir")
    if isinstance(media, str):
        origin = origins.get(("media_dir",))
        directory = origin.base_dir if origin else base_dir
        data["media_dir"] = (directory / Path(media).expanduser()).resolve()
    elif media is None and not str(data["database_url"]).startswith("sqlite://"):
        data["media_dir"] = (base_dir / "media").resolve()
    canned = data.get("canned_replies", "canned-replies.yaml")
    if isinstance(canned, str):
        origin = origins.get(("canned_replies",))
        directory = origin.base_dir if origin else base_dir
        data["canned_replies"] = (directory / Path(canned).expanduser()).resolve()


def absolute_sqlite_url(url: str, base_dir: Path) -> str:
    """`url` with a relative sqlite:// path resolved against `base_dir`; other URLs unchanged.

    `sqlite://data/x.sqlite3` and `sqlite:///abs/x.sqlite3` are both understood; `:memory:` and
    a `?query` are kept.
    """
    prefix = "sqlite://"
    if not url.lower().startswith(prefix):
        return url
    rest, _, query = url[len(prefix) :].partition("?")
    if not rest or rest == ":memory:":
        return url
    path = (base_dir / Path(rest).expanduser()).resolve()
    return f"{prefix}{path.as_posix()}" + (f"?{query}" if query else "")


def _origin_within(
    loc: tuple[str, ...], message: str, origins: dict[tuple[str, ...], _Origin]
) -> _Origin | None:
    """For an error about a whole section: the origin of a key in it, preferably one the
    message names (e.g. messages_per_second for the paid broadcast rule)."""
    inside = [(key, origin) for key, origin in origins.items() if key[: len(loc)] == loc]
    named = [origin for key, origin in inside if key[-1] in message]
    candidates = named or [origin for _, origin in inside]
    return candidates[0] if candidates else None


def _config_error(
    exc: ValidationError, origins: dict[tuple[str, ...], _Origin], config_file: Path | None
) -> ConfigError:
    messages = []
    for error in exc.errors(include_url=False):
        loc = tuple(str(part) for part in error["loc"])
        key = ".".join(loc)
        message = error["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        message = message[:1].lower() + message[1:]
        is_secret = loc in _SECRET_BY_LOC
        shown = error["input"]
        if key == "database_url" and isinstance(shown, str):
            shown = _redact_url(shown)
        if not is_secret and isinstance(shown, str | int | float | bool):
            message += f" (got {shown!r})"
        origin = origins.get(loc) or _origin_within(loc, message, origins)
        if origin is not None:
            messages.append(str(origin.error(message)))
        else:
            messages.append(f"{config_file or 'settings'}: {key}: {message}")
    return ConfigError("\n".join(messages))
