"""Storage: first-use migration, `migrate`, constraints and errors on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import sqlite3
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner
from tortoise.context import TortoiseContext, get_current_context
from tortoise.exceptions import IntegrityError
from tortoise.migrations.autodetector import MigrationAutodetector
from tortoise.models import Model

import dripper.db
import dripper.migrations
from dripper import models
from dripper.cli.app import AppContext, main
from dripper.cli.storage import migrate_cmd
from dripper.db import (
    MIGRATIONS_TABLE,
    SQLITE_BUSY_TIMEOUT_MS,
    connection,
    migrate,
    open_db,
    redact_url,
    tortoise_config,
)
from dripper.errors import DripperError
from dripper.models import Channel, Delivery, DeliveryKind, Learner, Trainer

INITIAL = "0001_initial"
ALL_MIGRATIONS = [
    "0001_initial",
    "0002_inbox_and_budget",
    "0003_delivery_change_index",
    "0004_unattended",
    "0005_problems",
    "0006_feedback_kind",
    "0007_learner_erased",
    "0008_trainers_on_telegram",
    "0009_channel_events_digest_media",
    "0010_restore_sqlite_indexes",
]
EXPECTED_TABLES = {
    "conversation_label",
    "read_mark",
    "rate_bucket",
    "trainer",
    "trainer_notice",
    "learner",
    "curriculum_version",
    "cohort",
    "enrollment",
    "delivery",
    "conversation",
    "inbound_item",
    "message",
    "quiz_answer",
    "channel_cursor",
    "invite",
    MIGRATIONS_TABLE,
}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest) -> str:
    """A fresh, empty database of either backend."""
    fixture = "sqlite_url" if request.param == "sqlite" else "empty_pg_url"
    url: str = request.getfixturevalue(fixture)
    return url


async def _tables() -> set[str]:
    client = connection()
    if client.capabilities.dialect == "sqlite":
        query = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    else:
        query = "SELECT tablename AS name FROM pg_tables WHERE schemaname = current_schema()"
    rows = await client.execute_query_dict(query)
    return {row["name"] for row in rows}


async def _execute(sql: str) -> None:
    await connection().execute_script(sql)


async def test_empty_database_is_migrated_on_first_use(empty_url: str) -> None:
    async with open_db(empty_url):
        assert await _tables() == EXPECTED_TABLES
        await Trainer.create(handle="ada", name="Ada")
    async with open_db(empty_url):
        assert await Trainer.filter(handle="ada").count() == 1


async def test_migrate_is_idempotent(empty_url: str) -> None:
    assert await migrate(empty_url) == ALL_MIGRATIONS
    assert await migrate(empty_url) == []
    async with open_db(empty_url):
        assert await _tables() == EXPECTED_TABLES


async def _indexes() -> set[tuple[str, tuple[str, ...], bool]]:
    """(table, columns, unique) of every index but primary keys, whichever the backend."""
    client = connection()
    found: set[tuple[str, tuple[str, ...], bool]] = set()
    if client.capabilities.dialect == "sqlite":
        tables = await client.execute_query_dict(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
        for table in [row["name"] for row in tables]:
            for index in await client.execute_query_dict(f"PRAGMA index_list('{table}')"):
                if index["origin"] == "pk":
                    continue
                info = await client.execute_query_dict(f"PRAGMA index_info('{index['name']}')")
                columns = tuple(str(row["name"]) for row in info)
                found.add((table, columns, bool(index["unique"])))
        return found
    rows = await client.execute_query_dict(
        "SELECT t.relname AS tab, i.indisunique AS uniq, "
        "ARRAY(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(n, o) "
        "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.n ORDER BY k.o) AS cols "
        "FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid "
        "JOIN pg_namespace s ON s.oid = t.relnamespace "
        "WHERE s.nspname = current_schema() AND NOT i.indisprimary"
    )
    return {(row["tab"], tuple(row["cols"]), bool(row["uniq"])) for row in rows}


@pytest.mark.postgres
async def test_sqlite_has_every_index_postgresql_has(sqlite_url: str, empty_pg_url: str) -> None:
    """Tortoise rebuilds a SQLite table to alter or remove a column, and the copy lost the
    table's indexes (0002, 0009): the two backends must end with the same ones."""
    async with open_db(empty_pg_url):
        on_postgres = await _indexes()
    async with open_db(sqlite_url):
        on_sqlite = await _indexes()
    assert ("conversation", ("enrollment_id",), True) in on_sqlite
    assert ("message", ("conversation_id", "id"), False) in on_sqlite
    assert on_sqlite == on_postgres


