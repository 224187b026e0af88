"""Learner CSV parsing (pure, table-driven) and import through the real CLI on SQLite files."""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import dripper.learners.roster
from dripper.cli import main
from dripper.config import load_settings
from dripper.db import open_db
from dripper.inbox.canned import load_canned_replies
from dripper.learners.roster import (
    EXAMPLE_CSV,
    LearnerFileError,
    import_learners,
    normalise_column,
    parse_learners_csv,
)
from dripper.models import Learner

HEADER = "name,email,telegram,timezone,language"


def parse(text: str) -> dripper.learners.roster.ParsedLearners:
    return parse_learners_csv(text.encode("utf-8"), "learners.csv")


# --------------------------------------------------------------------------- parsing


def test_valid_rows_are_normalised() -> None:
    parsed = parse(
        "Name , E-Mail,Telegram,Time Zone,Language,Department,Cost-Center\n"
        "Zoë  Ann Fischer,Zoe@Example.COM,@Zoe_Fischer,europe/berlin,pt-br,Sales,CC 7\n"
        "Łukasz Nowak,,lukasz_n,,zh_hant_tw,,\n"
    )
    assert parsed.errors == []
    zoe, lukasz = parsed.rows
    assert (zoe.row, zoe.first_name, zoe.last_name) == (2, "Zoë", "Ann Fischer")
    assert (zoe.email, zoe.telegram) == ("zoe@example.com", "zoe_fischer")
    assert (zoe.timezone, zoe.language) == ("Europe/Berlin", "pt-BR")
    assert zoe.attributes == {"department": "Sales", "cost_center": "CC 7"}
    assert (lukasz.email, lukasz.telegram, lukasz.timezone) == (None, "lukasz_n", None)
    assert lukasz.language == "zh-Hant-TW"
    assert lukasz.attributes == {}
    assert "cost_center" in lukasz.columns


def test_first_and_last_name_columns() -> None:
    parsed = parse("First Name,Last Name,Email\nJosé,García Márquez,jose@example.com\n")
    assert (parsed.rows[0].first_name, parsed.rows[0].last_name) == ("José", "García Márquez")


@pytest.mark.parametrize(
    ("data", "delimiter"),
    [
        (("\ufeff" + HEADER + "\nAna Souza,ana@example.com,,,\n").encode(), "BOM"),
        (b"name;email;telegram\nAna Souza;ana@example.com;\n", "semicolon"),
        (b"name\temail\nAna Souza\tana@example.com\n", "tab"),
        (b'"name","email"\r\n"Ana Souza","ana@example.com"\r\n', "quoted CRLF"),
        ("name,email\nAna Souza,ana@example.com\n".encode("utf-16"), "UTF-16"),
        (b'name;email;notes\nAna Souza;ana@example.com;"a, b; c"\n', "semicolon + commas"),
    ],
)
def test_encodings_and_delimiters(data: bytes, delimiter: str) -> None:
    parsed = parse_learners_csv(data, "learners.csv")
    assert parsed.errors == []
    assert [(r.first_name, r.last_name, r.email) for r in parsed.rows] == [
        ("Ana", "Souza", "ana@example.com")
    ]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (",bob@example.com,,,", "learners.csv:3: needs a name"),
        ("Bob Stone,,,,", "learners.csv:3: needs an email or a telegram handle"),
        ("Bob Stone,bob@,,,", 'learners.csv:3: invalid email "bob@"'),
        ("Bob Stone,Bob <bob@example.com>,,,", "learners.csv:3: invalid email"),
        ("Bob Stone,,@bob,,", 'learners.csv:3: invalid telegram handle "@bob": 5-32 letters'),
        ("Bob Stone,,1bobby,,", 'learners.csv:3: invalid telegram handle "1bobby"'),
        ("Bob Stone,,bob-stone,,", 'learners.csv:3: invalid telegram handle "bob-stone"'),
        ("Bob Stone,,b" + "o" * 32 + ",,", "learners.csv:3: invalid telegram handle"),
        ("Bob Stone,bob@example.com,,Europe/Berln,", 'unknown time zone "Europe/Berln" (did you'),
        ("Bob Stone,bob@example.com,,,english", 'learners.csv:3: invalid language "english"'),
        ("Bob Stone,bob@example.com,,,,surplus", "learners.csv:3: column 6 has a value but no"),
        ("Bob\x1b[31m Stone,bob@example.com,,,", 'name "Bob\\x1b[31m Stone" contains control'),
        ("B" + "o" * 200 + " Stone,bob@example.com,,,", "name is longer than 200 characters"),
    ],
)
def test_row_errors_carry_the_spreadsheet_row_number(row: str, message: str) -> None:
    parsed = parse(f"{HEADER}\nAna Souza,ana@example.com,,,\n{row}\n")
    assert [r.email for r in parsed.rows] == ["ana@example.com"]
    assert len(parsed.errors) == 1
    assert message in str(parsed.errors[0])


