"""Console line prefixes: timestamps, caller tags, syslog priorities, noise.

A kernel console line looks like ``<4>[   12.345678][  T123] text``: an
optional syslog priority, the printk timestamp and, with CONFIG_PRINTK_CALLER,
the task (``T123``) or CPU (``C1``) that printed it. The caller tag is what
lets the parser keep the lines of one report apart from other tasks' output.
"""

from __future__ import annotations

import re

# A line with a timestamp but no caller tag belongs to the "console" context,
# a line without a timestamp to the "" context (userspace or serial noise).
CONSOLE = "console"
UNTAGGED = ("", CONSOLE)

STAMP = re.compile(r"\[ *\d+\.\d+\](?:\[ *([CT]\d+)\])? ")  # the common case
_ANY_STAMP = re.compile(r"(?:<\d{1,3}>)?\[ *\d+\.\d+\](?:\[ *([CT]) *(\d+)\])? ")
# Decorations in front of the timestamp: dropped-message notes, a login
# prompt the kernel printed over, a syslog "<4>" or "Mon dd hh:mm:ss host kernel: ".
_DECOR = re.compile(r"(?:\*\* \d+ printk messages dropped \*\* )?(?:.* login: )?")
_SYSLOG = re.compile(r"(?:[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+ kernel: )?(?:<\d{1,3}>)?")
_ESCAPE = re.compile(r"\x1b(?:\[[0-9;?]*[A-Za-z]|[()][A-Z0-9])?")  # starts with a literal: fast
# "? func+0x1/0x2" (x86) or "func+0x1/0x2 (unreliable)" (powerpc): a stack
# slot the unwinder is unsure about.
_QUESTIONABLE = re.compile(r" *(?:\[<[0-9a-f]+>\] *)?\? ")


def clean_text(text: str) -> str:
    """Drop carriage returns, NULs and terminal escape sequences (serial console noise)."""
    if "\r" in text:
        text = text.replace("\r", "")
    if "\x00" in text:
        text = text.replace("\x00", "")
    if "\x1b" in text:
        text = _ESCAPE.sub("", text)
    return text


def split_line(raw: str) -> tuple[str, str, bool]:
    """Split one console line (no newline) into (context, text, questionable).

    ``context`` is the caller tag ("T123", "C1"), CONSOLE, or "" without a
    timestamp; ``questionable`` marks an unreliable stack frame.
    """
    match = STAMP.match(raw)
    if match is None:
        return _split_slow(raw)
    text = raw[match.end():]
    if text[-1:] == "\r" or "\x1b" in text:
        text = clean_text(text)
    questionable = ("? " in text or text[-1:] == ")") and is_questionable(text)
    return match.group(1) or CONSOLE, text, questionable


def is_questionable(text: str) -> bool:
    """An unreliable stack frame: "? f+0x1/0x2" (x86) or "f+0x1/0x2 (unreliable)" (powerpc)."""
    return "<EOI>" not in text and (_QUESTIONABLE.match(text) is not None or text.endswith(" (unreliable)"))


def _split_slow(raw: str) -> tuple[str, str, bool]:
    raw = clean_text(raw)
    start = 0
    if "printk messages dropped" in raw or " login: " in raw:
        start = _DECOR.match(raw).end()
    if raw[start:start + 1] == "<" or " kernel: " in raw:
        start = _SYSLOG.match(raw, start).end()
    match = _ANY_STAMP.match(raw, start)
    if match is None:
        return "", raw[start:], False
    tag = match.group(1)
    text = raw[match.end():]
    return (tag + match.group(2) if tag else CONSOLE), text, is_questionable(text)
