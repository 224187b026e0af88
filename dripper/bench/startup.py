"""`dripper bench startup`: how long `dripper` takes to start, as whole processes.

Each command runs `repeat` times as a fresh process in a project `dripper init` wrote (a
SQLite database created and migrated by the first `status`, which is not counted); the figure
is the median wall time. `--help` forms measure start-up alone (the command's module loaded,
nothing run); `status` and `check` measure the whole small run, libraries included.

The processes may write bytecode (`PYTHONDONTWRITEBYTECODE` is dropped from their environment)
and each command runs once before it is timed: an installed dripper has its bytecode compiled
by pip, and without it every run would compile dripper's modules again (about 0.1 s here).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET_S = 0.3
COMMANDS: tuple[tuple[str, ...], ...] = (
    ("--help",),
    ("status", "--help"),
    ("check", "--help"),
    ("status",),
    ("check",),
)


def _dripper(args: tuple[str, ...], cwd: Path) -> float:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("DRIPPER_") and k != "PYTHONDONTWRITEBYTECODE"
    }
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "dripper", *args],
        cwd=cwd,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=120,
    )
    return time.perf_counter() - started


def bench_startup(repeat: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="dripper-startup-") as tmp:
        project = Path(tmp)
        _dripper(("init",), project)
        _dripper(("status",), project)  # creates and migrates the database: not counted
        figures: dict[str, Any] = {}
        for args in COMMANDS:
            _dripper(args, project)  # writes the bytecode a pip install would have compiled
            runs = [_dripper(args, project) for _ in range(repeat)]
            median = statistics.median(runs)
            figures[" ".join(args)] = {
                "median_s": round(median, 3),
                "runs_s": [round(run, 3) for run in runs],
                "within_target": median <= TARGET_S,
            }
    return {"bench": "startup", "repeat": repeat, "target_s": TARGET_S, "commands": figures}