def test_empty_lines_and_multiline_cells_count_as_spreadsheet_rows() -> None:
    parsed = parse(
        "name,email,notes\n"
        "Ana Souza,ana@example.com,\n"
        "\n"
        'Bob Stone,bob@example.com,"two\nlines"\n'
        "Cy,bad@,\n"
    )
    assert [r.row for r in parsed.rows] == [2, 4]
    assert parsed.rows[1].attributes == {"notes": "two\nlines"}
    assert [str(e) for e in parsed.errors] == [
        'learners.csv:5: invalid email "bad@": expected an address like ana@example.com'
    ]


def test_duplicates_name_both_rows() -> None:
    parsed = parse(
        f"{HEADER}\n"
        "Ana Souza,ana@example.com,ana_souza,,\n"
        "Bob Stone,bob@example.com,,,\n"
        "Ana Again,ANA@example.com,,,\n"
        "Cy Twin,cy@example.com,@Ana_Souza,,\n"
    )
    assert [r.row for r in parsed.rows] == [2, 3]
    assert [str(e) for e in parsed.errors] == [
        'learners.csv:4: duplicate email "ana@example.com" (also on row 2)',
        'learners.csv:5: duplicate telegram "@ana_souza" (also on row 2)',
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "learners.csv: the file is empty"),
        (b"\n \n", "learners.csv: the file is empty"),
        (b"name,email\nJos\xe9,jose@example.com\n", "learners.csv:2: the file is not UTF-8 text"),
        (b"email,telegram\na@example.com,\n", 'learners.csv:1: missing column "name"'),
        (b"last_name,email\nSouza,a@example.com\n", 'missing column "first_name"'),
        (b"name,timezone\nAna,UTC\n", 'learners.csv:1: missing column "email" or "telegram"'),
        (b"name,email,2nd manager\n", 'learners.csv:1: column "2nd manager" cannot be used'),
        (b"name,email,manager's name\n", 'column "manager\'s name" cannot be used'),
        (b"name,email,Cost Center,cost-center\n", 'both mean "cost_center"'),
        (b"name,email,If\n", 'learners.csv:1: column "If" cannot be used'),
        (b"name,email,E-mail\n", 'columns "email" and "E-mail" both mean "email"'),
    ],
)
def test_file_errors(data: bytes, message: str) -> None:
    with pytest.raises(LearnerFileError) as caught:
        parse_learners_csv(data, "learners.csv")
    assert message in str(caught.value)


def test_header_only_file_has_no_rows() -> None:
    parsed = parse(HEADER + "\n")
    assert (parsed.rows, parsed.errors) == ([], [])


def test_blank_header_column_without_values_is_ignored() -> None:
    parsed = parse("name,email,\nAna Souza,ana@example.com,\n")
    assert parsed.errors == []
    assert parsed.rows[0].attributes == {}


def test_misspelt_standard_column_is_kept_as_attribute_with_a_warning() -> None:
    parsed = parse("name,emial,telegram\nAna Souza,ana@example.com,ana_souza\n")
    assert parsed.rows[0].attributes == {"emial": "ana@example.com"}
    assert parsed.warnings == [
        'learners.csv:1: column "emial" is imported as a custom attribute (did you mean "email"?)'
    ]


