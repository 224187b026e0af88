"""The curriculum language: YAML files that define a post-course drip, validated with positions."""

from dripper.curriculum.checks import (
    CheckResult,
    CurriculumError,
    check_file,
    check_paths,
    load_curriculum,
    summary,
)
from dripper.curriculum.model import (
    Checkin,
    Curriculum,
    Question,
    Quiz,
    SendWindowSpec,
    StepBase,
    Tip,
    json_schema,
)
from dripper.curriculum.source import Problem

__all__ = [
    "CheckResult",
    "Checkin",
    "Curriculum",
    "CurriculumError",
    "Problem",
    "Question",
    "Quiz",
    "SendWindowSpec",
    "StepBase",
    "Tip",
    "check_file",
    "check_paths",
    "json_schema",
    "load_curriculum",
    "summary",
]
