"""Name a collected report: title, kind, source location, corruption."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple

from lab.kernellog import frames
from lab.kernellog.finding import Kind
from lab.kernellog.patterns import Group

MAX_TITLE = 120
HEAD_LINES = 10

# Dynamic parts of a title, replaced until nothing changes.
_DYNAMIC = (
    (re.compile(r"syz-executor\.?[0-9]+(?:[/:][0-9]+)?"), "syz-executor"),
    (re.compile(r"syzkaller[0-9]+(?:[/:][0-9]+)?"), "syzkaller"),
    (re.compile(r"([^a-zA-Z0-9])(?:0x)?[0-9a-f]{6,}"), r"\1ADDR"),
    (re.compile(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}"), "IP"),
    (re.compile(r"(\.\w+)(?::[0-9]+)+"), r"\1:LINE"),
    (re.compile(r"([a-zA-Z][a-zA-Z0-9_.]+)\+0x[0-9a-z]+/0x[0-9a-z]+"), r"\1"),
    (re.compile(r"CPU#[0-9]+"), "CPU"),
    (re.compile(r"(\W)(\d+)(\W|$)"), r"\1NUM\3"),
    (re.compile(r"\d{7,}"), "NUM"),
)
_TIMESTAMP = re.compile(r"\[ *[0-9]+\.[0-9]+\]")
_SOURCE = re.compile(r"([\w/.-]*\w\.(?:[chS]|rs)):(\d+)")
_CONTROL = re.compile(r"[^\x20-\x7e]")
_DIGITS = re.compile(r"[0-9]+")


class Description(NamedTuple):
    title: str
    kind: Kind
    corrupted: bool
    location: str | None


@lru_cache(maxsize=4096)
def sanitize(title: str) -> str:
    """Drop what changes from run to run: addresses, numbers, PIDs, line numbers."""
    for pattern, replacement in _DYNAMIC:
        title, count = pattern.subn(replacement, title)
        while count:  # replacements can expose overlapping matches ("0,1,2")
            title, count = pattern.subn(replacement, title)
    title = _CONTROL.sub("", title[:MAX_TITLE].replace("\t", " "))
    return " ".join(title.split())


def describe(group: Group, lines: Sequence[str]) -> Description:
    """Title the report in ``lines`` (the first line holds ``group.header``)."""
    text = "\n".join(lines)
    # The title is almost always in the first lines: look there first.
    head = -1
    for _ in range(HEAD_LINES):
        head = text.find("\n", head + 1)
        if head < 0:
            break
    if head < 0:
        head = len(text)
    chosen = _choose(group, text, head)
    if chosen is None and head < len(text):
        chosen = _choose(group, text, len(text))
    location = _location(lines)
    if chosen is None or chosen[1] is None:
        first = lines[0]
        title = first[max(first.find(group.header), 0):]
        return Description(sanitize(title), group.formats[0].kind, chosen is not None, location)
    fmt, title, corrupted = chosen
    corrupted = corrupted or fmt.corrupted or _TIMESTAMP.search(title) is not None
    if not corrupted and not fmt.no_stack:
        corrupted = not _has_stack(text)
    return Description(sanitize(title), fmt.kind, corrupted, location)


def _choose(group: Group, text: str, endpos: int):
    """The format whose title matches earliest in ``text[:endpos]`` and the title it gives.

    None if no title matches; (format, None, True) if titles match but no
    format's report regex does.
    """
    first = _any_title(group).search(text, 0, endpos)
    if first is None:
        return None
    best = None
    for fmt in group.formats:  # those whose title matches where the first title does, in order
        match = fmt.title.match(text, first.start(), endpos)
        if match is None or (best is not None and best[1]):
            continue
        best = best or (fmt, None, True)
        if fmt.report is not None:
            match = fmt.report.search(text)
            if match is None:
                continue
        args = [g or "" for g in match.groups()]
        ok = True
        if fmt.stack is not None:
            found, ok = frames.extract(text, match.start(), fmt.stack)
            args += found
        best = (fmt, fmt.template.format(*args), not ok)
    return best


_ANY_TITLE: dict[int, re.Pattern] = {}


def _any_title(group: Group) -> re.Pattern:
    """One regex for all of a group's titles: where the earliest starts."""
    combined = _ANY_TITLE.get(id(group))
    if combined is None:
        combined = _ANY_TITLE[id(group)] = re.compile("|".join(f"(?:{f.title.pattern})" for f in group.formats))
    return combined


def _has_stack(text: str) -> bool:
    """A report that should carry a stack trace has one: after the first header of
    each kind ("Call Trace:", "Freed by task N:"...) at least 2 more lines, and a
    frame within the next 15 before another trace starts."""
    starts = frames.stack_starts(text)
    seen: set[str] = set()
    for i, header in enumerate(starts):
        key = _DIGITS.sub("", header.group())
        if key in seen:
            continue
        seen.add(key)
        start = text.find("\n", header.end())
        if start < 0 or text.count("\n", start) < 2:
            return False
        stop = start
        for _ in range(15):
            stop = text.find("\n", stop + 1)
            if stop < 0:
                stop = len(text)
                break
        following = next((h.start() for h in starts[i + 1:] if h.start() > start), None)
        if following is not None and following < stop:
            stop = text.rfind("\n", 0, following)
        if frames.FRAME_LINE.search(text, start + 1, max(stop, start + 1)) is None and \
                "(stack is not available)" not in text[start:stop]:
            return False
    return bool(seen)


def _location(lines: Sequence[str]) -> str | None:
    """The file:line the report names on its first lines (a WARNING's or BUG()'s)."""
    for line in lines[:2]:
        if ".c:" in line or ".h:" in line or ".S:" in line or ".rs:" in line:
            match = _SOURCE.search(line)
            if match:
                return f"{match.group(1)}:{match.group(2)}"
    return None