@pytest.mark.parametrize(
    ("header", "column"),
    [(" Department ", "department"), ("Cost-Center", "cost_center"), ("TZ", "timezone")],
)
def test_normalise_column(header: str, column: str) -> None:
    assert normalise_column(header) == column


def test_example_csv_is_valid() -> None:
    parsed = parse(EXAMPLE_CSV)
    assert parsed.errors == [] and parsed.warnings == []
    assert 6 <= len(parsed.rows) <= 8
    assert any(r.email is None for r in parsed.rows)
    assert any(r.telegram is None for r in parsed.rows)
    assert len({r.timezone for r in parsed.rows}) >= 5


# --------------------------------------------------------------------------- import (database)


async def test_import_matches_case_insensitively_and_never_duplicates(db: str) -> None:
    await Learner.create(first_name="Ana", last_name="Souza", email="Ana.Souza@Example.com")
    await Learner.create(first_name="Tg", telegram_username="Tele_User")
    parsed = parse(
        f"{HEADER}\n"
        "Ana Souza,ana.souza@example.com,,,\n"
        "Tg User,,@tele_user,,\n"
        "New Person,new@example.com,,,\n"
    )
    result = await import_learners(parsed.rows)
    assert (result.created, result.updated, result.unchanged) == (1, 2, 0)
    assert await Learner.all().count() == 3
    again = await import_learners(parsed.rows)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 3)


async def test_import_rejects_rows_that_would_merge_two_learners(db: str) -> None:
    await Learner.create(first_name="Ana", email="ana@example.com")
    await Learner.create(first_name="Bob", telegram_username="bob_stone")
    parsed = parse(f"{HEADER}\nAna Souza,ana@example.com,bob_stone,,\n")
    result = await import_learners(parsed.rows, source="x.csv")
    assert (result.created, result.updated, result.unchanged) == (0, 0, 0)
    assert [str(e) for e in result.rejected] == [
        'x.csv:2: email "ana@example.com" and telegram "@bob_stone" belong to two different '
        "learners (Ana, Bob); fix the row or merge them first"
    ]


async def test_import_rejects_a_second_row_for_the_same_learner_across_batches(
    db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dripper.learners.roster, "BATCH_SIZE", 2)
    await Learner.create(first_name="Ana", email="ana@example.com", telegram_username="ana_souza")
    parsed = parse(
        f"{HEADER}\n"
        "Ana Souza,ana@example.com,,,\n"
        "B One,b1@example.com,,,\n"
        "C Two,c2@example.com,,,\n"
        "Ana Tg,,ana_souza,,\n"
    )
    done: list[int] = []
    result = await import_learners(parsed.rows, progress=done.append)
    assert done == [2, 2]
    assert (result.created, result.updated) == (2, 1)
    assert [str(e) for e in result.rejected] == [
        "learners:5: matches the same learner as row 2 (Ana Souza)"
    ]


async def test_dry_run_reports_without_writing(db: str) -> None:
    parsed = parse(f"{HEADER}\nAna Souza,ana@example.com,,,\n")
    result = await import_learners(parsed.rows, dry_run=True)
    assert result.created == 1
    assert await Learner.all().count() == 0


async def test_thousands_of_rows_import_in_batches(db: str) -> None:
    lines = [f"Person {i},p{i}@example.com,user_{i:05d},Europe/Berlin,en" for i in range(3000)]
    parsed = parse(HEADER + "\n" + "\n".join(lines) + "\n")
    result = await import_learners(parsed.rows)
    assert result.created == 3000
    lines[10] = "Person Ten,p10@example.com,user_00010,Asia/Tokyo,en"
    changed = await import_learners(parse(HEADER + "\n" + "\n".join(lines) + "\n").rows)
    assert (changed.created, changed.updated, changed.unchanged) == (0, 1, 2999)
    learner = await Learner.get(email="p10@example.com")
    assert (learner.first_name, learner.last_name, learner.timezone) == (
        "Person",
        "Ten",
        "Asia/Tokyo",
    )


