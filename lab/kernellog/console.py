"""Console line prefixes: timestamps, caller tags, syslog priorities, noise.

A kernel console line looks like ``<4>[   12.345678][  T123] text``: an
optional syslog priority, the printk timestamp and, with CONFIG_PRINTK_CALLER,
the task (``T123``) or CPU (``C1``) that printed it. The caller tag is what
lets the parser keep the lines of one report apart from other tasks' output.
"""

from __future__ import annotations

import re
from typing import NamedTuple

# A line with a timestamp but no caller tag belongs to the "console" context,
# a line without a timestamp to the "" context (userspace or serial noise).
CONSOLE = "console"
UNTAGGED = ("", CONSOLE)

_PREFIX = re.compile(r"(?:<\d{1,3}>)?\[ *\d+\.\d+\](?:\[ *([CT]) *(\d+)\])? ")
# Rarer decorations in front of the timestamp; only tried when present.
_SLOW_PREFIX = re.compile(
    r"(?:\*\* \d+ printk messages dropped \*\* )?(?:.* login: )?"
    r"(?:<\d{1,3}>)?\[ *\d+\.\d+\](?:\[ *([CT]) *(\d+)\])? ")
_SYSLOG = re.compile(r"(?:<\d{1,3}>)|(?:[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+ kernel: )")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|[\x00-\x08\x0b-\x1f\x7f]")
# "? func+0x1/0x2" (x86) or "func+0x1/0x2 (unreliable)" (powerpc): a stack
# slot the unwinder is unsure about.
_QUESTIONABLE = re.compile(r" *(?:\[<[0-9a-f]+>\] *)?\? ")


class ConsoleLine(NamedTuple):
    context: str  # "T123" / "C1", CONSOLE, or "" (no timestamp)
    text: str  # the message, prefix removed
    questionable: bool  # an unreliable "? func" stack frame


def split_line(raw: str) -> ConsoleLine:
    """Split one console line (no trailing newline) into context and text."""
    if "\x1b" in raw or "\x00" in raw or "\r" in raw:
        raw = _ANSI.sub("", raw)
    match = _PREFIX.match(raw)
    if match is None:
        start = 0
        if raw.startswith("<") or " kernel: " in raw:
            syslog = _SYSLOG.match(raw)
            if syslog is not None:
                start = syslog.end()
        if "] " in raw:
            if start:
                match = _PREFIX.match(raw, start)
            elif "login: " in raw or "printk messages dropped" in raw:
                match = _SLOW_PREFIX.match(raw)
        if match is None:
            return ConsoleLine("", raw[start:], False)
    tag = match.group(1)
    context = tag + match.group(2) if tag else CONSOLE
    text = raw[match.end():]
    questionable = "<EOI>" not in text and (
        ("? " in text and _QUESTIONABLE.match(text) is not None) or text.endswith(" (unreliable)"))
    return ConsoleLine(context, text, questionable)
