"""Curriculum versions in the database: store a checked file once per content hash, load it back.

Enrollments pin the version they run, so editing a YAML file changes nothing by itself; only
`dripper apply` moves enrollments to a new version.
"""

from __future__ import annotations

import asyncio

from tortoise.backends.base.client import BaseDBAsyncClient

from dripper.curriculum import CheckResult, Curriculum
from dripper.curriculum.checks import check_source
from dripper.curriculum.source import parse_source
from dripper.db import database_key
from dripper.errors import DripperError
from dripper.models import CurriculumVersion

# Stored versions never change: parsed once per process, per database.
_parsed: dict[tuple[str, int], Curriculum] = {}
# Loads in progress. A worker that claims a batch starts hundreds of sends at once, all needing
# the same version: one load and one parse for them all, not one each (each costs milliseconds
# of CPU and a pooled connection, and together they would starve the worker for seconds).
_loading: dict[tuple[str, int], asyncio.Future[Curriculum]] = {}


async def store_version(result: CheckResult) -> CurriculumVersion:
    """The row for this exact content, created on first use."""
    curriculum = result.curriculum
    assert curriculum is not None
    version, _ = await CurriculumVersion.get_or_create(
        key=curriculum.id,
        content_hash=result.content_hash,
        defaults={
            "title": curriculum.title,
            "source": result.source_text,
            "source_path": result.path,
        },
    )
    _parsed[(database_key(), version.id)] = curriculum
    return version


async def curriculum_of(version_id: int, using: BaseDBAsyncClient | None = None) -> Curriculum:
    """The parsed curriculum of a stored version (cached for the life of the process).

    Inside a transaction pass it as `using`: on SQLite another query would wait for it forever.
    """
    key = (database_key(), version_id)
    cached = _parsed.get(key)
    if cached is not None:
        return cached
    if using is not None:
        # Inside a transaction: never wait for a load that may need the transaction's lock.
        return await _load(version_id, using)
    loading = _loading.get(key)
    if loading is None:
        loading = asyncio.ensure_future(_load(version_id, None))
        _loading[key] = loading
        loading.add_done_callback(lambda _: _loading.pop(key, None))
    return await asyncio.shield(loading)


async def _load(version_id: int, using: BaseDBAsyncClient | None) -> Curriculum:
    version = await CurriculumVersion.get(id=version_id, using_db=using)
    result = check_source(parse_source(version.source, version.source_path or f"v{version_id}"))
    if result.curriculum is None:
        # Stored versions passed check when stored; a newer dripper may be stricter.
        problems = "; ".join(str(p) for p in result.problems[:3])
        raise DripperError(f"stored curriculum version {version_id} no longer loads: {problems}")
    _parsed[(database_key(), version_id)] = result.curriculum
    return result.curriculum