# --------------------------------------------------------------------------- the CLI


@pytest.fixture
def first_use_cli(tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """The commands in tmp_path on a database file not yet there: the first creates and
    migrates it."""
    monkeypatch.chdir(tmp_path)
    for name in ("DRIPPER_CONFIG", "DRIPPER_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DRIPPER_DATABASE_URL", sqlite_url)
    return CliRunner()


@pytest.fixture
def cli(first_use_cli: CliRunner, migrated_sqlite_url: str) -> CliRunner:
    """The commands in tmp_path on a migrated database (migrating takes a second)."""
    return first_use_cli


def run(cli: CliRunner, *args: str) -> Result:
    return cli.invoke(main, list(args), catch_exceptions=False)


def listed(cli: CliRunner) -> list[dict[str, object]]:
    result = run(cli, "learners", "list", "--json")
    assert result.exit_code == 0, result.output
    learners: list[dict[str, object]] = json.loads(result.stdout)
    return learners


ROSTER = (
    "Name,Email,Telegram,Timezone,Language,Department\n"
    "Zoë Fischer,zoe@example.com,@zoe_fischer,Europe/Berlin,de,Sales\n"
    "José García,jose@example.com,,America/Mexico_City,es,Support\n"
    "Łukasz Nowak,,lukasz_nowak,Europe/Warsaw,pl,\n"
)


def test_cli_import_is_idempotent_and_updates_changed_rows(cli: CliRunner, tmp_path: Path) -> None:
    roster = tmp_path / "learners.csv"
    roster.write_text(ROSTER, encoding="utf-8")
    first = run(cli, "learners", "import", "learners.csv")
    assert first.exit_code == 0, first.output
    assert first.stdout.strip() == "3 learners: 3 created, 0 updated, 0 unchanged"

    again = run(cli, "learners", "import", "learners.csv")
    assert again.stdout.strip() == "3 learners: 0 created, 0 updated, 3 unchanged"

    roster.write_text(
        ROSTER.replace("Europe/Berlin,de,Sales", ",de,Marketing").replace("José", "Josep"),
        encoding="utf-8",
    )
    changed = run(cli, "learners", "import", "learners.csv")
    assert changed.stdout.strip() == "3 learners: 0 created, 2 updated, 1 unchanged"
    zoe, jose, lukasz = listed(cli)
    assert (zoe["timezone"], zoe["attributes"]) == (None, {"department": "Marketing"})
    assert (jose["first_name"], jose["name"]) == ("Josep", "Josep García")
    assert lukasz == {
        "id": lukasz["id"],
        "name": "Łukasz Nowak",
        "first_name": "Łukasz",
        "last_name": "Nowak",
        "email": None,
        "telegram": "lukasz_nowak",
        "timezone": "Europe/Warsaw",
        "language": "pl",
        "attributes": {},
    }


def test_cli_import_keeps_fields_the_file_does_not_have(cli: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "full.csv").write_text(ROSTER, encoding="utf-8")
    run(cli, "learners", "import", "full.csv")
    (tmp_path / "names.csv").write_text(
        "name,email,telegram\nZoë Fischer,zoe@example.com,\n", encoding="utf-8"
    )
    result = run(cli, "learners", "import", "names.csv")
    assert result.stdout.strip() == "1 learner: 0 created, 0 updated, 1 unchanged"
    zoe = listed(cli)[0]
    assert (zoe["telegram"], zoe["timezone"], zoe["language"]) == (
        "zoe_fischer",
        "Europe/Berlin",
        "de",
    )
    assert zoe["attributes"] == {"department": "Sales"}


def test_cli_rejected_rows_exit_1_but_valid_rows_are_imported(
    cli: CliRunner, tmp_path: Path
) -> None:
    (tmp_path / "learners.csv").write_text(
        ROSTER + "Bob Stone,bob@,,,,\nZoë Again,ZOE@example.com,,,,\n", encoding="utf-8"
    )
    result = run(cli, "learners", "import", "learners.csv")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        'learners.csv:5: invalid email "bob@": expected an address like ana@example.com',
        'learners.csv:6: duplicate email "zoe@example.com" (also on row 2)',
    ]
    assert result.stdout.strip() == "3 learners: 3 created, 0 updated, 0 unchanged; 2 rows rejected"
    assert len(listed(cli)) == 3


