"""Stream a console log line by line and cut it into kernel reports.

A report starts at a line holding one of the table's headers and ends at the
next report of the same task or CPU, at the kernel's "---[ end trace" marker,
after a long run of lines that do not look like report text, after
``MAX_REPORT_LINES`` lines, or at the end of the log. With caller tags
([T123] / [C1]) every task's report collects only that task's lines, so
several can be open at once; without them one report is open at a time.
Memory stays bounded: only open reports are held, each capped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

from lab.kernellog.console import UNTAGGED, split_line
from lab.kernellog.finding import Finding, Kind
from lab.kernellog.patterns import FOLLOW_UPS, GROUPS, HEADERS, INTERLUDES, Group
from lab.kernellog.title import describe

MAX_LINE = 4096  # characters kept of one line
MAX_REPORT_LINES = 2000
MAX_OPEN = 64  # reports open at once (one per task or CPU)
QUIET_LINES = 50  # this many lines unlike report text end a report
FOLLOW_UP_WINDOW = 200  # a panic this soon after a report belongs to it
_READ_CHUNK = 1 << 16

# Lines that look like part of a report: indented frames and registers.
_REPORTISH = re.compile(r"\s|.*\+0x[0-9a-f]|[A-Z][A-Z0-9]{1,3}: |Code: |Call Trace|<|-> |=+$|-+$")
_PANIC_AFTER = ("Kernel panic - not syncing", "WARNING: possible circular locking dependency detected")


@dataclass
class _Report:
    group: Group
    start: int
    context: str
    lines: list[str] = field(default_factory=list)
    title_end: int | None = None  # lines past this are another message's
    kept: int = 1  # lines up to the last that looked like report text
    quiet: int = 0
    cpu_traceback: bool = False  # "Sending NMI from CPU": take other CPUs' lines
    skipping: bool = False  # a panic after enough report text: drop the rest
    done: bool = False

    def add(self, text: str, questionable: bool) -> None:
        if questionable or self.skipping or "Disabling lock debugging due to kernel taint" in text:
            return
        if "Sending NMI from CPU" in text:
            self.cpu_traceback = True
        elif len(self.lines) > self._min_lines() and any(p in text for p in _PANIC_AFTER):
            self.skipping = True
            return
        self.lines.append(text)
        if self.title_end is None and self.context in UNTAGGED and any(m in text for m in INTERLUDES):
            self.title_end = len(self.lines) - 1
        if _REPORTISH.match(text):
            self.quiet, self.kept = 0, len(self.lines)
        else:
            self.quiet += 1
        if "---[ end " in text:
            self.kept, self.done = len(self.lines), True
        elif self.quiet >= QUIET_LINES or len(self.lines) >= MAX_REPORT_LINES:
            self.done = True

    def _min_lines(self) -> int:
        return 16 if "BUG: KMSAN:" in self.lines[0] else 22

    def finding(self) -> Finding:
        lines = self.lines[:self.kept]
        desc = describe(self.group, lines[:self.title_end or len(lines)])
        signature = desc.title
        if desc.location:
            signature += " @ " + desc.location.rsplit(":", 1)[0]
        return Finding(kind=desc.kind, title=desc.title, signature=signature, report="\n".join(lines),
                       line=self.start, location=desc.location, corrupted=desc.corrupted)


class Scanner:
    """Feed console lines in order; collect the reports they contain."""

    def __init__(self) -> None:
        self._open: dict[str, _Report] = {}
        self._line = 0
        self._last_close = -FOLLOW_UP_WINDOW
        self._seen_kernel = False

    def feed(self, raw: str) -> Iterator[Finding]:
        self._line += 1
        if len(raw) > MAX_LINE:
            raw = raw[:MAX_LINE]
        context, text, questionable = split_line(raw.rstrip("\r\n"))
        group = self._starts(text) if HEADERS.search(text) else None
        if group is not None:
            self._drop_replayed(context, text)
            yield from self._close(c for c in self._open if c == context or
                                   (context in UNTAGGED and c in UNTAGGED))
            if len(self._open) >= MAX_OPEN:
                yield from self._close([next(iter(self._open))])
            self._open[context] = _Report(group, self._line, context, [text])
        else:
            report = self._open.get(context)
            if report is None and context.startswith("C"):
                report = next((r for r in self._open.values() if r.cpu_traceback), None)
            if report is not None:
                report.add(text, questionable)
                if report.done:
                    yield from self._close([report.context])
        if context:
            self._seen_kernel = True

    def _drop_replayed(self, context: str, text: str) -> None:
        """printk reprints a message another CPU interrupted: keep only the full one."""
        report = self._open.get(context)
        if report is not None and len(report.lines) == 1 and text.startswith(report.lines[0]):
            del self._open[context]

    def finish(self) -> Iterator[Finding]:
        yield from self._close(list(self._open))

    def _starts(self, text: str) -> Group | None:
        for group in GROUPS:
            if group.header in text and not (group.ignore and group.ignore.search(text)):
                break
        else:
            return None
        if FOLLOW_UPS.search(text) and (self._open or self._line - self._last_close <= FOLLOW_UP_WINDOW):
            return None
        if group.formats[0].kind is Kind.REBOOT and not self._seen_kernel:
            return None  # the log's own boot
        return group

    def _close(self, contexts: Iterable[str]) -> Iterator[Finding]:
        for context in list(contexts):
            report = self._open.pop(context)
            self._last_close = self._line
            yield report.finding()


def scan(lines: Iterable[str | bytes]) -> Iterator[Finding]:
    """Every report in ``lines``, in the order they end; repeats not merged."""
    scanner = Scanner()
    for line in lines:
        if isinstance(line, bytes):
            line = line.decode("utf-8", "replace")
        yield from scanner.feed(line)
    yield from scanner.finish()


def merge(findings: Iterable[Finding]) -> list[Finding]:
    """One Finding per signature, counting repeats, ordered by first line."""
    first: dict[str, Finding] = {}
    for finding in findings:
        seen = first.get(finding.signature)
        if seen is None:
            first[finding.signature] = finding
        elif finding.line < seen.line:
            first[finding.signature] = replace(finding, count=seen.count + finding.count)
        else:
            first[finding.signature] = replace(seen, count=seen.count + finding.count)
    return sorted(first.values(), key=lambda f: f.line)


def parse(source: str | bytes | Iterable[str | bytes]) -> list[Finding]:
    """Findings in console text, or in an iterable of its lines."""
    if isinstance(source, bytes):
        source = source.decode("utf-8", "replace")
    if isinstance(source, str):
        source = source.split("\n")
    return merge(scan(source))


def read_lines(binary_file) -> Iterator[bytes]:
    """Lines of a binary file, a long line cut into pieces so memory stays bounded."""
    return iter(partial(binary_file.readline, _READ_CHUNK), b"")


def parse_file(path: str | Path) -> list[Finding]:
    """Findings in a console log file, read as a stream."""
    with open(path, "rb") as log:
        return merge(scan(read_lines(log)))
