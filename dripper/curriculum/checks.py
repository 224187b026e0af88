"""Validate a curriculum file and report EVERY problem at its file:line:col.

Two passes. Pydantic checks structure and field values for the whole document at once; each of
its errors is translated into a plain sentence at the position of the offending key or value.
Then the rules that span fields run on every step that is well-formed on its own: duplicate ids,
quiz answers among the options, template variables, and Telegram's limits after rendering.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails
from ruamel.yaml.scalarstring import FoldedScalarString, LiteralScalarString

from dripper.content.render import (
    TELEGRAM_CAPTION_LIMIT,
    TELEGRAM_TEXT_LIMIT,
    telegram_html,
    visible_length,
)
from dripper.curriculum import templates
from dripper.curriculum.model import (
    MAX_BUTTONS,
    MAX_OPTION_LENGTH,
    MAX_OPTIONS,
    STEP_KINDS,
    Checkin,
    Curriculum,
    Link,
    Quiz,
    SendWindowSpec,
    Step,
    StepBase,
    Tip,
    is_identifier,
)
from dripper.curriculum.source import Problem, Source, SourceError, read_source
from dripper.errors import DripperError
from dripper.hints import did_you_mean
from dripper.schedule.slots import closed_by_skip_dates, window_ever_opens

_STEP_ADAPTER: TypeAdapter[Any] = TypeAdapter(Step)
_KINDS = ", ".join(STEP_KINDS)
_TEMPLATE_FIELDS = ("subject", "text", "reminder_text", "explanation")
_PATTERN_HINTS = {
    "id": "use lowercase letters, digits, - and _, starting with a letter or digit",
    "language": "use a language code such as en, de or pt-BR",
    "url": "use a full http:// or https:// address",
    "image": "use a full http:// or https:// image address",
}


@dataclass
class CheckResult:
    """The outcome of checking one file."""

    path: str
    curriculum: Curriculum | None
    problems: list[Problem] = field(default_factory=list)
    content_hash: str = ""
    source_text: str = ""

    @property
    def ok(self) -> bool:
        return self.curriculum is not None and not self.problems


class CurriculumError(DripperError):
    """A curriculum file has problems; `problems` holds every one of them."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


def load_curriculum(path: Path) -> Curriculum:
    """Load a curriculum that must be valid; raises CurriculumError listing every problem."""
    result = check_file(path)
    if result.curriculum is None or result.problems:
        raise CurriculumError(result.problems)
    return result.curriculum


def check_file(path: Path) -> CheckResult:
    try:
        source = read_source(path)
    except SourceError as exc:
        return CheckResult(str(path), None, [exc.problem])
    result = check_source(source)
    return result


def check_source(source: Source) -> CheckResult:
    digest = hashlib.sha256(source.text.encode("utf-8")).hexdigest()
    result = CheckResult(source.path, None, content_hash=digest, source_text=source.text)
    if not isinstance(source.data, dict):
        found = "an empty file" if source.data is None else f"a {_describe(source.data)}"
        result.problems.append(
            source.problem(
                (), f"a curriculum must be a mapping with id, title and steps; found {found}"
            )
        )
        return result
    try:
        result.curriculum = Curriculum.model_validate(source.data)
    except ValidationError as exc:
        result.problems.extend(_translate(source, error) for error in exc.errors())
    result.problems.extend(_cross_field_problems(source))
    result.problems = sorted(set(result.problems))
    if result.problems:
        result.curriculum = None
    return result


# ---- pydantic errors as sentences -------------------------------------------------------------


def _quoted(name: str) -> str:
    return name if name.startswith("item ") else f"'{name}'"


def _describe(value: Any) -> str:
    if value is None:
        return "empty value"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, dict):
        return "mapping"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dt.date):
        return "date"
    return type(value).__name__