def test_cli_dry_run_writes_nothing(
    first_use_cli: CliRunner, tmp_path: Path, sqlite_url: str
) -> None:
    cli = first_use_cli
    (tmp_path / "learners.csv").write_text(ROSTER, encoding="utf-8")
    result = run(cli, "learners", "import", "--dry-run", "learners.csv")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        "3 learners: 3 to create, 0 to update, 0 unchanged (dry run: nothing written)"
    )
    assert not Path(sqlite_url.removeprefix("sqlite://")).exists()

    run(cli, "learners", "import", "learners.csv")
    (tmp_path / "learners.csv").write_text(ROSTER.replace("Sales", "Legal"), encoding="utf-8")
    result = run(cli, "learners", "import", "--dry-run", "learners.csv")
    assert result.stdout.strip() == (
        "3 learners: 0 to create, 1 to update, 2 unchanged (dry run: nothing written)"
    )
    assert listed(cli)[0]["attributes"] == {"department": "Sales"}


def test_cli_file_errors_are_one_line(cli: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "latin1.csv").write_bytes(b"name,email\nJos\xe9,jose@example.com\n")
    result = run(cli, "learners", "import", "latin1.csv")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: latin1.csv:2: the file is not UTF-8 text (byte 0xe9)")
    missing = run(cli, "learners", "import", "missing.csv")
    assert missing.exit_code == 1
    assert "missing.csv: cannot read the file" in missing.stderr


