"""What ships with dripper besides its code: the example curricula (with the curriculum schema)
and the starter curriculum `dripper init` writes.

In a wheel the examples are package data (`dripper/examples/`, copied there from the
repository's `curricula/` at build time); in a checkout they are `curricula/` itself.
"""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent
STARTER_ID = "my-course"
SCHEMA_FILE_NAME = "curriculum.schema.json"


def example_curricula() -> Path:
    """The folder of the example curricula `dripper demo` plays."""
    packaged = _HERE / "examples"
    if packaged.is_dir():
        return packaged
    return _HERE.parent / "curricula"


def starter_curriculum() -> str:
    """The annotated curriculum `dripper init` writes, as YAML text."""
    return (_HERE / "starter" / f"{STARTER_ID}.yaml").read_text(encoding="utf-8")
