"""Small helpers that make error messages useful: "did you mean" suggestions."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """Return ' (did you mean "x"?)' for the closest candidate, or '' when nothing is close.

    Case is ignored when comparing, so "b" suggests "B" and "Title" suggests "title".
    """
    by_folded = {candidate.casefold(): candidate for candidate in candidates}
    matches = difflib.get_close_matches(word.casefold(), list(by_folded), n=1, cutoff=0.6)
    return f' (did you mean "{by_folded[matches[0]]}"?)' if matches else ""