def test_cli_list_does_not_interpret_learner_text_as_markup(cli: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "learners.csv").write_text(
        "name,email,note\n[bold red]Mallory[/] Markup,mallory@example.com,[link=x]y[/link]\n",
        encoding="utf-8",
    )
    assert run(cli, "learners", "import", "learners.csv").exit_code == 0
    result = cli.invoke(main, ["learners", "list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "[bold red]Mallory[/]" in result.stdout
    assert "note=[link=x]y[/link]" in result.stdout
    assert result.stdout.rstrip().endswith("1 learner")


def test_cli_list_json_on_an_empty_database(first_use_cli: CliRunner) -> None:
    assert listed(first_use_cli) == []


def test_init_writes_files_that_load_and_import(cli: CliRunner, tmp_path: Path) -> None:
    result = run(cli, "init", "--dir", "project")
    assert result.exit_code == 0, result.output
    assert "wrote project/dripper.toml" in result.stdout
    assert "dripper learners import learners.csv" in result.stdout
    settings = load_settings(tmp_path / "project" / "dripper.toml", environ={})
    assert settings.database_url == f"sqlite://{(tmp_path / 'project').resolve()}/dripper.sqlite3"

    imported = run(cli, "learners", "import", "project/learners.csv")
    assert imported.exit_code == 0, imported.output
    assert imported.stderr == ""
    assert imported.stdout.strip() == "7 learners: 7 created, 0 updated, 0 unchanged"
    assert settings.canned_replies == (tmp_path / "project" / "canned-replies.yaml").resolve()
    canned = load_canned_replies(settings.canned_replies)
    assert [reply.id for reply in canned] == ["thanks", "follow-up-call", "resources"]
    # A fresh HMAC key, readable by its owner alone, that the settings read.
    key_file = tmp_path / "project" / "hmac.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert settings.security.hmac_key is not None
    assert settings.security.hmac_key.get_secret_value() == key_file.read_text().strip()
    assert len(settings.security.hmac_key.get_secret_value()) >= 40


def test_init_gives_a_curriculum_that_checks_and_enrolls(cli: CliRunner, tmp_path: Path) -> None:
    """Its own next steps work outside any checkout: check the starter, enroll the example
    learners in it."""
    assert run(cli, "init").exit_code == 0
    starter = tmp_path / "curricula" / "my-course.yaml"
    assert starter.read_text(encoding="utf-8").startswith("# Your first curriculum")
    schema = json.loads((tmp_path / "curricula" / "curriculum.schema.json").read_text())
    assert schema["title"] == "dripper curriculum"
    checked = run(cli, "check")
    assert checked.exit_code == 0, checked.output
    assert 'ok: my-course "My course — the weeks after", 5 steps' in checked.stdout
    enrolled = run(
        cli,
        "enroll",
        "my-course",
        "--cohort",
        "Course Dec",
        "--course-end",
        "2026-12-04 17:00",
        "--learners",
        "learners.csv",
    )
    assert enrolled.exit_code == 0, enrolled.output
    assert "7 enrolled, 0 already enrolled, 0 rejected" in enrolled.stdout


def test_init_refuses_to_overwrite_without_force(cli: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "dripper.toml").write_text("# mine\n", encoding="utf-8")
    refused = run(cli, "init")
    assert refused.exit_code == 1
    assert refused.stderr.strip() == (
        "Error: dripper.toml already exists; nothing written (use --force to overwrite)"
    )
    assert not (tmp_path / "learners.csv").exists()
    forced = run(cli, "init", "--force")
    assert forced.exit_code == 0
    assert (tmp_path / "dripper.toml").read_text(encoding="utf-8") != "# mine\n"
    key = (tmp_path / "hmac.key").read_text()
    (tmp_path / "curricula" / "my-course.yaml").write_text("# my own drip\n", encoding="utf-8")
    again = run(cli, "init", "--force")  # a new key would void every reply address sent
    assert "kept hmac.key" in again.stdout
    assert (tmp_path / "hmac.key").read_text() == key
    assert "kept curricula/my-course.yaml" in again.stdout  # the trainer's work
    assert (tmp_path / "curricula" / "my-course.yaml").read_text() == "# my own drip\n"


def test_import_with_the_db_open_in_the_same_task(migrated_sqlite_url: str) -> None:
    """import_learners needs only an open_db block in the calling coroutine."""

    async def scenario() -> int:
        async with open_db(migrated_sqlite_url):
            await import_learners(parse(EXAMPLE_CSV).rows)
            return await Learner.all().count()

    assert asyncio.run(scenario()) == 7


@pytest.mark.postgres
def test_import_on_postgresql(pg_url: str) -> None:
    """The same matching and batching SQL on PostgreSQL (a shared database: unique values)."""
    tag = secrets.token_hex(4)
    roster = (
        f"{HEADER}\n"
        f"Ana Souza,ana_{tag}@example.com,,,pt-BR\n"
        f"Tg User,,tg_{tag},Asia/Tokyo,\n"
        f"New Person,new_{tag}@example.com,,,\n"
    )

    async def scenario() -> list[tuple[int, int, int]]:
        async with open_db(pg_url):
            await Learner.create(first_name="Ana", email=f"Ana_{tag}@Example.com")
            counts = []
            for text in (roster, roster, roster.replace("Asia/Tokyo", "Europe/Paris")):
                result = await import_learners(parse(text).rows)
                assert result.rejected == []
                counts.append((result.created, result.updated, result.unchanged))
            learner = await Learner.get(telegram_username=f"tg_{tag}")
            assert learner.timezone == "Europe/Paris"
            return counts

    assert asyncio.run(scenario()) == [(2, 1, 0), (0, 0, 3), (0, 1, 2)]


def test_leading_blank_lines_move_the_header_row() -> None:
    parsed = parse("\n\nname,email\nAna Souza,bad@\n")
    assert [str(e) for e in parsed.errors] == [
        'learners.csv:4: invalid email "bad@": expected an address like ana@example.com'
    ]
    with pytest.raises(LearnerFileError, match=r"^learners\.csv:2: missing column"):
        parse("\nemail\n")
