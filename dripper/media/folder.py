"""The media folder: one subfolder per learner, one file per attachment.

`learner-12/345-0-photo.jpg` is attachment 0 of message 345 of learner 12. Names come from the
learner (a document's file name), so they are reduced to safe characters; a path read back from
the database is resolved inside the folder or refused. Files are written to a temporary name
and renamed, so a crash never leaves half a file under its real name.
"""

from __future__ import annotations

import mimetypes
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_DEFAULT_NAMES = {
    "photo": "photo.jpg",
    "voice": "voice.ogg",
    "video": "video.mp4",
    "video_note": "video-note.mp4",
    "audio": "audio.mp3",
    "animation": "animation.mp4",
    "sticker": "sticker.webp",
    "document": "file",
}
NAME_LENGTH = 80


def human_size(count: int) -> str:
    """ "512 B", "48 KB", "2.5 MB"."""
    if count < 1024:
        return f"{count} B"
    if count < 1024 * 1024:
        return f"{count / 1024:.0f} KB"
    return f"{count / (1024 * 1024):.1f} MB".replace(".0 MB", " MB")


def display_name(attachment: Mapping[str, Any]) -> str:
    """The name a trainer sees: the file's own name, else one from its kind and type."""
    named = attachment.get("file_name") or attachment.get("filename")
    if named and named != "(unnamed)":
        return str(named)
    kind = str(attachment.get("kind") or "document")
    default = _DEFAULT_NAMES.get(kind, "file")
    if "." not in default and attachment.get("mime_type"):
        default += mimetypes.guess_extension(str(attachment["mime_type"])) or ""
    return default


PLACE_KINDS = frozenset(("location", "venue", "contact"))  # attachments that are no file


def is_file(attachment: Mapping[str, Any]) -> bool:
    """A file, not a place or a contact (email attachments are always files)."""
    return attachment.get("kind") not in PLACE_KINDS


def safe_name(name: str) -> str:
    """A file name of safe characters only, its extension kept: "отчёт.pdf" -> "file.pdf"."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]  # a path's last part only
    stem, dot, suffix = name.rpartition(".")
    if not (dot and stem):
        stem, suffix = name, ""
    suffix = _UNSAFE.sub("", suffix)[:10]
    stem = _UNSAFE.sub("_", stem).strip("._")[: NAME_LENGTH - len(suffix) - 1] or "file"
    return f"{stem}.{suffix}" if suffix else stem


class MediaFolder:
    def __init__(self, root: Path) -> None:
        self.root = root

    def relative_path(
        self, learner_id: int, message_id: int, index: int, attachment: Mapping[str, Any]
    ) -> str:
        name = safe_name(display_name(attachment))
        return f"learner-{learner_id}/{message_id}-{index}-{name}"

    def write(self, relative: str, data: bytes) -> Path:
        target = self.path(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".part-")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return target

    def path(self, relative: str) -> Path:
        """The file of a stored path, inside the folder (a path leading out is refused)."""
        root = self.root.resolve()
        target = (root / relative).resolve()
        if not target.is_relative_to(root) or target == root:
            raise ValueError(f"{relative!r} is not a path inside the media folder")
        return target

    def erase_learner(self, learner_id: int) -> int:
        """Delete every file of the learner; how many there were."""
        folder = self.root / f"learner-{learner_id}"
        if not folder.is_dir():
            return 0
        files = [path for path in folder.rglob("*") if path.is_file()]
        shutil.rmtree(folder)
        return len(files)
