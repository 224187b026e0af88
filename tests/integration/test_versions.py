"""Stored curriculum versions: loaded and parsed once per process, however many ask at once."""

from __future__ import annotations

import asyncio

import pytest

from dripper.curriculum.checks import CheckResult, check_source
from dripper.curriculum.source import parse_source
from dripper.store import curricula
from dripper.store.curricula import curriculum_of, store_version

SOURCE = """\
id: tiny
title: Tiny
steps:
  - id: hello
    after: 1d
    kind: tip
    text: "Hello {{ learner.first_name }}"
"""


async def test_a_batch_of_sends_parses_its_version_once(
    db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = check_source(parse_source(SOURCE, "tiny.yaml"))
    assert result.curriculum is not None
    version = await store_version(result)
    curricula._parsed.clear()  # a worker that did not store it: it must load it
    parsed = 0

    def counting_check(source: object) -> CheckResult:
        nonlocal parsed
        parsed += 1
        return check_source(source)  # type: ignore[arg-type]

    monkeypatch.setattr(curricula, "check_source", counting_check)
    loaded = await asyncio.gather(*(curriculum_of(version.id) for _ in range(200)))
    assert parsed == 1
    assert all(curriculum is loaded[0] for curriculum in loaded)
    assert loaded[0].id == "tiny"
