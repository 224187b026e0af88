"""What one doctor check found."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Level(enum.Enum):
    OK = "ok"
    INFO = "info"  # not configured, and that is fine (e.g. no IMAP: no email replies)
    WARNING = "warning"
    PROBLEM = "problem"


@dataclass(frozen=True)
class Finding:
    check: str  # "database", "smtp", ...
    level: Level
    detail: str
    fix: str = ""

    @classmethod
    def ok(cls, check: str, detail: str) -> Finding:
        return cls(check, Level.OK, detail)

    @classmethod
    def info(cls, check: str, detail: str) -> Finding:
        return cls(check, Level.INFO, detail)

    @classmethod
    def warning(cls, check: str, detail: str, fix: str = "") -> Finding:
        return cls(check, Level.WARNING, detail, fix)

    @classmethod
    def problem(cls, check: str, detail: str, fix: str = "") -> Finding:
        return cls(check, Level.PROBLEM, detail, fix)

    def as_json(self) -> dict[str, str]:
        return {
            "check": self.check,
            "level": self.level.value,
            "detail": self.detail,
            "fix": self.fix,
        }
