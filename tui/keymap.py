"""The user-editable keymap: binding ids mapped to keys, read from a TOML file.

Every binding of the dashboard has an id such as `conversation.send`. A trainer changes keys
without touching code by writing, in `keymap.toml` (the path `dripper tui --help` prints):

    "conversation.send" = "ctrl+s,f5"
    "inbox.folder.mine" = "2"

The help screen (`?`) lists every id with its keys.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable
from pathlib import Path

from platformdirs import user_config_dir
from textual.app import App
from textual.binding import Binding, BindingType

from dripper.errors import DripperError


def default_keymap_path() -> Path:
    """`DRIPPER_KEYMAP`, else `keymap.toml` in the user's config directory for dripper."""
    configured = os.environ.get("DRIPPER_KEYMAP")
    if configured:
        return Path(configured).expanduser()
    return Path(user_config_dir("dripper")) / "keymap.toml"


def binding_ids(groups: Iterable[Iterable[BindingType]]) -> dict[str, Binding]:
    """Every binding that has an id, by id."""
    found: dict[str, Binding] = {}
    for bindings in groups:
        for binding in bindings:
            if isinstance(binding, Binding) and binding.id:
                found[binding.id] = binding
    return found


def load_keymap(path: Path, known: Iterable[str]) -> dict[str, str]:
    """The keymap in the file (empty when there is none); unknown ids and bad values are errors
    that name the file, so a typo never silently leaves a default in place."""
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise DripperError(f"{path}: cannot read the keymap: {exc}") from exc
    known_ids = set(known)
    problems = []
    keymap: dict[str, str] = {}
    for binding_id, keys in data.items():
        if binding_id not in known_ids:
            problems.append(f"unknown binding id {binding_id!r}")
        elif not isinstance(keys, str) or not keys.strip():
            problems.append(f'{binding_id!r}: expected keys as text, such as "ctrl+s,f5"')
        else:
            keymap[binding_id] = ",".join(key.strip() for key in keys.split(",") if key.strip())
    if problems:
        listed = ", ".join(sorted(known_ids))
        raise DripperError(f"{path}: " + "; ".join(problems) + f" (known ids: {listed})")
    return keymap


def keys_for(app: App[object], binding: Binding) -> str:
    """The keys that trigger a binding now, after the user's keymap, as the footer shows them."""
    keymap: dict[str, str] = getattr(app, "keymap", {})
    keys = keymap.get(binding.id, binding.key) if binding.id else binding.key
    return ", ".join(app.get_key_display(Binding(key.strip(), "")) for key in keys.split(","))