async def test_restoring_the_unique_conversation_index_merges_duplicates(db: str) -> None:
    """A SQLite database that lost the constraint may hold two conversations of one
    enrollment: 0010 folds the later into the older before restoring it."""
    from importlib import import_module

    restore = import_module("dripper.migrations.0010_restore_sqlite_indexes")
    client = connection()
    await _execute(
        "DROP INDEX conversation_enrollment_id_key;"
        "INSERT INTO learner (id, first_name, last_name, email_status, telegram_status, "
        "soft_bounces, media_bytes, attributes, created_at, updated_at) "
        "VALUES (1, 'Ann', '', 'unknown', 'unknown', 0, 0, '{}', '2026-01-01', '2026-01-01');"
        "INSERT INTO cohort (id, name, curriculum_key, course_end, paused, created_at) "
        "VALUES (1, 'dec', 'c', '2026-01-01', 0, '2026-01-01');"
        "INSERT INTO curriculum_version (id, key, content_hash, title, source, source_path, "
        "created_at) VALUES (1, 'c', 'h', 'C', '', '', '2026-01-01');"
        "INSERT INTO enrollment (id, learner_id, cohort_id, curriculum_id, state, anchor_at, "
        "shift_seconds, created_at) VALUES (1, 1, 1, 1, 'active', '2026-01-01', 0, '2026-01-01');"
        "INSERT INTO conversation (id, learner_id, enrollment_id, status, created_at) VALUES "
        "(1, 1, 1, 'open', '2026-01-01'), (2, 1, 1, 'open', '2026-01-02');"
        "INSERT INTO message (id, conversation_id, direction, body, attachments, flags, "
        "created_at) VALUES (1, 1, 'in', 'first', '[]', '[]', '2026-01-01'), "
        "(2, 2, 'in', 'second', '[]', '[]', '2026-01-02');"
        "INSERT INTO conversation_label (conversation_id, label) VALUES (1, 'x'), (2, 'x'), "
        "(2, 'y');"
    )
    assert await restore.merge_duplicate_conversations(client) == 1
    await _execute(restore.UNIQUE)
    rows = await client.execute_query_dict("SELECT conversation_id, body FROM message ORDER BY id")
    assert [(r["conversation_id"], r["body"]) for r in rows] == [(1, "first"), (1, "second")]
    labels = await client.execute_query_dict("SELECT label FROM conversation_label ORDER BY label")
    assert [r["label"] for r in labels] == ["x", "y"]
    [conversation] = await client.execute_query_dict(
        "SELECT id, last_message_id, last_inbound_id FROM conversation"
    )
    assert (conversation["id"], conversation["last_message_id"]) == (1, 2)
    with pytest.raises(IntegrityError):
        await _execute(
            "INSERT INTO conversation (learner_id, enrollment_id, status, created_at) "
            "VALUES (1, 1, 'open', '2026-01-03')"
        )


async def test_migrate_reports_progress(sqlite_url: str) -> None:
    events: list[tuple[str, str]] = []
    await migrate(sqlite_url, progress=lambda event, _app, name: events.append((event, name)))
    assert events == [
        (kind, name) for name in ALL_MIGRATIONS for kind in ("apply_start", "apply_done")
    ]


