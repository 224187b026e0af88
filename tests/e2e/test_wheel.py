"""A real install: build the wheel, install it with its dependencies into a fresh venv, and run
`dripper demo --headless` and `dripper init` + `dripper check` from it, far from the checkout.

This is how a trainer installs dripper (`pipx install dripper`, `pip install dripper-*.whl`):
nothing may depend on files that only a checkout has.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(*args: str | Path, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DRIPPER_", "PYTHON"))}
    result = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"{args}: {result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    _run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        dist,
        REPO,
        cwd=dist,
    )
    [built] = dist.glob("dripper-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `bin/` of a fresh venv with the wheel and its dependencies installed."""
    root = tmp_path_factory.mktemp("fresh") / "venv"
    # This pip installs into the venv (--python): ensurepip would take 3 s to put a copy there.
    venv.create(root, with_pip=False)
    _run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        root / "bin" / "python",
        "install",
        "-q",
        wheel,
        cwd=root,
        timeout=600,
    )
    return root / "bin"


def test_the_wheel_holds_the_examples_the_schema_and_the_starter(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in (
        "dripper/examples/excel-essentials.yaml",
        "dripper/examples/onboarding-week.yaml",
        "dripper/examples/presenting-with-impact.yaml",
        "dripper/examples/curriculum.schema.json",
        "dripper/starter/my-course.yaml",
        "dripper/migrations/0001_initial.py",
        "tui/styles/dripper.tcss",
    ):
        assert expected in names, expected


def test_the_installed_wheel_plays_the_demo_far_from_the_checkout(
    installed: Path, tmp_path: Path
) -> None:
    result = _run(installed / "dripper", "demo", "--headless", "--imap", "embedded", cwd=tmp_path)
    assert "Playing 44 days of drip from " in result.stderr
    assert "/site-packages/dripper/examples" in result.stderr  # the wheel's, not a checkout's
    shown = result.stdout
    assert "Deliveries (channel, state, count):" in shown
    assert "telegram  sent" in shown and "email     sent" in shown
    assert "Reachability at the end:" in shown
    assert "Liam   telegram unreachable" in shown
    assert "arrived in" in shown
    assert "IMAP mailbox on the embedded pure-Python IMAP server" in shown
    assert ", 2 by email)" in shown  # the out-of-office and the bare answers are not among them
    assert "by email with '1': recorded, kept out of the inbox, and answered in the thread" in shown
    assert "José wrote back to" in shown and "filed in the inbox under" in shown
    assert "Ana's out-of-office auto-reply was stored, recognised" in shown
    assert "kept out of the inbox" in shown


def test_the_installed_wheel_inits_a_project_that_checks(installed: Path, tmp_path: Path) -> None:
    _run(installed / "dripper", "init", cwd=tmp_path)
    checked = _run(installed / "dripper", "check", cwd=tmp_path)
    assert 'ok: my-course "My course — the weeks after"' in checked.stdout
