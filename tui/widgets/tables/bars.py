"""Small charts inside table cells: unicode bars in eighths of a cell, with a label.

`bar_cell(0.62, 10)` is "█████▏    62%": the bar on a dim track, then the figure. A rate that is
not zero never looks empty and one that is not whole never looks full, so a glance does not
round 1 of 400 away.
"""

from __future__ import annotations

from rich.text import Text

EIGHTHS = " ▏▎▍▌▋▊▉"
FULL = "█"
TRACK = "on grey19"  # the empty part of a bar: the bar's length reads at a glance
NO_FIGURE = "—"


def percent(fraction: float | None) -> str:
    """62%, or a dash when there is nothing to divide by."""
    return NO_FIGURE if fraction is None else f"{fraction:.0%}"


def bar(fraction: float | None, width: int) -> str:
    """`fraction` (0 to 1) of `width` cells in blocks, padded with spaces to `width`."""
    if width <= 0:
        return ""
    if fraction is None:
        return " " * width
    fraction = min(1.0, max(0.0, fraction))
    eighths = round(fraction * width * 8)
    if fraction > 0:
        eighths = max(eighths, 1)
    if fraction < 1:
        eighths = min(eighths, width * 8 - 1)
    full, part = divmod(eighths, 8)
    return (FULL * full + (EIGHTHS[part] if part else "")).ljust(width)


def bar_cell(
    fraction: float | None,
    width: int,
    label: str | None = None,
    *,
    style: str = "green3",
    label_width: int = 4,
    cell: int | None = None,
) -> Text:
    """A bar of `width` cells, then `label` (the percentage unless given) right-aligned in
    `label_width` cells (or in what the bar leaves of a `cell` that wide); no bar, only the
    dash, when `fraction` is None."""
    if cell is not None:
        label_width = cell - width - 1
    text = Text(no_wrap=True, end="")
    if fraction is None:
        text.append(" " * width, style="")
    else:
        text.append(bar(fraction, width), style=f"{style} {TRACK}")
    shown = percent(fraction) if label is None else label
    text.append(" " + shown.rjust(label_width), style="dim" if fraction is None else "")
    return text