def _strip_tags(data: Any, loc: tuple[Any, ...]) -> list[str | int]:
    """Drop the discriminator tags pydantic inserts into locations ("steps", 0, "quiz", ...)."""
    path: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part not in node and node.get("kind") == part:
            continue
        if isinstance(node, dict) and isinstance(part, str) and part.startswith("function-"):
            continue
        path.append(part)
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            node = None
    return path


def _model_at(data: Any, path: list[str | int]) -> type[BaseModel] | None:
    """The model class that validates the mapping at `path` (for "did you mean" hints)."""
    model: type[BaseModel] | None = Curriculum
    node = data
    for index, part in enumerate(path):
        if isinstance(node, dict):
            node = node.get(part) if isinstance(part, str) else None
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return None
        if part == "send_window":
            model = SendWindowSpec
        elif part == "link":
            model = Link
        elif index >= 1 and path[index - 1] == "steps" and isinstance(part, int):
            kind = node.get("kind") if isinstance(node, dict) else None
            model = STEP_KINDS.get(kind, StepBase) if isinstance(kind, str) else StepBase
        elif isinstance(part, str):
            model = None
    return model


def _name(path: list[str | int]) -> str:
    """How to call the value at `path` in a message: its key, or "item N of 'key'"."""
    if not path:
        return ""
    if isinstance(path[-1], int):
        parent = f" of '{path[-2]}'" if len(path) > 1 else ""
        return f"item {path[-1] + 1}{parent}"
    return str(path[-1])


def _fields(model: type[BaseModel] | None) -> list[str]:
    return list(model.model_fields) if model else []


def _translate(source: Source, error: ErrorDetails) -> Problem:
    path = _strip_tags(source.data, tuple(error["loc"]))
    kind = error["type"]
    value = error.get("input")
    name = _name(path)
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return source.problem(path, f"missing required key '{name}'")
    if kind == "extra_forbidden":
        hint = did_you_mean(name, _fields(_model_at(source.data, path[:-1])))
        return source.problem(path, f"unknown key '{name}'{hint}", key=True)
    if kind == "union_tag_not_found":
        return source.problem(path, f"missing required key 'kind' (one of {_KINDS})")
    if kind == "union_tag_invalid":
        tag = str(ctx.get("tag", ""))
        return source.problem(
            [*path, "kind"],
            f"unknown step kind '{tag}'{did_you_mean(tag, STEP_KINDS)}; one of {_KINDS}",
        )
    if kind == "model_type" or kind == "model_attributes_type" or kind == "dict_type":
        return source.problem(path, f"{_quoted(name)} must be a mapping, not {_describe(value)}")
    if kind == "list_type":
        return source.problem(path, f"'{name}' must be a list, not {_describe(value)}")
    if kind == "string_type":
        return source.problem(path, f"'{name}' must be text, not {_describe(value)}")
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return source.problem(path, f"'{name}' must be a whole number, not {_describe(value)}")
    if kind in ("bool_type", "bool_parsing"):
        return source.problem(path, f"'{name}' must be true or false")
    if kind in (
        "date_type",
        "date_parsing",
        "date_from_datetime_parsing",
        "date_from_datetime_inexact",
    ):
        return source.problem(path, f"cannot read date {value!r}; write YYYY-MM-DD")
    if kind == "literal_error":
        expected = str(ctx.get("expected", ""))
        options = [opt.strip(" '") for opt in expected.replace(" or ", ",").split(",")]
        hint = did_you_mean(str(value), options) if isinstance(value, str) else ""
        return source.problem(path, f"'{name}' must be {expected}, not {value!r}{hint}")
    if kind == "string_pattern_mismatch":
        owner = name if not isinstance(path[-1], int) else str(path[-2])
        advice = _PATTERN_HINTS.get(owner, f"expected the pattern {ctx.get('pattern')}")
        return source.problem(path, f"invalid {owner} {value!r}: {advice}")
    if kind == "string_too_short":
        return source.problem(path, f"'{name}' must not be empty")
    if kind == "too_short":
        least = ctx.get("min_length", 1)
        return source.problem(
            path, f"'{name}' needs at least {least} item{'s' if least != 1 else ''}"
        )
    if kind in ("greater_than_equal", "less_than_equal"):
        return source.problem(path, f"'{name}' {error['msg'].lower()}")
    if kind == "value_error":
        message = str(ctx.get("error", error["msg"]))
        owner = str(path[-2]) if len(path) > 1 and isinstance(path[-1], int) else name
        return source.problem(path, f"{owner}: {message}" if owner else message)
    return source.problem(path, f"{name}: {error['msg']}" if name else error["msg"])


