"""Opening, closing and migrating the database: the one place that initialises Tortoise ORM.

`open_db(url)` is what every command and the TUI use. It initialises a Tortoise context in the
calling task, checks that the server is reachable, migrates an empty database on first use and
refuses a database whose schema is behind this version of dripper (run `dripper migrate`). It
always closes the connections on the way out.

Tortoise 1.x keeps its state in a contextvar: enter `open_db` in the main coroutine and create
every other task from inside it. A task created before, or a task that cannot see the context,
finds no database.

Schema changes go through Tortoise's built-in migrations, stored in `dripper/migrations/`.
After changing `dripper/models.py`, generate the next migration from the repository root with

    .venv/bin/tortoise makemigrations -n short_description

(`[tool.tortoise]` in pyproject.toml points the `tortoise` command at `TORTOISE_ORM` below), review
the generated module, run the storage tests (they migrate both SQLite and PostgreSQL) and commit
it. Users apply it with `dripper migrate`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.context import TortoiseContext, require_context
from tortoise.exceptions import ConfigurationError, DBConnectionError, OperationalError

from dripper.errors import DripperError

APP_LABEL = "models"
MODELS_MODULE = "dripper.models"
MIGRATIONS_MODULE = "dripper.migrations"
MIGRATIONS_TABLE = "tortoise_migrations"  # Tortoise's MigrationRecorder default

SQLITE_SCHEMES = frozenset({"sqlite"})
POSTGRES_SCHEMES = frozenset({"postgres", "postgresql"})

# Writers wait this long for SQLite's write lock (another dripper process) before failing.
SQLITE_BUSY_TIMEOUT_MS = 5000
# asyncpg's default is 60 s: far too long to tell a user that the server is not there.
POSTGRES_CONNECT_TIMEOUT_S = 10
# Serialises migrations between processes sharing one PostgreSQL database ("dripper" in ASCII).
POSTGRES_MIGRATION_LOCK_KEY = 0x6472697070657200

ProgressCallback = Callable[[str, str, str], object]


_SECRET_PARAMS = re.compile(
    r"(^|&)((?:[^=&]*(?:password|passwd|pwd|secret|token|key|sslkey)[^=&]*)=)[^&]*", re.IGNORECASE
)


def redact_url(url: str) -> str:
    """The URL with its password replaced by `***`, in the address and in the query string
    (`?password=...`, `?sslpassword=...`, any parameter naming a secret, key or token), fit
    for messages and logs."""
    parts = urlsplit(url)
    if parts.password is not None:
        host = parts.netloc.rsplit("@", 1)[1]
        parts = parts._replace(netloc=f"{parts.username or ''}:***@{host}")
    if parts.query:
        parts = parts._replace(query=_SECRET_PARAMS.sub(r"\1\2***", parts.query))
    return urlunsplit(parts)


def tortoise_config(url: str) -> dict[str, Any]:
    """The Tortoise config for dripper's models and migrations on the database at `url`.

    Accepts `sqlite:///abs/path`, `sqlite://:memory:`, `postgres://` and `postgresql://` (asyncpg).
    SQLite runs in WAL mode with foreign keys enforced and a busy timeout; query parameters in
    the URL (e.g. `?busy_timeout=10000`, `?timeout=3`) override the defaults.
    """
    scheme = urlsplit(url).scheme.lower()
    if scheme not in SQLITE_SCHEMES | POSTGRES_SCHEMES:
        raise DripperError(
            f"unsupported database URL {redact_url(url)!r}: use sqlite:///path/to/dripper.sqlite3 "
            "or postgresql://user:password@host:5432/dbname"
        )
    try:
        connection_config = expand_db_url(url)
    except (ConfigurationError, ValueError) as exc:
        raise DripperError(f"invalid database URL {redact_url(url)!r}: {exc}") from None
    credentials: dict[str, Any] = connection_config["credentials"]
    # Named after the dialect, not "default": Tortoise caches each model's INSERT/DELETE SQL per
    # connection name for the life of the process, so a process (a test session) that opens
    # SQLite and later PostgreSQL under one name would send SQLite's `?` placeholders to asyncpg.
    name = "sqlite" if scheme in SQLITE_SCHEMES else "postgres"
    if scheme in SQLITE_SCHEMES:
        # Tortoise's SQLite client runs every extra credential as `PRAGMA key=value` on connect.
        credentials["journal_mode"] = "WAL"
        credentials["foreign_keys"] = "ON"
        credentials.setdefault("busy_timeout", SQLITE_BUSY_TIMEOUT_MS)
    else:
        credentials.setdefault("timeout", POSTGRES_CONNECT_TIMEOUT_S)
    return {
        "connections": {name: connection_config},
        "apps": {
            APP_LABEL: {
                "models": [MODELS_MODULE],
                "migrations": MIGRATIONS_MODULE,
                "default_connection": name,
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


# What the `tortoise` command line (makemigrations) loads; see the module docstring.
TORTOISE_ORM = tortoise_config("sqlite://:memory:")


_current_url: contextvars.ContextVar[str] = contextvars.ContextVar("dripper_database_url")


def database_key() -> str:
    """Which database is open in this context: for caches of rows that never change (a stored
    curriculum version), so that two databases in one process never share entries."""
    return _current_url.get("")


def connection() -> BaseDBAsyncClient:
    """The open database's Tortoise client, for raw SQL; only inside `open_db`."""
    return require_context().db()


