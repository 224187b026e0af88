"""dripper.toml + DRIPPER_* loading: defaults, precedence, secrets and every error class."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import dripper.config
from dripper.cli import main
from dripper.cli.setup import CONFIG_TEMPLATE
from dripper.config import ENV_VARS, Settings, absolute_sqlite_url, load_settings
from dripper.errors import ConfigError

SECRET = "s3cr3t-VALUE-never-shown"


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every test in an empty directory, so ./dripper.toml is the test's own."""
    monkeypatch.chdir(tmp_path)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def value_at(settings: Settings, dotted: str) -> object:
    value: object = settings
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def test_defaults_without_file(tmp_path: Path) -> None:
    settings = load_settings(environ={})
    assert settings.config_file is None
    assert settings.database_url == f"sqlite://{tmp_path.resolve()}/dripper.sqlite3"
    assert settings.curricula_dir == tmp_path.resolve() / "curricula"
    assert settings.timezone == "UTC"
    assert settings.trainer is None
    assert settings.telegram.api_url == "https://api.telegram.org/bot"
    assert settings.telegram.token is None
    assert settings.telegram.allow_paid_broadcast is False
    assert settings.telegram.messages_per_second == 30
    assert (settings.smtp.port, settings.smtp.security) == (587, "starttls")
    assert (settings.smtp.messages_per_second, settings.smtp.connections) == (14, 2)
    assert (settings.imap.port, settings.imap.security, settings.imap.mailbox) == (
        993,
        "tls",
        "INBOX",
    )
    assert settings.security.hmac_key is None


def test_dripper_toml_in_cwd_is_used(tmp_path: Path) -> None:
    write(tmp_path / "dripper.toml", 'timezone = "Europe/Berlin"\n')
    settings = load_settings(environ={})
    assert settings.timezone == "Europe/Berlin"
    assert settings.config_file == (tmp_path / "dripper.toml").resolve()


def test_relative_paths_resolve_against_the_config_file(tmp_path: Path) -> None:
    config = write(
        tmp_path / "project" / "dripper.toml",
        'database_url = "sqlite://data/x.sqlite3?busy_timeout=100"\ncurricula_dir = "courses"\n',
    )
    settings = load_settings(config, environ={})
    project = (tmp_path / "project").resolve()
    assert settings.database_url == f"sqlite://{project}/data/x.sqlite3?busy_timeout=100"
    assert settings.curricula_dir == project / "courses"


def test_default_database_lives_next_to_the_config_file(tmp_path: Path) -> None:
    config = write(tmp_path / "elsewhere" / "dripper.toml", "")
    settings = load_settings(config, environ={})
    assert settings.database_url == f"sqlite://{config.parent.resolve()}/dripper.sqlite3"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite://x.db", "sqlite:///base/x.db"),
        ("sqlite:///abs/x.db", "sqlite:///abs/x.db"),
        ("sqlite://:memory:", "sqlite://:memory:"),
        ("postgresql://u:p@h/db", "postgresql://u:p@h/db"),
    ],
)
def test_absolute_sqlite_url(url: str, expected: str) -> None:
    assert absolute_sqlite_url(url, Path("/base")) == expected


