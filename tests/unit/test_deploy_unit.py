"""The systemd unit in docs/deploy.md: runs `dripper run` as an unprivileged user after
`dripper doctor`, and systemd itself accepts it (systemd-analyze verify, with the executables
pointed at this checkout's)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "docs" / "deploy.md"


def unit() -> str:
    found = re.search(r"```ini\n(\[Unit\].*?)```", DEPLOY.read_text(encoding="utf-8"), re.S)
    assert found, "no [Unit] block in docs/deploy.md"
    return found[1]


def values(key: str) -> list[str]:
    return re.findall(rf"^{key}=(.*)$", unit(), re.MULTILINE)


def test_the_unit_runs_run_after_doctor_as_an_unprivileged_user() -> None:
    assert values("User") == ["dripper"] and values("Group") == ["dripper"]
    assert values("ExecStartPre") == ["/srv/dripper/.venv/bin/dripper doctor"]
    assert values("ExecStart") == ["/srv/dripper/.venv/bin/dripper run"]
    assert values("NoNewPrivileges") == ["yes"]
    assert values("KillSignal") == ["SIGTERM"]


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        print("SKIP: no systemd-analyze here (Debian's systemd package has it)")
        pytest.skip("no systemd-analyze")
    dripper = Path(sys.executable).parent / "dripper"
    assert dripper.exists()
    path = tmp_path / "dripper@1.service"
    path.write_text(unit().replace("/srv/dripper/.venv/bin/dripper", str(dripper)))
    done = subprocess.run([analyze, "verify", str(path)], capture_output=True, text=True)
    ours = [line for line in (done.stdout + done.stderr).splitlines() if path.name in line]
    assert done.returncode == 0 and ours == [], done.stdout + done.stderr
