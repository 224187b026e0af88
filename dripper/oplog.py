"""Operator log lines: one event with its fields, as key=value text or as JSON.

    oplog.event(log, "delivery", id=17, learner=4, step="tip-1", state="sent", latency_ms=84)

gives `delivery id=17 learner=4 step=tip-1 state=sent latency_ms=84` in the text format and
`{"msg": "delivery", "id": 17, ...}` with `--log-format json` (dripper.engine.logs). Fields are
ids, states, counts and timings: never a message's text, so INFO lines carry no learner's
words nor the drip's content.
"""

from __future__ import annotations

import logging
from typing import Any

FIELDS = "dripper_fields"  # the LogRecord attribute the fields travel in


def event(logger: logging.Logger, what: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log `what` with `fields` (None values are left out)."""
    if logger.isEnabledFor(level):
        kept = {key: value for key, value in fields.items() if value is not None}
        logger.log(level, what, extra={FIELDS: kept})


def milliseconds(seconds: float) -> int:
    return round(seconds * 1000)