@pytest.mark.parametrize(
    ("toml", "env", "key", "expected"),
    [
        ("", {"DRIPPER_TIMEZONE": "Asia/Tokyo"}, "timezone", "Asia/Tokyo"),
        ('timezone = "UTC"', {"DRIPPER_TIMEZONE": "asia/tokyo"}, "timezone", "Asia/Tokyo"),
        ("", {"DRIPPER_TRAINER": "anna"}, "trainer", "anna"),
        ("", {"DRIPPER_DATABASE_URL": "postgresql://h/db"}, "database_url", "postgresql://h/db"),
        (
            "",
            {"DRIPPER_TELEGRAM_API_URL": "http://127.0.0.1:8081/bot"},
            "telegram.api_url",
            "http://127.0.0.1:8081/bot",
        ),
        (
            "",
            {
                "DRIPPER_TELEGRAM_ALLOW_PAID_BROADCAST": "true",
                "DRIPPER_TELEGRAM_MESSAGES_PER_SECOND": "500",
            },
            "telegram.messages_per_second",
            500,
        ),
        ("[smtp]\nhost = 'a'", {"DRIPPER_SMTP_HOST": "b"}, "smtp.host", "b"),
        ("[smtp]\nport = 2525", {"DRIPPER_SMTP_PORT": "1025"}, "smtp.port", 1025),
        ("[smtp]\nsecurity = 'tls'", {}, "smtp.port", 465),
        ("", {"DRIPPER_SMTP_SECURITY": "none"}, "smtp.port", 25),
        ("[smtp]\nsecurity = 'tls'\nport = 2465", {}, "smtp.port", 2465),
        ("", {"DRIPPER_SMTP_CONNECTIONS": "4"}, "smtp.connections", 4),
        ("", {"DRIPPER_SMTP_FROM_ADDRESS": "t@example.com"}, "smtp.from_address", "t@example.com"),
        ("", {"DRIPPER_IMAP_SECURITY": "none"}, "imap.port", 143),
        ("", {"DRIPPER_IMAP_MAILBOX": "Replies"}, "imap.mailbox", "Replies"),
        ("[smtp]\nhost = 'a'", {"DRIPPER_SMTP_HOST": ""}, "smtp.host", "a"),  # empty = unset
        ("", {"DRIPPER_CONFIGURATION_STYLE": "x"}, "timezone", "UTC"),  # not ours: ignored
    ],
)
def test_file_values_and_environment_overrides(
    tmp_path: Path, toml: str, env: dict[str, str], key: str, expected: object
) -> None:
    config = write(tmp_path / "dripper.toml", toml + "\n")
    assert value_at(load_settings(config, environ=env), key) == expected


