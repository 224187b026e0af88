"""The architecture contracts of pyproject.toml ([tool.importlinter]), checked by import-linter:
dripper never imports the dashboard or Textual; the pure packages need no database; channels
know nothing of receiving, the inbox or the engine; dashboard screens never import the app.

The second test shows the check can fail: the same contracts over a copy of the tree with one
forbidden import added must break, naming that import."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` with the pyproject.toml in `cwd`, on the packages found there first."""
    if not LINT_IMPORTS.exists():
        pytest.fail(f"{LINT_IMPORTS} is missing: install the test extra (pip install -e '.[test]')")
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(cwd)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_architecture_contracts_are_kept() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("dripper/curriculum/model.py", "import textual", "never imports the dashboard"),
        ("dripper/schedule/slots.py", "import dripper.store.sql", "pure packages need no"),
        ("dripper/channels/base.py", "import dripper.inbox", "channels only send"),
        ("tui/screens/help.py", "import tui.app", "screens, widgets and the session never"),
    ],
)
def test_a_forbidden_import_breaks_its_contract(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    for package in ("dripper", "tui"):
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(target.read_text(encoding="utf-8") + f"\n{line}  # noqa\n", encoding="utf-8")
    result = lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout
    assert "3 kept, 1 broken" in result.stdout
    broken = result.stdout.split("Broken contracts", 1)[1]
    assert contract in broken
    assert module.removesuffix(".py").replace("/", ".") in broken
