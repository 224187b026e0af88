"""Personalisation: Jinja2 in its sandbox, the variables a template may use, and their check.

Every value a template inserts is Markdown-escaped, so a learner called "*Bob*" stays "*Bob*"
and cannot bold, link or inject anything. Unknown variables are found statically (every branch,
not just the one a sample render takes), so they fail `dripper check`, not a send.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import Template, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError, TemplateError

from dripper.content.render import escape_markdown
from dripper.curriculum.sandbox import BoundedEnvironment, render_bounded
from dripper.hints import did_you_mean

LEARNER_FIELDS = ("first_name", "last_name", "name", "email", "timezone", "language")
COURSE_FIELDS = ("id", "title", "cohort", "end")
ROOT_NAMES = {"learner": LEARNER_FIELDS, "course": COURSE_FIELDS}

# Long but realistic values, so a text that fits with them fits for nearly everyone.
SAMPLE_LEARNER = {
    "first_name": "Maximiliane",
    "last_name": "Oberhauser-Lindqvist",
    "name": "Maximiliane Oberhauser-Lindqvist",
    "email": "maximiliane.oberhauser-lindqvist@example.com",
    "timezone": "America/Argentina/Buenos_Aires",
    "language": "en",
}


def _finalize(value: Any) -> Any:
    if isinstance(value, str):
        return escape_markdown(value)
    return value


@lru_cache(maxsize=1)
def environment() -> BoundedEnvironment:
    """Jinja's sandbox with limits (`dripper.curriculum.sandbox`)."""
    return BoundedEnvironment(finalize=_finalize, autoescape=False, keep_trailing_newline=False)


@dataclass(frozen=True)
class TemplateIssue:
    """A template problem; `line` is 1-based within the template text."""

    line: int
    message: str


def _attribute_uses(tree: nodes.Template) -> Iterator[tuple[str, str, int]]:
    """Yield (root, attribute, line) for `learner.x`, `learner["x"]`, `course.x`."""
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        target = getattr(node, "node", None)
        if not isinstance(target, nodes.Name) or target.name not in ROOT_NAMES:
            continue
        if isinstance(node, nodes.Getattr):
            yield target.name, node.attr, node.lineno
        elif isinstance(node, nodes.Getitem):
            key = node.arg
            if isinstance(key, nodes.Const) and isinstance(key.value, str):
                yield target.name, key.value, node.lineno


def _name_lines(tree: nodes.Template) -> dict[str, int]:
    lines: dict[str, int] = {}
    for node in tree.find_all(nodes.Name):
        lines.setdefault(node.name, node.lineno)
    return lines


def simple_variables(text: str) -> list[tuple[str, str]] | None:
    """The (root, attribute) outputs of a template made only of text and `{{ root.attr }}`
    expressions, in order; None for anything else (filters, tests, control structures)."""
    try:
        tree = environment().parse(text)
    except TemplateSyntaxError:
        return None
    uses: list[tuple[str, str]] = []
    for node in tree.body:
        if not isinstance(node, nodes.Output):
            return None
        for child in node.nodes:
            if isinstance(child, nodes.TemplateData):
                continue
            if (
                isinstance(child, nodes.Getattr)
                and isinstance(child.node, nodes.Name)
                and child.node.name in ROOT_NAMES
            ):
                pair = (child.node.name, child.attr)
                if pair not in uses:
                    uses.append(pair)
                continue
            return None
    return uses


def check_template(text: str, attributes: Mapping[str, str]) -> list[TemplateIssue]:
    """Every syntax error and unknown variable in one template."""
    try:
        tree = environment().parse(text)
    except TemplateSyntaxError as exc:
        return [TemplateIssue(exc.lineno or 1, f"template syntax error: {exc.message}")]
    except RecursionError:  # thousands of nested brackets
        return [TemplateIssue(1, "template nested too deep to read")]
    try:
        undeclared = meta.find_undeclared_variables(tree)
    except TemplateError as exc:  # e.g. an unknown filter, found at compile time
        return [TemplateIssue(getattr(exc, "lineno", None) or 1, f"template error: {exc}")]
    issues: list[TemplateIssue] = []
    lines = _name_lines(tree)
    for name in sorted(undeclared):
        if name not in ROOT_NAMES:
            hint = did_you_mean(name, ROOT_NAMES) or " (templates know learner and course)"
            issues.append(
                TemplateIssue(lines.get(name, 1), f"unknown template variable '{name}'{hint}")
            )
    allowed = {"learner": set(LEARNER_FIELDS) | set(attributes), "course": set(COURSE_FIELDS)}
    for root, attr, line in _attribute_uses(tree):
        if attr not in allowed[root]:
            hint = did_you_mean(attr, allowed[root])
            if root == "learner" and not hint:
                hint = "; declare custom learner attributes (CSV columns) under `attributes:`"
            issues.append(TemplateIssue(line, f"unknown template variable '{root}.{attr}'{hint}"))
    try:
        environment().from_string(tree)
    except TemplateError as exc:  # e.g. an unknown filter, found at compile time
        issues.append(TemplateIssue(getattr(exc, "lineno", None) or 1, f"template error: {exc}"))
    return issues


@lru_cache(maxsize=4096)
def _compiled(text: str) -> Template:
    return environment().from_string(text)


def render(text: str, context: Mapping[str, Any]) -> str:
    """Render one template with the sandbox; raises jinja2 errors on misuse.

    Compiled templates are cached by their text: the dispatcher renders the same few templates
    for every learner.
    """
    return render_bounded(_compiled(text), context)


def sample_context(curriculum_id: str, title: str, attributes: Mapping[str, str]) -> dict[str, Any]:
    """The context `dripper check` renders with: long sample values and declared examples."""
    learner = dict(SAMPLE_LEARNER)
    learner.update(attributes)
    course = {
        "id": curriculum_id,
        "title": title,
        "cohort": "Spring cohort 2026 (Berlin, group B)",
        "end": "Friday 4 December 2026",
    }
    return {"learner": learner, "course": course}


def safe_render(text: str, context: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(rendered, None) or (None, error message) without raising."""
    try:
        return render(text, context), None
    except SecurityError as exc:
        return None, f"template not allowed by the sandbox: {exc}"
    except TemplateError as exc:
        return None, f"template error: {exc}"
    except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as exc:
        return None, f"template error: {type(exc).__name__}: {exc}"
