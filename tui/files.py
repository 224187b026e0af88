"""Opening the files learners sent: with the desktop's viewer when there is one, else a copy
saved where the trainer can reach it (a terminal over SSH has no viewer).

The files themselves are kept by `dripper run` in the media folder (dripper.media); this only
lists what a conversation's messages hold and hands one over.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dripper.inbox import EntryKind, ThreadEntry
from dripper.media.folder import MediaFolder, display_name, human_size, is_file, safe_name
from tui.text import clean


@dataclass(frozen=True)
class SentFile:
    """One attachment of a learner message, as the picker lists it."""

    message_id: int
    name: str
    stored: str | None  # the path in the media folder, once kept
    size: int | None
    why_not: str | None  # why it is not kept, or that it is still downloading

    @property
    def label(self) -> str:
        if self.stored is None:
            return f"{self.name}: {self.why_not}"
        return f"{self.name} ({human_size(self.size or 0)})"


def sent_files(entries: Sequence[ThreadEntry]) -> list[SentFile]:
    """Every attachment of the learner's messages that is a file, newest first."""
    found: list[SentFile] = []
    for entry in entries:
        if entry.kind is not EntryKind.LEARNER or entry.message_id is None:
            continue
        for attachment in entry.files:
            if is_file(attachment):
                found.append(_sent_file(entry.message_id, attachment))
    return list(reversed(found))


def _sent_file(message_id: int, attachment: Mapping[str, Any]) -> SentFile:
    stored = attachment.get("stored")
    why = attachment.get("not_stored")
    if stored is None and why is None:
        why = "still downloading (`dripper run` fetches it)"
    return SentFile(
        message_id,
        clean(display_name(attachment), one_line=True),  # the learner chose the name
        str(stored) if stored else None,
        int(attachment["stored_size"]) if attachment.get("stored_size") else None,
        str(why) if why else None,
    )


def can_open() -> bool:
    """A desktop is there to show a file: a display and `xdg-open` (or macOS `open`)."""
    has_display = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return (has_display and shutil.which("xdg-open") is not None) or (
        shutil.which("open") is not None and os.uname().sysname == "Darwin"
    )


def open_or_save(file: SentFile, media: MediaFolder, saves_to: Path, learner: str) -> str:
    """Open the file in the desktop's viewer, else copy it into `saves_to`; what was done."""
    assert file.stored is not None
    source = media.path(file.stored)
    if not source.is_file():
        return f"{file.name} is listed but missing from the media folder ({source})"
    if can_open():
        opener = "xdg-open" if shutil.which("xdg-open") else "open"
        subprocess.Popen(
            [opener, str(source)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        return f"Opened {file.name}"
    saves_to.mkdir(parents=True, exist_ok=True)
    target = _free_name(saves_to / f"{safe_name(learner)}-{safe_name(file.name)}")
    shutil.copyfile(source, target)
    return f"Saved {file.name} to {target}"


def default_saves_folder() -> Path:
    """~/Downloads when it exists, else the current directory."""
    downloads = Path.home() / "Downloads"
    return downloads if downloads.is_dir() else Path.cwd()


def _free_name(path: Path) -> Path:
    if not path.exists():
        return path
    for number in range(2, 10_000):
        candidate = path.with_name(f"{path.stem}-{number}{path.suffix}")
        if not candidate.exists():
            return candidate
    raise FileExistsError(path)