async def test_sqlite_runs_in_wal_mode_with_foreign_keys_and_busy_timeout(db: str) -> None:
    client = connection()
    assert (await client.execute_query_dict("PRAGMA journal_mode"))[0]["journal_mode"] == "wal"
    assert (await client.execute_query_dict("PRAGMA foreign_keys"))[0]["foreign_keys"] == 1
    timeout = (await client.execute_query_dict("PRAGMA busy_timeout"))[0]["timeout"]
    assert timeout == SQLITE_BUSY_TIMEOUT_MS
    # WAL is a property of the file: a plain sqlite3 connection sees it too.
    path = db.removeprefix("sqlite://")
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_sqlite_busy_timeout_can_be_set_in_the_url(
    tmp_path: Path, migrated_sqlite_file: Path
) -> None:
    shutil.copyfile(migrated_sqlite_file, tmp_path / "x.sqlite3")
    url = f"sqlite:///{tmp_path / 'x.sqlite3'}?busy_timeout=1234"
    async with open_db(url):
        rows = await connection().execute_query_dict("PRAGMA busy_timeout")
        assert rows[0]["timeout"] == 1234


async def _learner(email: str) -> Learner:
    return await Learner.create(email=email, first_name="Ada")


async def _delivery(learner: Learner, key: str) -> Delivery:
    return await Delivery.create(
        business_key=key,
        learner=learner,
        kind=DeliveryKind.STEP,
        channel=Channel.EMAIL,
        due_at=datetime(2030, 1, 1, 9, tzinfo=UTC),
        available_at=datetime(2030, 1, 1, 9, tzinfo=UTC),
    )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_url(request: pytest.FixtureRequest) -> str:
    """A migrated database of either backend; the PostgreSQL one is shared by the session."""
    fixture = "migrated_sqlite_url" if request.param == "sqlite" else "pg_url"
    url: str = request.getfixturevalue(fixture)
    return url


async def test_delivery_business_key_refuses_a_duplicate(any_url: str) -> None:
    async with open_db(any_url):
        token = secrets.token_hex(4)
        learner = await _learner(f"dup-{token}@example.org")
        await _delivery(learner, f"1:welcome:{token}")
        with pytest.raises(IntegrityError):
            await _delivery(learner, f"1:welcome:{token}")
        assert await Delivery.filter(business_key=f"1:welcome:{token}").count() == 1


def test_every_unique_together_survives_the_migrations(db: str) -> None:
    """Each model's unique_together is a unique index of the migrated SQLite file (a migration
    that rebuilds a table, as Tortoise does to alter a SQLite column, must not lose it)."""
    path = db.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        for value in vars(models).values():
            if not (isinstance(value, type) and issubclass(value, Model) and value is not Model):
                continue
            meta = value._meta
            table = meta.db_table
            unique = set()
            for row in conn.execute(f"PRAGMA index_list('{table}')"):
                if row[2]:  # unique
                    columns = [c[2] for c in conn.execute(f"PRAGMA index_info('{row[1]}')")]
                    unique.add(tuple(columns))
            for together in meta.unique_together:
                columns = tuple(
                    meta.fields_db_projection.get(name) or meta.fields_db_projection[f"{name}_id"]
                    for name in together
                )
                assert columns in unique, (table, columns, unique)


async def test_foreign_keys_are_enforced(any_url: str) -> None:
    async with open_db(any_url):
        with pytest.raises(IntegrityError):
            await _execute(
                "INSERT INTO enrollment (state, created_at, cohort_id, curriculum_id, learner_id) "
                "VALUES ('active', '2030-01-01 00:00:00+00:00', 999999, 999999, 999999)"
            )


async def test_db_fixture_context_reaches_the_test_and_its_tasks(db: str) -> None:
    await Trainer.create(handle="grace", name="Grace")

    async def count() -> int:
        return await Trainer.filter(handle="grace").count()

    assert await asyncio.create_task(count()) == 1


