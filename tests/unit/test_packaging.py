"""What `pip install .` brings is enough: every third-party module dripper and tui import at
module level belongs to a main dependency, not only to the test or bench extras.

`dripper demo` once failed after the README's install command because its SMTP sink came only
with the test extra. Imports inside functions (asyncpg, APScheduler) are optional on purpose.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


# Distributions that are part of a declared one and pinned by it.
PART_OF = {"pydantic-core": "pydantic"}


def _main_dependencies() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = {re.split(r"[<>=!~;\[ ]", spec, maxsplit=1)[0] for spec in project["dependencies"]}
    declared = {_normal(name) for name in names}
    return declared | {part for part, whole in PART_OF.items() if whole in declared}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _module_level_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in tree.body:  # module level only; `if TYPE_CHECKING:` blocks are skipped too
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_every_module_level_import_is_a_main_dependency() -> None:
    distributions = packages_distributions()
    declared = _main_dependencies()
    missing = []
    for package in ("dripper", "tui"):
        for path in (ROOT / package).rglob("*.py"):
            for module in sorted(_module_level_imports(path)):
                if module in ("dripper", "tui", "__future__") or module in sys.stdlib_module_names:
                    continue
                owners = {_normal(name) for name in distributions.get(module, [module])}
                if not owners & declared:
                    missing.append(f"{path.relative_to(ROOT)}: {module} ({', '.join(owners)})")
    assert missing == []
