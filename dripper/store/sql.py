"""Dialect helpers for the raw SQL of the outbox: placeholders, timestamps, JSON, row values.

Tortoise stores SQLite timestamps as text in `str(datetime)` form (UTC, "+00:00"), which sorts
chronologically; every timestamp written here uses that same form so comparisons stay correct.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

_PLACEHOLDER = re.compile(r"\?")


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
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def in_list(conn: BaseDBAsyncClient, count: int) -> str:
    """`(?, ?, ?)` for an IN clause of `count` values."""
    return "(" + ", ".join("?" * count) + ")"


def true(conn: BaseDBAsyncClient) -> Any:
    return True if is_postgres(conn) else 1


def like_escape(text: str) -> str:
    """`text` for a LIKE pattern written with `ESCAPE '\\'`: % and _ match only themselves."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
