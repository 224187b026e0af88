"""File names learners choose never lead out of the media folder and keep their extension."""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from dripper.media.folder import MediaFolder, display_name, safe_name

SAFE = re.compile(r"[A-Za-z0-9._-]+")


def test_names_keep_their_extension_in_any_script() -> None:
    assert safe_name("отчёт.pdf") == "file.pdf"
    assert safe_name("写真.jpg") == "file.jpg"
    assert safe_name("Q3 report (final).xlsx") == "Q3_report_final.xlsx"
    assert safe_name("../../etc/passwd") == "passwd"
    assert safe_name("C:\\\\Users\\\\ann\\\\notes.txt") == "notes.txt"
    assert display_name({"kind": "voice", "file_id": "x"}) == "voice.ogg"
    assert display_name({"filename": "(unnamed)", "mime_type": "application/pdf"}) == "file.pdf"


@given(st.text(max_size=300))
def test_any_name_is_one_safe_path_part(name: str) -> None:
    cleaned = safe_name(name)
    assert SAFE.fullmatch(cleaned), cleaned
    assert len(cleaned) <= 91 and cleaned not in (".", "..")


@given(st.text(max_size=120), st.integers(0, 10**9), st.integers(0, 10**9))
def test_every_stored_path_resolves_inside_the_folder(
    name: str, learner: int, message: int
) -> None:
    folder = MediaFolder(Path("/srv/dripper/media"))
    relative = folder.relative_path(learner, message, 0, {"file_name": name})
    target = folder.path(relative)
    assert target.parent == Path("/srv/dripper/media").resolve() / f"learner-{learner}"
