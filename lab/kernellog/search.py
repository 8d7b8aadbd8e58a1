"""Search a report's text for the first line a regex matches, fast.

Python's regex engine scans character by character; ``str.find`` skips ahead
far faster. Most patterns here start with a literal ("Call Trace:", "RIP: ",
"BUG: KASAN: "), so we find that literal first and run the regex only on the
line it is in. Patterns must not match across lines.
"""

from __future__ import annotations

import re
from functools import lru_cache

try:  # CPython's regex parser: used only to read a pattern's literal prefixes
    from re import _parser as _sre_parse
except ImportError:  # pragma: no cover
    _sre_parse = None

_MIN_NEEDLE = 2


@lru_cache(maxsize=None)
def needles(pattern: re.Pattern) -> tuple[str, ...] | None:
    """Literals one of which every match starts with, or None if there are none."""
    if _sre_parse is None or pattern.flags & (re.IGNORECASE | re.MULTILINE) or "\\n" in pattern.pattern \
            or "\\s" in pattern.pattern:
        return None  # may match across lines: search the whole text
    try:
        parsed = _sre_parse.parse(pattern.pattern, pattern.flags)
    except Exception:  # pragma: no cover - the parser is internal
        return None
    found = _prefixes(list(parsed))
    if not found or any(len(n) < _MIN_NEEDLE for n in found):
        return None
    return tuple(dict.fromkeys(found))


def _prefixes(items: list) -> list[str] | None:
    """The literal prefixes of a parsed sequence, one per alternative branch."""
    literal = []
    for op, value in items:
        name = str(op)
        if name == "LITERAL":
            literal.append(chr(value))
            continue
        if literal:
            return ["".join(literal)]
        if name == "BRANCH":
            out = []
            for branch in value[1]:
                sub = _prefixes(list(branch))
                if sub is None:
                    return None
                out += sub
            return out
        if name == "SUBPATTERN":
            return _prefixes(list(value[3]))
        return None
    return ["".join(literal)] if literal else None


def first_line(pattern: re.Pattern, text: str, pos: int = 0, endpos: int | None = None) -> re.Match | None:
    """``pattern.search(text, pos, endpos)`` for a pattern whose matches stay on one line."""
    end = len(text) if endpos is None else endpos
    literals = needles(pattern)
    if literals is None:
        return pattern.search(text, pos, end)
    while pos < end:
        hit = -1
        for literal in literals:
            i = text.find(literal, pos, end)
            if i >= 0 and (hit < 0 or i < hit):
                hit = i
        if hit < 0:
            return None
        line_end = text.find("\n", hit, end)
        line_end = end if line_end < 0 else line_end
        match = pattern.search(text, max(text.rfind("\n", pos, hit) + 1, pos), line_end)
        if match is not None:
            return match
        pos = line_end + 1
    return None