def test_curricula_dir_from_environment_is_relative_to_cwd(tmp_path: Path) -> None:
    config = write(tmp_path / "sub" / "dripper.toml", "")
    settings = load_settings(config, environ={"DRIPPER_CURRICULA_DIR": "mine"})
    assert settings.curricula_dir == tmp_path.resolve() / "mine"


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        # invalid TOML: tomllib's position becomes path:line:col
        ('timezone = "UTC"\nsmtp = \n', "dripper.toml:2:8: invalid TOML: Invalid value"),
        ("[smtp]\nhost = 'a'\n[smtp]\n", "dripper.toml:3:6: invalid TOML: Cannot declare"),
        ('a = "unterminated', "dripper.toml:1: invalid TOML:"),
        # unknown keys, with line:col and a hint
        ("[smpt]\nhost = 'a'\n", 'dripper.toml:1:1: unknown key "smpt" (did you mean "smtp"?)'),
        ("\n\n  databse_url = 'x'\n", 'dripper.toml:3:3: unknown key "databse_url" (did you mean'),
        (
            "[smtp]\n\nhots = 'x'\n",
            'dripper.toml:3:1: unknown key "smtp.hots" (did you mean "smtp.host"',
        ),
        ("smtp.hots = 'x'\n", 'dripper.toml:1:1: unknown key "smtp.hots"'),
        ("smtp = 3\n", 'dripper.toml:1:1: "smtp" must be a [smtp] table'),
        # wrong types and values: path + dotted key + what is expected
        ("[smtp]\nport = 'abc'\n", "dripper.toml:2:1: smtp.port: input should be a valid integer"),
        ("[smtp]\nport = 70000\n", "dripper.toml:2:1: smtp.port: input should be less than or"),
        (
            "[smtp]\nsecurity = 'ssl'\n",
            "smtp.security: input should be 'starttls', 'tls' or 'none'",
        ),
        ("[smtp]\nfrom_address = 'nope'\n", "smtp.from_address: expected an email address"),
        ("[imap]\nsecurity = 'starttls'\n", "dripper.toml:2:1: imap.security: input should be"),
        ("[telegram]\nallow_paid_broadcast = 'maybe'\n", "telegram.allow_paid_broadcast: input"),
        (
            "[telegram]\napi_url = 'http://x'\n\nmessages_per_second = 100\n",
            "dripper.toml:4:1: telegram.messages_per_second: messages_per_second above 30 needs "
            "allow_paid_broadcast = true",
        ),
        ("[telegram]\napi_url = 'ftp://x'\n", "telegram.api_url: expected an http:// or https://"),
        ("timezone = 'Europe/Berln'\n", 'timezone: unknown time zone "Europe/Berln" (did you mean'),
        ("trainer = ''\n", "dripper.toml:1:1: trainer: string should have at least 1 character"),
        ("curricula_dir = 5\n", "dripper.toml:1:1: curricula_dir: input"),
        # the web server and mail that lands
        (
            "public_url = 'http://dripper.example.com'\n",
            "dripper.toml:1:1: public_url: expected the public https:// address",
        ),
        ("listen = '8443'\n", "dripper.toml:1:1: listen: expected host:port"),
        ("public_url = 'https://'\n", "public_url: expected the public https:// address"),
        ("public_url = 'https://x.example/u?a=1'\n", "public_url: expected the public"),
        ("public_url = 'https://x.example/#f'\n", "public_url: expected the public"),
        ("public_url = 'https://x.example/a b'\n", "public_url: expected the public"),
        ("public_url = 'https://x.example/>, <evil'\n", "public_url: expected the public"),
        ('public_url = "https://x.example/\\r\\nBcc: a@b.c"\n', "public_url: expected the"),
        ("public_url = 'http://localhost.evil.example'\n", "public_url: expected the public"),
        ("public_url = 'https://user@x.example'\n", "public_url: expected the public"),
        ("[smtp]\ndkim_domain = 'not a domain'\n", "smtp.dkim_domain: expected a domain name"),
        (
            "[telegram]\nwebhook_listen = '0.0.0.0:8443'\n",
            'dripper.toml:2:1: "telegram.webhook_listen" is now the top-level key "listen"',
        ),
        (
            "[smtp]\ndkim_selector = 's1'\n",
            "needs both dkim_selector and dkim_key_file",
        ),
    ],
)
def test_file_errors(tmp_path: Path, toml: str, expected: str) -> None:
    config = write(tmp_path / "dripper.toml", toml)
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={})
    assert expected in str(caught.value)
    assert "Traceback" not in str(caught.value)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"DRIPPER_SMTP_PORT": "abc"}, "DRIPPER_SMTP_PORT: input should be a valid integer"),
        ({"DRIPPER_SMTP_CONNECTIONS": "0"}, "DRIPPER_SMTP_CONNECTIONS: input should be greater"),
        ({"DRIPPER_TIMEZONE": "Mars/Base"}, 'DRIPPER_TIMEZONE: unknown time zone "Mars/Base"'),
        (
            {"DRIPPER_TELEGRAM_ALLOW_PAID_BROADCAST": "perhaps"},
            "DRIPPER_TELEGRAM_ALLOW_PAID_BROADCAST:",
        ),
        (
            {"DRIPPER_SMTP_HOTS": "x"},
            'DRIPPER_SMTP_HOTS: unknown dripper setting (did you mean "DRIPPER_SMTP_HOST"?)',
        ),
        ({"DRIPPER_SECURITY_HMAC_KEY": SECRET}, '(did you mean "DRIPPER_HMAC_KEY"?)'),
        (
            {"DRIPPER_TELEGRAM_WEBHOOK_LISTEN": "0.0.0.0:1"},
            "DRIPPER_TELEGRAM_WEBHOOK_LISTEN: renamed to DRIPPER_LISTEN",
        ),
    ],
)
def test_environment_errors_name_the_variable(env: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ=env)
    assert expected in str(caught.value)
    assert SECRET not in str(caught.value)


def test_missing_explicit_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: the config file does not exist"):
        load_settings(Path("nope.toml"), environ={})


def test_config_file_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "dripper.toml").write_bytes(b'trainer = "Jos\xe9"\n')
    with pytest.raises(ConfigError, match=r"dripper\.toml:1: not UTF-8"):
        load_settings(environ={})


# --------------------------------------------------------------------------- secrets

