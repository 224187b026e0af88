"""Jinja2's sandbox with limits, so that no template can hang or exhaust `dripper check` or a
send.

Jinja's own sandbox stops a template from reaching Python internals, not from working for
ever: `{{ lipsum(1000000) }}`, two nested `range(100000)` loops, a recursive macro or
`"x" * 10**10` each hang or exhaust memory. Here, per render:

- every loop together runs at most `MAX_LOOPS` times (each `for` is wrapped, at compile time,
  in an iterator that counts), and `range` yields at most that many numbers;
- no string, list or output grows beyond `MAX_TEXT` characters or items: `+`, `*`, `~`, and
  the filters that can amplify (`join`, `replace`, `center`, `indent`, `wordwrap`) check the
  size before building; `%` formatting is refused, `**` takes small exponents only;
- `lipsum`, `cycler`, `joiner` and `namespace` are gone (no drip needs them);
- recursion deeper than Python allows is an error, not a crash.

Every limit raises `RenderLimit`, a jinja2 `SecurityError`, which the check reports at the
step's line and a send records as the delivery's failure reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sized
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, Template, nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

from dripper.errors import DripperError

MAX_LOOPS = 10_000
MAX_TEXT = 100_000
MAX_EXPONENT = 64


class RenderLimit(SecurityError, DripperError):
    """A template went past one of the sandbox's limits."""


@dataclass
class _Budget:
    loops: int = MAX_LOOPS


_budget: ContextVar[_Budget | None] = ContextVar("dripper_template_budget", default=None)


def _spend() -> None:
    budget = _budget.get()
    if budget is None:
        return
    budget.loops -= 1
    if budget.loops < 0:
        raise RenderLimit(f"the template loops more than {MAX_LOOPS:,} times")


def _looped(items: Iterable[Any]) -> Iterator[Any]:
    if isinstance(items, _Range):
        yield from items  # counts itself
        return
    for item in items:
        _spend()
        yield item


class _Range(Sized, Iterable[int]):
    """`range`, counted against the loop budget as it is iterated."""

    def __init__(self, *args: int) -> None:
        self._numbers = range(*args)
        if len(self._numbers) > MAX_LOOPS:
            raise RenderLimit(f"range() of {len(self._numbers):,} numbers (at most {MAX_LOOPS:,})")

    def __len__(self) -> int:
        return len(self._numbers)

    def __iter__(self) -> Iterator[int]:
        for number in self._numbers:
            _spend()
            yield number


def _size(value: Any) -> int:
    return len(value) if isinstance(value, str | list | tuple) else 0


def _fits(size: int, what: str) -> None:
    if size > MAX_TEXT:
        raise RenderLimit(f"{what} of {size:,} characters or items (at most {MAX_TEXT:,})")


def _concat(*parts: Any) -> str:
    texts = [str(part) for part in parts]
    _fits(sum(map(len, texts)), "a text")
    return "".join(texts)


class _Bounded(NodeTransformer):
    """Counts every loop's iterations and guards `~` (compile-time rewrite of the template)."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)  # changes node in place
        node.iter = nodes.Call(
            nodes.Name("__dripper_looped", "load"), [node.iter], [], None, None
        ).set_lineno(node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return nodes.Call(
            nodes.Name("__dripper_concat", "load"), list(node.nodes), [], None, None
        ).set_lineno(node.lineno)


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(undefined=StrictUndefined, **options)
        for name in ("lipsum", "cycler", "joiner", "namespace"):
            self.globals.pop(name, None)
        self.globals["range"] = _Range
        self.globals["__dripper_looped"] = _looped
        self.globals["__dripper_concat"] = _concat
        for name in ("join", "replace", "center", "indent", "wordwrap"):
            self.filters[name] = _guarded(name, self.filters[name])
        self.filters.pop("format", None)  # "%" formatting: see call_binop

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "%" and isinstance(left, str):
            raise RenderLimit("formatting strings with % is not allowed: use ~ to join texts")
        if operator == "*":
            count, other = (right, left) if isinstance(right, int) else (left, right)
            if isinstance(count, int) and _size(other):
                _fits(_size(other) * max(count, 0), "a repeated text")
        if operator == "+" and _size(left) and _size(right):
            _fits(_size(left) + _size(right), "a joined text")
        if operator == "**" and isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
            raise RenderLimit(f"exponent {right} (at most {MAX_EXPONENT})")
        return super().call_binop(context, operator, left, right)

    def _generate(
        self,
        source: nodes.Template,
        name: str | None,
        filename: str | None,
        defer_init: bool = False,
    ) -> str:
        # At compile time only: `parse` still gives the template as written (for the check).
        bounded = _Bounded().visit(source)
        assert isinstance(bounded, nodes.Template)
        return super()._generate(bounded, name, filename, defer_init)


def _guarded(name: str, original: Any) -> Any:
    """`original` (a built-in filter), refusing what would build more than MAX_TEXT."""
    passes = getattr(original, "jinja_pass_arg", None)  # it takes the environment first

    def guarded(*args: Any, **kwargs: Any) -> Any:
        head, (value, *options) = (args[:1], args[1:]) if passes is not None else ((), args)
        if name == "join" and not isinstance(value, str):
            value = list(_looped(value))
        _fits(_result_size(name, value, options, kwargs), f"the text of {name}()")
        return original(*head, value, *options, **kwargs)

    if passes is not None:
        guarded.jinja_pass_arg = passes  # type: ignore[attr-defined]
    return guarded


def _result_size(name: str, value: Any, options: list[Any], kwargs: Mapping[str, Any]) -> int:
    """How large the filter's result can be, at most (a generous bound)."""

    def option(index: int, key: str, default: Any) -> Any:
        return options[index] if len(options) > index else kwargs.get(key, default)

    if name == "join":
        items = [str(item) for item in value]
        separator = str(option(0, "d", ""))
        return sum(map(len, items)) + len(separator) * max(len(items) - 1, 0)
    text = str(value)
    if name == "replace":
        old, new = str(option(0, "old", "")), str(option(1, "new", ""))
        hits = text.count(old) if old else len(text) + 1
        return len(text) + hits * max(len(new) - len(old), 0)
    if name == "center":
        width = option(0, "width", 80)
        return max(len(text), width if isinstance(width, int) else 0)
    if name == "indent":
        width = option(0, "width", 4)
        step = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
        return len(text) + (text.count("\n") + 1) * max(step, 0)
    if name == "wordwrap":
        wrap = option(3, "wrapstring", None)
        return len(text) + (len(text) + 1) * len(str(wrap) if wrap is not None else "\n")
    return len(text)


def render_bounded(template: Template, context: Mapping[str, Any]) -> str:
    """Render within the limits; raises RenderLimit (or the template's own jinja2 error)."""
    token = _budget.set(_Budget())
    try:
        size = 0
        parts: list[str] = []
        for part in template.generate(context):
            size += len(part)
            _fits(size, "the rendered text")
            parts.append(part)
        return "".join(parts)
    except RecursionError:
        raise RenderLimit("the template recurses too deep (a macro calling itself?)") from None
    finally:
        _budget.reset(token)
