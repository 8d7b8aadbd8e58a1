"""Name a collected report: title, kind, source location, corruption."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

from lab.kernellog import frames
from lab.kernellog.finding import Kind
from lab.kernellog.patterns import Format, Group

MAX_TITLE = 120

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
_SOURCE = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)*[\w.-]+\.[chS]):(\d+)")
_CONTROL = re.compile(r"[^\x20-\x7e]")
_DIGITS = re.compile(r"[0-9]+")


class Description(NamedTuple):
    title: str
    kind: Kind
    corrupted: bool
    location: str | None


def sanitize(title: str) -> str:
    """Drop what changes from run to run: addresses, numbers, PIDs, line numbers."""
    for pattern, replacement in _DYNAMIC:
        while True:
            replaced = pattern.sub(replacement, title)
            if replaced == title:
                break
            title = replaced
    title = _CONTROL.sub("", title[:MAX_TITLE].replace("\t", " "))
    return " ".join(title.split())


def describe(group: Group, lines: Sequence[str]) -> Description:
    """Title the report in ``lines`` (the first line holds ``group.header``)."""
    text = "\n".join(lines)
    best: tuple[Format, str, bool] | None = None
    best_pos = len(text) + 1
    title_matched = False
    for fmt in group.formats:
        match = fmt.title.search(text)
        if match is None or match.start() > best_pos or (match.start() == best_pos and best):
            continue
        if match.start() < best_pos:
            best, best_pos = None, match.start()
        title_matched = True
        if fmt.report is not None:
            match = fmt.report.search(text)
            if match is None:
                continue
        args = [g or "" for g in match.groups()]
        ok = True
        if fmt.stack is not None:
            found, ok = frames.extract(text[match.start():].split("\n"), fmt.stack)
            args += found
        best = (fmt, fmt.template.format(*args), not ok)
    if best is None:
        first = lines[0]
        start = first.find(group.header)
        title = first[max(start, 0):]
        return Description(sanitize(title), group.formats[0].kind, title_matched, _location(lines))
    fmt, title, corrupted = best
    corrupted = corrupted or fmt.corrupted or _TIMESTAMP.search(title) is not None
    if not corrupted and not fmt.no_stack:
        corrupted = not _has_stack(lines)
    return Description(sanitize(title), fmt.kind, corrupted, _location(lines))


def _has_stack(lines: Sequence[str]) -> bool:
    """A report that should carry a stack trace has one, with frames after each kind of trace header."""
    seen: set[str] = set()
    for i, line in enumerate(lines):
        header = frames.STACK_START.search(line)
        if header is None:
            continue
        key = _DIGITS.sub("", header.group())
        if key in seen:
            continue
        seen.add(key)
        if len(lines) - i < 4:
            return False
        for following in lines[i + 1:i + 16]:
            if frames.STACK_START.search(following):
                return False
            if "(stack is not available)" in following or frames.FRAME_LINE.match(following):
                break
        else:
            return False
    return bool(seen)


def _location(lines: Sequence[str]) -> str | None:
    """The file:line the report names near its start (a WARNING's or BUG()'s)."""
    for line in lines[:3]:
        match = _SOURCE.search(line)
        if match:
            return f"{match.group(1)}:{match.group(2)}"
    return None
