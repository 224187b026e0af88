"""Shared fixtures: real SQLite files in tmp_path and throwaway databases on the local PostgreSQL.

- `sqlite_url`: URL of a fresh SQLite file in tmp_path (created and migrated on first `open_db`).
- `db`: an open, migrated SQLite database for the test (`async def test_x(db): await Learner...`);
  a copy of one migrated once per session.
- `pg_url`: a PostgreSQL database created for the whole test session and dropped at its end.
  Tests share it: do not assume it is empty, use unique values.
- `empty_pg_url`: a PostgreSQL database of its own for one test, for tests that need it empty.

PostgreSQL tests are skipped, with the reason, when the server is not reachable. The server is
`postgresql://postgres@127.0.0.1:5432/postgres` unless DRIPPER_TEST_POSTGRES names another
maintenance database URL.

Tortoise and pytest-asyncio: Tortoise 1.x keeps its state in a contextvar set by the task that
enters `open_db`. pytest-asyncio (1.x, function loop scope) runs an async fixture's setup in a
copy of the context and then copies the changed contextvars into the test's context, and runs
the teardown in the fixture's own context, so `db` works as a plain async generator fixture: the
test sees the Tortoise context, and teardown closes the connection in the context that opened
it. Keep the fixture and the test on the same event loop (the default function loop scope):
Tortoise's connections belong to the loop that created them. Tasks a test creates inherit the
context, so `asyncio.create_task(...)` inside a test sees the database too.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from dripper.db import open_db

PG_MAINTENANCE_URL = os.environ.get(
    "DRIPPER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


async def _admin(sql: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    connection = await asyncpg.connect(PG_MAINTENANCE_URL, timeout=5)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def _create_pg_database() -> str:
    name = f"dripper_test_{secrets.token_hex(6)}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # whatever the reason, the answer is the same: no PostgreSQL here
        pytest.skip(f"PostgreSQL not reachable at {PG_MAINTENANCE_URL}: {exc!r}")
    return name


def _drop_pg_database(name: str) -> None:
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite file URL; the file is created and migrated on first use."""
    return f"sqlite:///{tmp_path / 'dripper.sqlite3'}"


@pytest.fixture(scope="session")
def migrated_sqlite_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once per session: `db` copies it instead of migrating again
    (0.36 s a test otherwise)."""
    path = tmp_path_factory.mktemp("template") / "dripper.sqlite3"

    async def migrate_once() -> None:
        async with open_db(f"sqlite:///{path}"):
            pass

    asyncio.run(migrate_once())
    return path


@pytest.fixture
async def db(sqlite_url: str, migrated_sqlite_file: Path, tmp_path: Path) -> AsyncIterator[str]:
    """An open, migrated SQLite database for the duration of the test; yields its URL."""
    assert sqlite_url.endswith(str(tmp_path / "dripper.sqlite3"))
    shutil.copyfile(migrated_sqlite_file, tmp_path / "dripper.sqlite3")
    async with open_db(sqlite_url):
        yield sqlite_url


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A PostgreSQL database for the whole session, dropped at its end (skips without server)."""
    name = _create_pg_database()
    yield _with_database(PG_MAINTENANCE_URL, name)
    _drop_pg_database(name)


@pytest.fixture
def empty_pg_url() -> Iterator[str]:
    """A PostgreSQL database of this test's own, empty, dropped afterwards."""
    name = _create_pg_database()
    yield _with_database(PG_MAINTENANCE_URL, name)
    _drop_pg_database(name)


@pytest.fixture
async def pg_db(empty_pg_url: str) -> AsyncIterator[str]:
    """An open, migrated PostgreSQL database of this test's own; yields its URL."""
    async with open_db(empty_pg_url):
        yield empty_pg_url