@asynccontextmanager
async def open_db(url: str, *, auto_migrate: bool = True) -> AsyncIterator[None]:
    """Initialise Tortoise on `url` for the body of the `async with`, then close every connection.

    An empty database is migrated on first use (unless `auto_migrate` is false). A database that
    already has tables but lacks migrations is refused: run `dripper migrate`, dripper does not
    alter a live schema behind the user's back. Enter it in the main coroutine and start other
    tasks from inside it: Tortoise's state lives in a contextvar of the entering task.
    """
    async with _connected(url) as client:
        if not await _up_to_date(client):  # the common case answers without the migrations
            await _check_migrations(client, url, auto_migrate)
        token = _current_url.set(url)
        try:
            yield
        finally:
            _current_url.reset(token)


async def _check_migrations(client: BaseDBAsyncClient, url: str, auto_migrate: bool) -> None:
    """Migrate an empty database; refuse one that lacks migrations or has unknown ones."""
    if await _pending_migrations(client):
        # Decided under the lock: another process may be migrating this database right now.
        async with _migration_lock(client, url):
            pending = await _pending_migrations(client)
            if pending and auto_migrate and await _is_empty(client):
                await _apply_pending(client)
            elif pending:
                raise DripperError(
                    f"the database {redact_url(url)} needs migrations this dripper brings "
                    f"({', '.join(pending)}): back it up, then run `dripper migrate`"
                )
    unknown = await _unknown_applied(client)
    if unknown:
        raise DripperError(
            f"the database {redact_url(url)} was migrated by a newer dripper "
            f"(unknown migrations: {', '.join(unknown)}): upgrade dripper"
        )


async def migrate(url: str, *, progress: ProgressCallback | None = None) -> list[str]:
    """Apply every pending migration to the database at `url`; return the names applied, in order.

    `progress(event, app_label, name)` is called with "apply_start" and "apply_done" around each
    migration. Returns an empty list when the database is up to date.
    """
    async with _connected(url) as client, _migration_lock(client, url):
        return await _apply_pending(client, progress=progress)


@dataclass(frozen=True)
class SchemaStatus:
    """What `dripper doctor` says about a database: created or not, and its migrations."""

    exists: bool  # False: a SQLite file not created yet (the first `dripper run` creates it)
    applied: int  # migrations recorded as applied
    pending: tuple[str, ...]  # migrations this dripper brings that are not applied
    unknown: tuple[str, ...]  # applied migrations this dripper does not know (a newer one ran)
    empty: bool  # no dripper table yet (migrated automatically on first use)