SECRET_CASES = [
    # (section, key in the file that is refused, env var, file key, setting)
    ("telegram", "token", "DRIPPER_TELEGRAM_TOKEN", "token_file", "telegram.token"),
    (
        "telegram",
        "webhook_secret",
        "DRIPPER_TELEGRAM_WEBHOOK_SECRET",
        "webhook_secret_file",
        "telegram.webhook_secret",
    ),
    ("smtp", "password", "DRIPPER_SMTP_PASSWORD", "password_file", "smtp.password"),
    ("imap", "password", "DRIPPER_IMAP_PASSWORD", "password_file", "imap.password"),
    ("security", "hmac_key", "DRIPPER_HMAC_KEY", "hmac_key_file", "security.hmac_key"),
]


@pytest.mark.parametrize(("section", "key", "env", "file_key", "setting"), SECRET_CASES)
def test_secret_in_toml_is_refused(
    tmp_path: Path, section: str, key: str, env: str, file_key: str, setting: str
) -> None:
    config = write(tmp_path / "dripper.toml", f'[{section}]\n\n{key} = "{SECRET}"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={})
    message = str(caught.value)
    assert message.startswith(f"{config}:3:1: {section}.{key} is a secret")
    assert env in message and file_key in message
    assert SECRET not in message


def test_hmac_key_at_top_level_is_refused_without_showing_it(tmp_path: Path) -> None:
    config = write(tmp_path / "dripper.toml", f'hmac_key = "{SECRET}"\n')
    with pytest.raises(ConfigError, match="DRIPPER_HMAC_KEY") as caught:
        load_settings(config, environ={})
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize(("section", "key", "env", "file_key", "setting"), SECRET_CASES)
def test_secret_from_environment(
    section: str, key: str, env: str, file_key: str, setting: str
) -> None:
    settings = load_settings(environ={env: SECRET})
    assert value_at(settings, setting).get_secret_value() == SECRET  # type: ignore[attr-defined]
    assert_never_shown(settings)


@pytest.mark.parametrize(("section", "key", "env", "file_key", "setting"), SECRET_CASES)
def test_secret_from_file_named_in_toml(
    tmp_path: Path, section: str, key: str, env: str, file_key: str, setting: str
) -> None:
    write(tmp_path / "conf" / "secrets" / "value", f"{SECRET}\n")
    config = write(
        tmp_path / "conf" / "dripper.toml", f'[{section}]\n{file_key} = "secrets/value"\n'
    )
    settings = load_settings(config, environ={})
    assert value_at(settings, setting).get_secret_value() == SECRET  # type: ignore[attr-defined]
    assert_never_shown(settings)


@pytest.mark.parametrize(("section", "key", "env", "file_key", "setting"), SECRET_CASES)
def test_secret_from_file_named_in_environment(
    tmp_path: Path, section: str, key: str, env: str, file_key: str, setting: str
) -> None:
    secret_file = write(tmp_path / "value", SECRET)
    settings = load_settings(environ={f"{env}_FILE": str(secret_file)})
    assert value_at(settings, setting).get_secret_value() == SECRET  # type: ignore[attr-defined]


def test_environment_secret_wins_over_file_in_toml(tmp_path: Path) -> None:
    config = write(tmp_path / "dripper.toml", '[telegram]\ntoken_file = "/does/not/exist"\n')
    settings = load_settings(config, environ={"DRIPPER_TELEGRAM_TOKEN": SECRET})
    assert settings.telegram.token is not None
    assert settings.telegram.token.get_secret_value() == SECRET


@pytest.mark.parametrize(
    ("toml", "env", "expected"),
    [
        (
            '[smtp]\npassword_file = "gone.txt"\n',
            {},
            'dripper.toml:2:1: smtp.password_file: cannot read the secret file "{tmp}/gone.txt"',
        ),
        (
            "",
            {"DRIPPER_HMAC_KEY_FILE": "gone.txt"},
            'DRIPPER_HMAC_KEY_FILE: cannot read the secret file "{tmp}/gone.txt": No such file',
        ),
        ('[imap]\npassword_file = "empty.txt"\n', {}, 'the secret file "{tmp}/empty.txt" is empty'),
        (
            "",
            {"DRIPPER_HMAC_KEY": "a", "DRIPPER_HMAC_KEY_FILE": "b"},
            "set DRIPPER_HMAC_KEY or DRIPPER_HMAC_KEY_FILE, not both",
        ),
        ("[security]\nhmac_key_file = 3\n", {}, "security.hmac_key_file: expected the path"),
    ],
)
def test_secret_file_errors(tmp_path: Path, toml: str, env: dict[str, str], expected: str) -> None:
    write(tmp_path / "empty.txt", "\n")
    config = write(tmp_path / "dripper.toml", toml)
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ=env)
    assert expected.format(tmp=tmp_path.resolve()) in str(caught.value)