# ---- rules across fields ----------------------------------------------------------------------


def _window_problems(source: Source) -> Iterator[Problem]:
    raw = source.data.get("send_window", {})
    try:
        window = SendWindowSpec.model_validate(raw).to_window()
    except ValidationError:
        return  # reported by the structural pass
    if not window_ever_opens(window):
        quiet = ", ".join(str(q) for q in window.quiet_hours)
        yield source.problem(
            ["send_window", "send_at"],
            f"send_at {window.send_at!r} never fires outside the quiet hours ({quiet}); "
            "nothing could ever be sent",
        )
        return
    closed_from = closed_by_skip_dates(window)
    if closed_from is not None:
        yield source.problem(
            ["send_window", "skip_dates"],
            f"skip_dates keep the send window closed for two years or more from {closed_from}: "
            "a step falling due then could never be sent; shorten the range",
        )


def _cross_field_problems(source: Source) -> Iterator[Problem]:
    data: dict[str, Any] = source.data
    yield from _window_problems(source)
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list):
        return
    attributes = _declared_attributes(data.get("attributes"))
    context = templates.sample_context(
        str(data.get("id", "curriculum")), str(data.get("title", "Course")), attributes
    )
    first_seen: dict[str, int] = {}
    for index, raw in enumerate(raw_steps):
        if not isinstance(raw, dict):
            continue
        step_id = raw.get("id")
        if isinstance(step_id, str):
            if step_id in first_seen:
                line, _ = source.locate(["steps", first_seen[step_id], "id"])
                yield source.problem(
                    ["steps", index, "id"],
                    f"duplicate step id '{step_id}' (first used on line {line})",
                )
            else:
                first_seen[step_id] = index
        template_problems = list(_template_problems(source, ["steps", index], raw, attributes))
        yield from template_problems
        try:
            step = _STEP_ADAPTER.validate_python(raw)
        except ValidationError:
            continue  # already reported by the structural pass
        yield from _step_problems(
            source, ["steps", index], step, context, render=not template_problems
        )


def _declared_attributes(raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict):
        return {}
    return {str(k): str(v) for k, v in raw.items() if isinstance(k, str) and is_identifier(k)}


def _step_problems(
    source: Source, at: list[str | int], step: StepBase, context: Mapping[str, Any], *, render: bool
) -> Iterator[Problem]:
    if isinstance(step, Quiz):
        yield from _quiz_problems(source, at, step)
    if isinstance(step, Checkin):
        yield from _choices_problems(source, [*at, "buttons"], step.buttons, MAX_BUTTONS, "buttons")
    if getattr(step, "max_reminders", 1) > 1 and getattr(step, "remind_after", None) is None:
        yield source.problem([*at, "max_reminders"], "max_reminders needs remind_after")
    if getattr(step, "reminder_text", None) and getattr(step, "remind_after", None) is None:
        yield source.problem([*at, "reminder_text"], "reminder_text needs remind_after")
    if render:
        yield from _length_problems(source, at, step, context)


def _template_texts(raw: Mapping[str, Any]) -> Iterator[tuple[list[str | int], str]]:
    """Every text of a raw step that is a template: (location inside the step, text)."""
    for name in _TEMPLATE_FIELDS:
        value = raw.get(name)
        if isinstance(value, str):
            yield [name], value
    link = raw.get("link")
    if isinstance(link, dict) and isinstance(link.get("label"), str):
        yield ["link", "label"], link["label"]