async def test_database_with_tables_but_no_migration_record_is_refused(any_url: str) -> None:
    async with open_db(any_url):
        await _execute(f"DELETE FROM {MIGRATIONS_TABLE}")
    try:
        for auto_migrate in (True, False):
            with pytest.raises(DripperError, match=r"run `dripper migrate`") as excinfo:
                async with open_db(any_url, auto_migrate=auto_migrate):
                    pytest.fail("a database with pending migrations was opened")
            assert INITIAL in str(excinfo.value)
    finally:
        await _record_migrations_as_applied(any_url)  # the PostgreSQL database is shared


async def _record_migrations_as_applied(url: str) -> None:
    async with TortoiseContext() as ctx:
        await ctx.init(config=tortoise_config(url))
        await dripper.db._executor(ctx.db()).migrate(fake=True)


@pytest.fixture
def initial_migrations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A migrations package with only 0001, as the first released dripper had."""
    package = f"dripper_initial_migrations_{tmp_path.name.replace('-', '_')}"
    target = tmp_path / "pkgs" / package
    target.mkdir(parents=True)
    (target / "__init__.py").write_text("")
    source = Path(dripper.migrations.__file__).parent / f"{INITIAL}.py"
    shutil.copy(source, target / f"{INITIAL}.py")
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))
    return package


async def test_a_database_of_the_first_release_upgrades_and_keeps_its_rows(
    empty_url: str, monkeypatch: pytest.MonkeyPatch, initial_migrations: str
) -> None:
    with monkeypatch.context() as older:
        older.setattr(dripper.db, "MIGRATIONS_MODULE", initial_migrations)
        assert await migrate(empty_url) == [INITIAL]
        async with TortoiseContext() as ctx:
            await ctx.init(config=tortoise_config(empty_url))
            await ctx.db().execute_script(
                "INSERT INTO learner (first_name, last_name, attributes, email_status, "
                "telegram_status, soft_bounces, created_at, updated_at) VALUES ('Ada', '', '{}', "
                "'unknown', 'unknown', 0, '2026-01-01 00:00:00+00:00', "
                "'2026-01-01 00:00:00+00:00');"
                "INSERT INTO conversation (learner_id, status, labels, created_at) VALUES "
                "(1, 'open', '[]', '2026-01-01 00:00:00+00:00');"
                "INSERT INTO trainer (handle, name, timezone, created_at) VALUES "
                "('tess', 'Tess', 'UTC', '2026-01-01 00:00:00+00:00')"
            )
    assert await migrate(empty_url) == ALL_MIGRATIONS[1:]
    async with open_db(empty_url):
        assert await _tables() == EXPECTED_TABLES
        [row] = await connection().execute_query_dict(
            "SELECT c.status, c.updated_at, l.first_name FROM conversation c "
            "JOIN learner l ON l.id = c.learner_id"
        )
        assert (row["status"], row["first_name"]) == ("open", "Ada")
        assert row["updated_at"] is not None
        # A trainer added before the digest existed gets it at the default time.
        tess = await Trainer.get(handle="tess")
        assert (tess.digest_at, tess.follows, tess.notify, tess.notified_upto) == (
            "08:00",
            [],
            True,
            0,
        )
        assert (await Learner.get(first_name="Ada")).media_bytes == 0


@pytest.fixture
def newer_migrations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A migrations package with the real 0001 plus a 0002, as a newer dripper would bring."""
    package = f"dripper_test_migrations_{tmp_path.name.replace('-', '_')}"
    target = tmp_path / "pkgs" / package
    target.mkdir(parents=True)
    (target / "__init__.py").write_text("")
    source = Path(dripper.migrations.__file__).parent
    for name in ALL_MIGRATIONS:
        shutil.copy(source / f"{name}.py", target / f"{name}.py")
    (target / "0099_later.py").write_text(
        textwrap.dedent(
            f"""
            from tortoise import migrations

            class Migration(migrations.Migration):
                dependencies = [("models", "{ALL_MIGRATIONS[-1]}")]
                operations = []
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))
    monkeypatch.setattr(dripper.db, "MIGRATIONS_MODULE", package)
    return package


async def test_pending_migration_refuses_to_open_until_migrate(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, newer_migrations: str
) -> None:
    with monkeypatch.context() as older:
        older.setattr(dripper.db, "MIGRATIONS_MODULE", "dripper.migrations")
        assert await migrate(sqlite_url) == ALL_MIGRATIONS
    with pytest.raises(DripperError) as excinfo:
        async with open_db(sqlite_url):
            pytest.fail("a database with pending migrations was opened")
    message = str(excinfo.value)
    assert "0099_later" in message
    assert "dripper migrate" in message
    assert await migrate(sqlite_url) == ["0099_later"]
    async with open_db(sqlite_url):
        assert await Trainer.all().count() == 0


async def test_database_from_a_newer_dripper_is_refused(sqlite_url: str) -> None:
    async with open_db(sqlite_url):
        await connection().execute_query(
            f"INSERT INTO {MIGRATIONS_TABLE} (app, name, applied_at) VALUES (?, ?, ?)",
            ["models", "0099_future", "2030-01-01 00:00:00+00:00"],
        )
    with pytest.raises(DripperError, match=r"newer dripper .*0099_future"):
        async with open_db(sqlite_url):
            pass


async def test_concurrent_first_use_migrates_once(empty_url: str) -> None:
    async def open_and_count() -> int:
        async with open_db(empty_url):
            return await Trainer.all().count()

    assert await asyncio.gather(*(open_and_count() for _ in range(3))) == [0, 0, 0]
    assert await migrate(empty_url) == []


async def test_auto_migrate_false_refuses_an_empty_database(sqlite_url: str) -> None:
    with pytest.raises(DripperError, match="dripper migrate"):
        async with open_db(sqlite_url, auto_migrate=False):
            pass


async def test_connections_are_closed_when_the_body_raises(migrated_sqlite_url: str) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with open_db(migrated_sqlite_url):
            raise RuntimeError("boom")
    assert get_current_context() is None


async def test_missing_sqlite_directory_is_a_clear_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nope' / 'dripper.sqlite3'}"
    with pytest.raises(DripperError, match=r"directory .*nope does not exist"):
        async with open_db(url):
            pass


async def test_unreachable_postgres_error_names_the_url_without_password() -> None:
    url = "postgresql://dripper:s3cr3t-pw@127.0.0.1:1/dripper"
    with pytest.raises(DripperError) as excinfo:
        async with open_db(url):
            pass
    message = str(excinfo.value)
    assert "s3cr3t-pw" not in message
    assert "postgresql://dripper:***@127.0.0.1:1/dripper" in message
    assert "cannot open the database" in message


async def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a database, " * 100)
    with pytest.raises(DripperError, match=r"cannot open the database .*notes\.txt"):
        async with open_db(f"sqlite:///{path}"):
            pass


@pytest.mark.postgres
async def test_missing_postgres_database_error_names_the_url_without_password(
    pg_url: str,
) -> None:
    # The real server with a password in the URL (trust auth ignores it), a missing database.
    url = pg_url.replace("postgresql://postgres@", "postgresql://postgres:s3cr3t-pw@")
    url = url.rsplit("/", 1)[0] + "/dripper_missing_database"
    with pytest.raises(DripperError) as excinfo:
        async with open_db(url):
            pass
    message = str(excinfo.value)
    assert "s3cr3t-pw" not in message
    assert "dripper_missing_database" in message


@pytest.mark.parametrize(
    "url",
    ["mysql://root@localhost/dripper", "dripper.sqlite3", "http://example.org/db"],
)
def test_unsupported_url_is_a_clear_error(url: str) -> None:
    with pytest.raises(DripperError, match="unsupported database URL"):
        tortoise_config(url)


@pytest.mark.parametrize(
    ("url", "engine"),
    [
        ("sqlite:///var/lib/dripper/dripper.sqlite3", "tortoise.backends.sqlite"),
        ("sqlite://:memory:", "tortoise.backends.sqlite"),
        ("postgres://u:p@db.example.org:5433/dripper", "tortoise.backends.asyncpg"),
        ("postgresql://u@db.example.org/dripper", "tortoise.backends.asyncpg"),
    ],
)
def test_tortoise_config_accepts_the_documented_urls(url: str, engine: str) -> None:
    config = tortoise_config(url)
    ((name, connection),) = config["connections"].items()
    assert connection["engine"] == engine
    assert config["apps"]["models"] == {
        "models": ["dripper.models"],
        "migrations": "dripper.migrations",
        "default_connection": name,
    }
    assert config["use_tz"] is True
    assert config["timezone"] == "UTC"


def test_sqlite_config_sets_the_pragmas() -> None:
    credentials = tortoise_config("sqlite:///tmp/x.sqlite3")["connections"]["sqlite"]["credentials"]
    assert credentials["file_path"] == "/tmp/x.sqlite3"
    assert credentials["journal_mode"] == "WAL"
    assert credentials["foreign_keys"] == "ON"
    assert credentials["busy_timeout"] == SQLITE_BUSY_TIMEOUT_MS


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:pw@h:5432/d", "postgresql://u:***@h:5432/d"),
        ("postgresql://u@h/d", "postgresql://u@h/d"),
        ("postgresql://u:p%40ss@h/d", "postgresql://u:***@h/d"),
        ("sqlite:///a/b.sqlite3", "sqlite:///a/b.sqlite3"),
    ],
)
def test_redact_url_hides_the_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_no_model_description_contains_a_semicolon() -> None:
    """Tortoise 1.1's SQLite migrations split DDL on ';', comments included: keep them out."""
    for value in vars(models).values():
        if not (isinstance(value, type) and issubclass(value, Model) and value is not Model):
            continue
        descriptions = [value._meta.table_description or ""]
        descriptions += [f.description or "" for f in value._meta.fields_map.values()]
        for text in descriptions:
            assert ";" not in text, f"{value.__name__}: {text!r}"


def test_migrations_match_the_models() -> None:
    """models.py changed without a migration? Run the command in dripper.db's docstring."""

    async def changes() -> list[Any]:
        config = tortoise_config("sqlite://:memory:")
        async with TortoiseContext() as ctx:
            await ctx.init(config=config)
            assert ctx.apps is not None
            writers = await MigrationAutodetector(ctx.apps, config["apps"]).changes()
            return [writer.name for writer in writers]

    assert asyncio.run(changes()) == []


def _invoke_migrate(url: str) -> Any:
    app = AppContext(config_path=None, _settings=SimpleNamespace(database_url=url))
    return CliRunner().invoke(migrate_cmd, [], obj=app)


def test_migrate_command_applies_then_reports_up_to_date(sqlite_url: str) -> None:
    first = _invoke_migrate(sqlite_url)
    assert first.exit_code == 0, first.output
    assert all(f"applied {name}" in first.output for name in ALL_MIGRATIONS)
    second = _invoke_migrate(sqlite_url)
    assert second.exit_code == 0, second.output
    assert "database is up to date" in second.output
    assert "applied" not in second.output


def test_migrate_command_never_prints_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "postgresql://dripper:s3cr3t-pw@127.0.0.1:1/dripper"
    settings = SimpleNamespace(database_url=url)
    monkeypatch.setattr(AppContext, "settings", property(lambda _self: settings))
    main.add_command(migrate_cmd)
    result = CliRunner().invoke(main, ["migrate"])
    assert result.exit_code == 1
    assert "s3cr3t-pw" not in result.output
    assert "postgresql://dripper:***@127.0.0.1:1/dripper" in result.output