def assert_never_shown(settings: Settings) -> None:
    for text in (repr(settings), str(settings), settings.describe(), settings.model_dump_json()):
        assert SECRET not in text


def test_describe_shows_secrets_as_set_and_hides_database_password() -> None:
    settings = load_settings(
        environ={
            "DRIPPER_SMTP_PASSWORD": SECRET,
            "DRIPPER_DATABASE_URL": f"postgresql://dripper:{SECRET}@db.example.com/dripper",
        }
    )
    lines = dict(line.split(maxsplit=1) for line in settings.describe().splitlines()[1:])
    assert lines["smtp.password"] == "set"
    assert lines["imap.password"] == "not set"
    assert lines["database_url"] == "postgresql://dripper:***@db.example.com/dripper"
    assert_never_shown(settings)


def test_settings_are_frozen_and_forbid_extra_keys() -> None:
    settings = load_settings(environ={})
    with pytest.raises(ValueError):
        settings.timezone = "Europe/Berlin"  # type: ignore[misc]
    with pytest.raises(ValueError):
        Settings.model_validate({"smpt": {}})


def test_every_environment_variable_is_documented() -> None:
    doc = dripper.config.__doc__ or ""
    assert [name for name in ENV_VARS if name not in doc] == []


def test_init_template_mentions_every_key() -> None:
    for loc in ENV_VARS.values():
        if loc[-1] in {"token", "password", "hmac_key", "webhook_secret"}:
            assert f"# {loc[-1]} =" not in CONFIG_TEMPLATE
        elif loc[-1] == "hmac_key_file":  # set, to the key `dripper init` writes beside it
            assert '\nhmac_key_file = "hmac.key"\n' in CONFIG_TEMPLATE
        else:
            assert f"# {loc[-1]} =" in CONFIG_TEMPLATE, loc


def test_cli_reports_config_errors_on_one_line_without_traceback(tmp_path: Path) -> None:
    write(tmp_path / "dripper.toml", "[smpt]\n")
    result = CliRunner().invoke(main, ["learners", "list"], env={"DRIPPER_CONFIG": None})
    assert result.exit_code == 1
    assert result.output.strip() == (
        'Error: dripper.toml:1:1: unknown key "smpt" (did you mean "smtp"?)'
    )


def test_public_url_listen_and_the_dkim_key_file(tmp_path: Path) -> None:
    config = write(
        tmp_path / "etc" / "dripper.toml",
        'public_url = "https://drip.example.com/"\nlisten = "[::1]:9000"\n'
        '[smtp]\nfrom_address = "course@Example.com"\n'
        'dkim_selector = "s1"\ndkim_key_file = "keys/dkim.key"\n',
    )
    settings = load_settings(config, environ={})
    assert settings.public_url == "https://drip.example.com"  # no trailing slash
    assert settings.listen_host_port == ("::1", 9000)
    assert settings.serves_http
    assert settings.smtp.dkim_key_file == (tmp_path / "etc" / "keys" / "dkim.key").resolve()
    assert settings.smtp.signing_domain == "example.com"
    assert not load_settings(environ={}).serves_http


def test_a_loopback_http_public_url_and_an_idn_signing_domain_are_accepted() -> None:
    settings = load_settings(
        environ={
            "DRIPPER_PUBLIC_URL": "http://127.0.0.1:8443/dripper",
            "DRIPPER_SMTP_FROM_ADDRESS": "kurs@bücher.example",
        }
    )
    assert settings.public_url == "http://127.0.0.1:8443/dripper"
    assert settings.smtp.signing_domain == "xn--bcher-kva.example"