def _template_problems(
    source: Source, at: list[str | int], raw: Mapping[str, Any], attributes: Mapping[str, str]
) -> Iterator[Problem]:
    for sub, text in _template_texts(raw):
        for issue in templates.check_template(text, attributes):
            yield _template_position(source, [*at, *sub], issue)


def _template_position(
    source: Source, loc: list[str | int], issue: templates.TemplateIssue
) -> Problem:
    """Map a line inside a template to the YAML file: block scalars start on the next line."""
    line, col = source.locate(loc)
    node: Any = source.tree
    for part in loc:
        node = node[part]
    if isinstance(node, LiteralScalarString | FoldedScalarString):
        line += issue.line
        lines = source.text.splitlines()
        if line - 1 < len(lines):
            text_line = lines[line - 1]
            col = len(text_line) - len(text_line.lstrip()) + 1
    else:
        line += issue.line - 1
    return Problem(source.path, line, col, issue.message)


def _quiz_problems(source: Source, at: list[str | int], quiz: Quiz) -> Iterator[Problem]:
    yield from _choices_problems(source, [*at, "options"], quiz.options, MAX_OPTIONS, "options")
    correct = quiz.correct_options
    if not correct:
        yield source.problem([*at, "correct"], "'correct' needs at least one option")
    for index, answer in enumerate(correct):
        loc = [*at, "correct"] if isinstance(quiz.correct, str) else [*at, "correct", index]
        if answer not in quiz.options:
            hint = did_you_mean(answer, quiz.options)
            yield source.problem(loc, f"correct answer {answer!r} is not one of the options{hint}")
    if len(correct) > 1 and not quiz.multiple:
        yield source.problem(
            [*at, "correct"], "several correct answers need `multiple: true` (or give one answer)"
        )
    if quiz.retire_after > 1 and quiz.reask_after is None:
        yield source.problem([*at, "retire_after"], "retire_after needs reask_after")


def _choices_problems(
    source: Source, loc: list[str | int], choices: list[str], most: int, what: str
) -> Iterator[Problem]:
    if len(choices) > most:
        yield source.problem(
            loc, f"at most {most} {what} fit a Telegram keyboard; found {len(choices)}"
        )
    seen: set[str] = set()
    for index, choice in enumerate(choices):
        if choice in seen:
            yield source.problem([*loc, index], f"duplicate {what[:-1]} {choice!r}")
        seen.add(choice)
        if "{{" in choice or "{%" in choice:
            # Answers are matched, shown and counted by their exact text on every channel.
            yield source.problem(
                [*loc, index], f"{what[:-1]} text is shown as written: templates are not allowed"
            )
        if len(choice) > MAX_OPTION_LENGTH:
            yield source.problem(
                [*loc, index],
                f"{what[:-1]} is {len(choice)} characters; a button fits {MAX_OPTION_LENGTH}",
            )


def _rendered_length(text: str, context: Mapping[str, Any]) -> int | None:
    rendered, _error = templates.safe_render(text, context)
    return None if rendered is None else visible_length(telegram_html(rendered))


def _length_problems(
    source: Source, at: list[str | int], step: StepBase, context: Mapping[str, Any]
) -> Iterator[Problem]:
    for sub, text in _template_texts(step.model_dump(exclude_none=True)):
        _rendered, error = templates.safe_render(text, context)
        if error:
            yield source.problem([*at, *sub], error)
    body = _rendered_length(step.text, context)
    if body is None:
        return
    extra = 0
    if isinstance(step, Tip) and step.link:
        extra = len(step.link.label or step.link.url) + 2
    if isinstance(step, Quiz) and step.explanation:
        extra = (_rendered_length(step.explanation, context) or 0) + 2
    is_caption = isinstance(step, Tip) and step.image is not None
    limit, what = (
        (TELEGRAM_CAPTION_LIMIT, "an image caption")
        if is_caption
        else (TELEGRAM_TEXT_LIMIT, "a message")
    )
    if body + extra > limit:
        shows_explanation = isinstance(step, Quiz) and step.explanation
        detail = " with the explanation shown after the answer" if shows_explanation else ""
        yield source.problem(
            [*at, "text"],
            f"text is {body + extra} characters after rendering{detail}; "
            f"Telegram allows {limit} in {what}",
        )
    reminder = getattr(step, "reminder_text", None)
    if reminder:
        length = _rendered_length(reminder, context) or 0
        if length > TELEGRAM_TEXT_LIMIT:
            yield source.problem(
                [*at, "reminder_text"],
                f"reminder_text is {length} characters after rendering; Telegram allows "
                f"{TELEGRAM_TEXT_LIMIT}",
            )