async def schema_status(url: str) -> SchemaStatus:
    """The database's migrations, read without changing anything (a missing SQLite file is not
    created). DripperError when it cannot be opened."""
    config = tortoise_config(url)
    (connection_config,) = config["connections"].values()
    file_path = connection_config["credentials"].get("file_path")
    is_file = file_path is not None and file_path != ":memory:"
    if is_file and not await asyncio.to_thread(Path(file_path).exists):
        directory = Path(file_path).parent
        if not directory.is_dir():
            raise DripperError(
                f"cannot open the database {redact_url(url)}: the directory {directory} does "
                "not exist; create it or fix database_url"
            )
        return SchemaStatus(False, 0, tuple(_known_migrations()), (), True)
    async with _connected(url) as client:
        executor = _executor(client)
        await executor.loader.build_graph()
        applied = [
            key
            for key in await executor.recorder.applied_migrations()
            if key.app_label == APP_LABEL
        ]
        return SchemaStatus(
            True,
            len(applied),
            tuple(await _pending_migrations(client)),
            tuple(await _unknown_applied(client)),
            await _is_empty(client),
        )


def _known_migrations() -> list[str]:
    """The names of every migration this dripper brings, in order (no database needed). Found
    without importing the package, which would load Tortoise's migration machinery."""
    import importlib.util
    import pkgutil

    spec = importlib.util.find_spec(MIGRATIONS_MODULE)
    places = spec.submodule_search_locations if spec is not None else None
    return sorted(
        module.name for module in pkgutil.iter_modules(places or []) if module.name[0].isdigit()
    )


@asynccontextmanager
async def _connected(url: str) -> AsyncIterator[BaseDBAsyncClient]:
    """A Tortoise context on `url` whose connection has been proven to work."""
    config = tortoise_config(url)
    await _prepare_sqlite_file(url, config)
    async with TortoiseContext() as ctx:
        try:
            await ctx.init(config=config)
        except ModuleNotFoundError as exc:
            if exc.name == "asyncpg":
                raise DripperError(
                    "PostgreSQL support needs asyncpg: pip install 'dripper[postgres]'"
                ) from None
            raise
        client = ctx.db()
        await _probe(client, url)
        yield client


async def _prepare_sqlite_file(url: str, config: dict[str, Any]) -> None:
    """Check the directory, and switch a new file to WAL before Tortoise connects to it.

    Switching to WAL needs an exclusive lock, and SQLite answers "database is locked" at once,
    without waiting for the busy timeout, when two processes switch a new file at the same
    moment. Tortoise 1.1 cannot recover from a failed connect (the client keeps its lock held
    and hangs on the next query), so the switch happens here, retried, with plain sqlite3.
    """
    (connection_config,) = config["connections"].values()
    file_path = connection_config["credentials"].get("file_path")
    if file_path is None or file_path == ":memory:":
        return
    directory = Path(file_path).parent
    if not directory.is_dir():
        raise DripperError(
            f"cannot open the database {redact_url(url)}: the directory {directory} does not "
            "exist; create it or fix database_url"
        )
    try:
        await asyncio.to_thread(_switch_to_wal, file_path)
    except sqlite3.Error as exc:
        raise _cannot_open(url, exc) from None


def _switch_to_wal(file_path: str) -> None:
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            with contextlib.closing(sqlite3.connect(file_path, timeout=5)) as raw:
                raw.execute("PRAGMA journal_mode=WAL").fetchall()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(0.05)


async def _probe(client: BaseDBAsyncClient, url: str) -> None:
    """Connect now, so that a wrong URL fails here with a clear message and not mid-command."""
    try:
        await client.execute_query("SELECT 1")
    except _connection_errors() as exc:
        raise _cannot_open(url, exc) from None


def _cannot_open(url: str, exc: BaseException) -> DripperError:
    detail = str(exc) or type(exc).__name__
    password = urlsplit(url).password
    if password:
        detail = detail.replace(password, "***")
    if urlsplit(url).scheme.lower() in SQLITE_SCHEMES:
        hint = "check database_url and that the file is a dripper database you may write"
    else:
        hint = "check that the server is running, the database exists and database_url is right"
    return DripperError(f"cannot open the database {redact_url(url)}: {detail}; {hint}")


