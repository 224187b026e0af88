"""Dialect helpers for dripper's raw SQL: placeholders, timestamps, JSON, row values, RETURNING.

Tortoise stores SQLite timestamps as text in `str(datetime)` form (UTC, "+00:00"), which sorts
chronologically; every timestamp written here uses that same form so comparisons stay correct.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from dripper.db import connection

_PLACEHOLDER = re.compile(r"\?")


async def returning(
    conn: BaseDBAsyncClient, sql: str, params: Sequence[Any] = ()
) -> list[dict[str, Any]]:
    """The rows of an `INSERT/UPDATE ... RETURNING` statement written with `?` placeholders.

    The one way to count what such a statement wrote: Tortoise's asyncpg client drops the rows
    of RETURNING in `execute_query`, and reads the count of an INSERT from the wrong field of
    PostgreSQL's status ("INSERT 0 1"), so it always says 0. `execute_query_dict` gives both
    backends' rows.
    """
    return list(await conn.execute_query_dict(q(conn, sql), list(params)))


async def select(sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """The rows of a query written with `?` placeholders, on the current connection."""
    conn = connection()
    return list(await conn.execute_query_dict(q(conn, sql), list(params)))


def is_postgres(conn: BaseDBAsyncClient) -> bool:
    return conn.capabilities.dialect == "postgres"


def q(conn: BaseDBAsyncClient, sql: str) -> str:
    """Write SQL with `?` placeholders; PostgreSQL gets $1, $2, ..."""
    if not is_postgres(conn):
        return sql
    counter = iter(range(1, 10_000))
    return _PLACEHOLDER.sub(lambda _: f"${next(counter)}", sql)


def ts(conn: BaseDBAsyncClient, moment: datetime | None) -> Any:
    """A timestamp parameter in the form the backend stores."""
    if moment is None:
        return None
    utc = moment.astimezone(UTC)
    return utc if is_postgres(conn) else str(utc)


def as_datetime(value: Any) -> datetime | None:
    """A timestamp read back from either backend as an aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def as_json(value: Any) -> Any:
    if isinstance(value, str | bytes):
        return json.loads(value)
    return value


def json_param(conn: BaseDBAsyncClient, value: Any) -> str:
    """JSON for a JSON column; U+0000 (which PostgreSQL's jsonb refuses) becomes U+FFFD."""
    return json.dumps(_no_nul(value), separators=(",", ":"), ensure_ascii=False)


def _no_nul(value: Any) -> Any:
    if isinstance(value, str):
        return text(value)
    if isinstance(value, dict):
        return {text(str(key)): _no_nul(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_no_nul(item) for item in value]
    return value


def text(value: str) -> str:
    """Text for a text column: PostgreSQL cannot store U+0000, so it becomes U+FFFD (on both
    backends, so they tell the same story). Inbound raw items keep the original bytes."""
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def in_list(conn: BaseDBAsyncClient, count: int) -> str:
    """`(?, ?, ?)` for an IN clause of `count` values."""
    return "(" + ", ".join("?" * count) + ")"


def among(column: str, values: Sequence[Any] | None) -> tuple[str, list[Any]]:
    """` AND column IN (?, ...)` and its values: no condition for None, none true for []."""
    if values is None:
        return "", []
    if not values:
        return " AND 1 = 0", []
    return f" AND {column} IN ({', '.join('?' * len(values))})", list(values)


def true(conn: BaseDBAsyncClient) -> Any:
    return True if is_postgres(conn) else 1


def like_escape(text: str) -> str:
    """`text` for a LIKE pattern written with `ESCAPE '\\'`: % and _ match only themselves."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