# ---- folders ----------------------------------------------------------------------------------


def discover(paths: Iterable[Path]) -> tuple[list[Path], list[Problem]]:
    """Expand folders into their *.yaml / *.yml files, sorted; report paths that do not exist."""
    files: list[Path] = []
    problems: list[Problem] = []
    for path in paths:
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()
            )
            if not found:
                problems.append(Problem(str(path), 1, 1, "no .yaml or .yml files in this folder"))
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            problems.append(Problem(str(path), 1, 1, "no such file or folder"))
    return files, problems


def check_paths(paths: Iterable[Path]) -> tuple[list[CheckResult], list[Problem]]:
    """Check every file; also report a curriculum id used by two files."""
    files, problems = discover(paths)
    results = [check_file(path) for path in files]
    owners: dict[str, CheckResult] = {}
    for result in results:
        if result.curriculum is None:
            continue
        key = result.curriculum.id
        if key in owners:
            source = read_source(Path(result.path))
            problems.append(
                source.problem(
                    ["id"], f"curriculum id '{key}' is already used by {owners[key].path}"
                )
            )
        else:
            owners[key] = result
    return results, problems


def summary(result: CheckResult) -> str:
    """One line describing a valid curriculum."""
    curriculum = result.curriculum
    assert curriculum is not None
    counts: dict[str, int] = {}
    for step in curriculum.steps:
        counts[step.kind] = counts.get(step.kind, 0) + 1
    names = {"tip": "tip", "question": "question", "quiz": "quiz", "checkin": "check-in"}
    parts = [
        f"{n} {names[k]}{'zes' if k == 'quiz' and n != 1 else ('s' if n != 1 else '')}"
        for k, n in counts.items()
    ]
    last = max(step.after.delta for step in curriculum.steps)
    span = f"{last.days // 7} weeks" if last.days >= 14 else f"{last.days} days"
    return (
        f'{result.path}: ok: {curriculum.id} "{curriculum.title}", {len(curriculum.steps)} steps '
        f"over {span} ({', '.join(parts)})"
    )


def find_curriculum(curricula_dir: Path, key: str) -> CheckResult:
    """The checked file in `curricula_dir` whose id is `key`; a clear error when absent or bad."""
    results, problems = check_paths([curricula_dir])
    for result in results:
        if result.curriculum is not None and result.curriculum.id == key:
            if result.problems:
                break
            return result
    bad = [p for r in results for p in r.problems] + problems
    for result in results:
        if result.curriculum is None and any(f"id: {key}" in line for line in _head(result)):
            lines = "\n".join(str(p) for p in result.problems)
            raise DripperError(f"curriculum '{key}' has problems; fix them first:\n{lines}")
    known = sorted(r.curriculum.id for r in results if r.curriculum is not None)
    hint = did_you_mean(key, known)
    detail = f" (known: {', '.join(known)})" if known and not hint else ""
    suffix = f"; {len(bad)} problem(s) in other files, see `dripper check`" if bad else ""
    raise DripperError(f"no curriculum with id '{key}' in {curricula_dir}{hint}{detail}{suffix}")


def _head(result: CheckResult) -> list[str]:
    return result.source_text.splitlines()[:20]