def _connection_errors() -> tuple[type[BaseException], ...]:
    errors: tuple[type[BaseException], ...] = (
        OSError,
        sqlite3.DatabaseError,  # e.g. "file is not a database", raised untranslated on connect
        TimeoutError,
        DBConnectionError,
        OperationalError,
    )
    try:
        import asyncpg  # type: ignore[import-untyped]
    except ModuleNotFoundError:
        return errors
    return (*errors, asyncpg.PostgresError, asyncpg.InterfaceError)


def _executor(client: BaseDBAsyncClient) -> Any:
    from tortoise.migrations.executor import MigrationExecutor

    app = {
        "models": [MODELS_MODULE],
        "migrations": MIGRATIONS_MODULE,
        "default_connection": client.connection_name,
    }
    return MigrationExecutor(client, {APP_LABEL: app})


async def _up_to_date(client: BaseDBAsyncClient) -> bool:
    """True when the database records exactly the migrations this dripper brings: one query,
    where Tortoise's executor imports every migration and replays them into a model state
    (about a tenth of a second, which `dripper status` would otherwise pay on every run)."""
    try:
        _, rows = await client.execute_query(
            f"SELECT name FROM {MIGRATIONS_TABLE} WHERE app = '{APP_LABEL}'"
        )
    except Exception:  # no record table yet, or one this dripper cannot read: ask Tortoise
        return False
    return sorted(str(row["name"]) for row in rows) == _known_migrations()


async def _pending_migrations(client: BaseDBAsyncClient) -> list[str]:
    steps = await _executor(client).plan()
    return [step.migration.name for step in steps if not step.backward]


async def _unknown_applied(client: BaseDBAsyncClient) -> list[str]:
    executor = _executor(client)
    await executor.loader.build_graph()
    applied = await executor.recorder.applied_migrations()
    known = executor.loader.graph.nodes
    return [key.name for key in applied if key.app_label == APP_LABEL and key not in known]


async def _is_empty(client: BaseDBAsyncClient) -> bool:
    """True when the database holds no table but, possibly, Tortoise's migration record."""
    if client.capabilities.dialect == "sqlite":
        query = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    else:
        query = "SELECT tablename AS name FROM pg_tables WHERE schemaname = current_schema()"
    _, rows = await client.execute_query(query)
    return all(row["name"] == MIGRATIONS_TABLE for row in rows)


async def _apply_pending(
    client: BaseDBAsyncClient, *, progress: ProgressCallback | None = None
) -> list[str]:
    applied: list[str] = []

    def record(event: str, app_label: str, name: str) -> None:
        if event == "apply_done":
            applied.append(name)
        if progress is not None:
            progress(event, app_label, name)

    await _executor(client).migrate(progress=record, direction="forward")
    return applied


@asynccontextmanager
async def _migration_lock(client: BaseDBAsyncClient, url: str) -> AsyncIterator[None]:
    """Hold a cross-process lock so that two dripper processes never migrate at the same time."""
    if client.capabilities.dialect == "postgres":
        # A session lock on one pooled connection; the migrations run on other pool connections.
        async with client.acquire_connection() as session:
            await session.execute("SELECT pg_advisory_lock($1)", POSTGRES_MIGRATION_LOCK_KEY)
            try:
                yield
            finally:
                await session.execute("SELECT pg_advisory_unlock($1)", POSTGRES_MIGRATION_LOCK_KEY)
        return
    (connection_config,) = tortoise_config(url)["connections"].values()
    file_path = connection_config["credentials"]["file_path"]
    if file_path == ":memory:":
        yield
        return
    # A side file: locking the database file itself would interfere with SQLite's own locks.
    async with _file_lock(Path(f"{file_path}-migrate.lock")):
        yield


@asynccontextmanager
async def _file_lock(path: Path) -> AsyncIterator[None]:
    try:
        import fcntl
    except ModuleNotFoundError:  # Windows: no cross-process lock; migrate from one process
        yield
        return
    with path.open("a") as handle:
        await asyncio.to_thread(fcntl.flock, handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
