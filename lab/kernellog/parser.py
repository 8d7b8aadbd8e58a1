"""Stream a console log line by line and cut it into kernel reports.

A report starts at a line that begins with one of the table's headers (after
the console prefix and the kernel's own ``LEAD``, never in the middle of a
line) and ends at the next report of the same task or CPU, at the kernel's
"---[ end trace" marker, after a long run of lines that do not look like
report text, after ``MAX_REPORT_LINES`` lines, or at the end of the log. With caller tags
([T123] / [C1]) every task's report collects only that task's lines, so
several can be open at once; without them one report is open at a time.
Memory stays bounded: only open reports are held, each capped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from lab.kernellog.console import CONSOLE, STAMP, UNTAGGED, clean_text, is_questionable, split_line
from lab.kernellog.finding import Finding, Kind
from lab.kernellog.patterns import FOLLOW_UPS, GROUPS, INTERLUDES, LEAD, SCREEN, Group
from lab.kernellog.title import describe

MAX_LINE = 1024  # characters kept of one line (printk lines are shorter)
MAX_REPORT_LINES = 1000
MAX_OPEN = 64  # reports open at once (one per task or CPU)
QUIET_LINES = 50  # this many lines unlike report text end a report
FOLLOW_UP_WINDOW = 200  # a panic this soon after a report belongs to it
_READ_CHUNK = 1 << 20

# Lines that look like part of a report: frames, registers, lock chains.
_REPORTISH = re.compile(r"[A-Z][A-Z0-9]{1,3}: |Code: |Call Trace|<|-> |=+$|-+$")
# Lines with a meaning inside a report: its end, other CPUs' backtraces
# following, noise, or another message with a stack trace.
_MARKERS = re.compile("|".join(map(re.escape, (
    "---[ end ", "NMI from CPU", "Disabling lock debugging due to kernel taint") + INTERLUDES)))
_PANIC_AFTER = ("Kernel panic - not syncing", "WARNING: possible circular locking dependency detected")


@dataclass
class _Report:
    group: Group
    start: int
    context: str
    lines: list[str] = field(default_factory=list)
    title_end: int | None = None  # lines past this are another message's
    quiet: int = 0  # trailing lines that did not look like report text, as of ``counted`` lines
    counted: int = 1  # lines appended other than by add() (indented ones) are report text
    cpu_traceback: bool = False  # "Sending NMI from CPU": take other CPUs' lines
    skipping: bool = False  # a panic after enough report text: drop the rest

    def add(self, text: str) -> bool:
        """Append a line of this report; True once the report is complete."""
        lines = self.lines
        if len(lines) != self.counted:
            self.quiet = 0
        marker = _MARKERS.search(text)
        if marker is not None:
            marker = marker.group()
            if marker == "---[ end ":
                lines.append(text)
                self.quiet, self.counted = 0, len(lines)
                return True
            if marker == "NMI from CPU":
                self.cpu_traceback = True
            elif marker.startswith("Disabling"):
                self.counted = len(lines)
                return False
            elif self.title_end is None and self.context in UNTAGGED:
                self.title_end = len(lines)
        lines.append(text)
        self.counted = len(lines)
        if text[:1] in (" ", "\t") or "+0x" in text or _REPORTISH.match(text):
            self.quiet = 0
        else:
            self.quiet += 1
            if self.quiet >= QUIET_LINES:
                return True
        return len(lines) >= MAX_REPORT_LINES

    def has_stack(self) -> bool:
        return any("Call Trace" in line or "acktrace" in line or "+0x" in line for line in self.lines)

    def follow_up(self, text: str) -> None:
        """A panic or trap line that belongs to this report."""
        if len(self.lines) > (16 if "BUG: KMSAN:" in self.lines[0] else 22) and \
                any(p in text for p in _PANIC_AFTER):
            self.skipping = True  # panic_on_warn's own stack adds nothing: stop here
        else:
            self.add(text)

    def finding(self) -> Finding:
        quiet = self.quiet if len(self.lines) == self.counted else 0
        lines = self.lines[:len(self.lines) - quiet]
        desc = describe(self.group, lines[:self.title_end or len(lines)])
        signature = desc.title
        if desc.location:
            signature += " @ " + desc.location.rsplit(":", 1)[0]
        return Finding(kind=desc.kind, title=desc.title, signature=signature, report="\n".join(lines),
                       line=self.start, location=desc.location, corrupted=desc.corrupted)


class Scanner:
    """Feed console lines in order; collect the reports they contain.

    ``feed`` takes one line and returns the reports it completed; ``finish``
    returns the ones still open at the end of the log.
    """

    def __init__(self) -> None:
        self._open: dict[str, _Report] = {}
        # Tagged reports another report of the same task or CPU interrupted
        # before they printed a stack trace: they share the lines that follow.
        self._outer: dict[str, _Report] = {}
        self._line = 0
        self._last_close = -FOLLOW_UP_WINDOW
        self._seen_kernel = False
        self._done: list[Finding] = []

    def feed(self, raw: str) -> list[Finding]:
        return list(self.feed_all((raw,)))

    def feed_all(self, lines: Iterable[str | bytes], *, clean: bool = False) -> Iterator[Finding]:
        """Feed lines (str or bytes, newline or not). ``clean``: str without newlines,
        carriage returns or escape sequences (what read_lines and parse give)."""
        if not clean:
            lines = map(_normalize, lines)
        screen, stamp, reports = SCREEN.search, STAMP.match, self._open
        fast = self._fast(None)
        number = self._line
        for number, raw in enumerate(lines, self._line + 1):
            if screen(raw) is None:
                if not reports:
                    if not self._seen_kernel and raw[:1] in ("[", "<"):
                        self._seen_kernel = split_line(raw)[0] != ""
                    continue
                match = stamp(raw)
                if match is None:
                    context, text, questionable = split_line(raw)
                else:
                    context, text = match.group(1) or CONSOLE, raw[match.end():]
                    questionable = ("? " in text or text[-1:] == ")") and is_questionable(text)
                if fast is not None and context == fast.context and len(raw) <= MAX_LINE:
                    # The bulk of a report, inline: a line of the task or CPU whose report
                    # took the line before; an indented one (a frame) needs no bookkeeping.
                    if questionable:
                        continue
                    if text[:1] == " " and len(fast.lines) < MAX_REPORT_LINES:
                        fast.lines.append(text)
                    elif fast.add(text):
                        self._line = number
                        self._close([fast.context])
                        fast = None
                        yield from self._take()
                    continue
                if context not in reports and (context[:1] != "C" or not reports):
                    continue  # no report of this task or CPU is open
                screened = False
            else:
                screened = True
            self._line = number
            fast = self._fast(self._step(raw[:MAX_LINE], screened) or fast)
            if self._done:
                yield from self._take()
        self._line = number

    def _fast(self, report: _Report | None) -> _Report | None:
        """The report the next plain lines of its context may go to directly, if any."""
        if report is None or report.skipping or report.context in self._outer or \
                self._open.get(report.context) is not report:
            return None
        return report

    def finish(self) -> list[Finding]:
        for context in list(self._outer):
            self._retire(self._outer.pop(context))
        self._close(list(self._open))
        return self._take()

    def _take(self) -> list[Finding]:
        done, self._done = self._done, []
        return done

    def _step(self, raw: str, screened: bool) -> _Report | None:
        """One line, the general way; returns the report that took it."""
        context, text, questionable = split_line(raw)
        if context:
            self._seen_kernel = True
        group = self._starts(context, text) if screened else None
        if group is not None:
            self._drop_replayed(context, text)
            untagged = context in UNTAGGED
            if not untagged:
                self._nest(context)
            self._close([c for c in self._open if c == context or (untagged and c in UNTAGGED)])
            if len(self._open) >= MAX_OPEN:
                self._close([next(iter(self._open))])
            report = self._open[context] = _Report(group, self._line, context, [text])
            return report
        if questionable:
            return None
        outer = self._outer.get(context)
        if outer is not None and self._add(outer, text, screened):
            self._retire(self._outer.pop(context))
        report = self._open.get(context)
        if report is None:
            if context[:1] != "C":
                return None
            report = next((r for r in self._open.values() if r.cpu_traceback), None)
            if report is None:
                return None
        if self._add(report, text, screened):
            self._close([report.context])
            return None
        return report

    @staticmethod
    def _add(report: _Report, text: str, screened: bool) -> bool:
        if report.skipping:
            return False
        if screened and FOLLOW_UPS.search(text):
            report.follow_up(text)
            return False
        return report.add(text)

    def _nest(self, context: str) -> None:
        """A new report starts in ``context``: keep the current one open beside it
        if it has no stack trace yet (one level deep)."""
        outer = self._outer.pop(context, None)
        if outer is not None:
            self._retire(outer)
        current = self._open.get(context)
        if current is not None and not current.has_stack():
            self._outer[context] = self._open.pop(context)

    def _starts(self, context: str, text: str) -> Group | None:
        # A header starts a report only at the start of the text (past the
        # kernel's own LEAD): one in the middle of a line is something quoting it.
        body = text[LEAD.match(text).end():]
        for group in GROUPS:
            if body.startswith(group.header) and not (group.ignore and group.ignore.search(text)):
                break
        else:
            return None
        if FOLLOW_UPS.search(text) and (self._open or self._line - self._last_close <= FOLLOW_UP_WINDOW):
            return None
        if group.formats[0].kind is Kind.REBOOT:  # the boot loader's line: no timestamp
            return group if self._seen_kernel else None  # else the log's own boot
        if group.joins and context in self._open:
            return None
        if not context and self._seen_kernel and not any(
                f.title.search(text) for f in group.formats if not f.corrupted):
            return None  # no timestamp in a timestamped log, no known title: userspace output
        return group

    def _drop_replayed(self, context: str, text: str) -> None:
        """printk reprints a message another CPU interrupted: keep only the full one."""
        report = self._open.get(context)
        if report is not None and len(report.lines) == 1 and text.startswith(report.lines[0]):
            del self._open[context]

    def _close(self, contexts: list[str]) -> None:
        for context in contexts:
            self._retire(self._open.pop(context))
            if context in self._outer:  # the report it interrupted ends with it
                self._retire(self._outer.pop(context))

    def _retire(self, report: _Report) -> None:
        self._last_close = self._line
        self._done.append(report.finding())


def _normalize(line: str | bytes) -> str:
    if line.__class__ is bytes:
        line = line.decode("utf-8", "replace")
    return clean_text(line.rstrip("\n"))


def scan(lines: Iterable[str | bytes], *, clean: bool = False) -> Iterator[Finding]:
    """Every report in ``lines``, in the order they end; repeats not merged."""
    scanner = Scanner()
    yield from scanner.feed_all(lines, clean=clean)
    yield from scanner.finish()


def merge(findings: Iterable[Finding]) -> list[Finding]:
    """One Finding per signature, counting repeats, ordered by first line."""
    first: dict[str, Finding] = {}
    counts: dict[str, int] = {}
    for finding in findings:
        key = finding.signature
        seen = first.get(key)
        if seen is None or finding.line < seen.line:
            first[key] = finding
        counts[key] = counts.get(key, 0) + finding.count
    merged = (f if f.count == counts[k] else replace(f, count=counts[k]) for k, f in first.items())
    return sorted(merged, key=lambda f: f.line)


def parse(source: str | bytes | Iterable[str | bytes]) -> list[Finding]:
    """Findings in console text, or in an iterable of its lines."""
    if isinstance(source, bytes):
        source = source.decode("utf-8", "replace")
    if isinstance(source, str):
        return merge(scan(clean_text(source).split("\n"), clean=True))
    return merge(scan(source))


def read_lines(binary_file, chunk: int = _READ_CHUNK) -> Iterator[str]:
    """Decoded lines of a binary file, read in chunks so memory stays bounded.

    A line longer than a chunk is cut; invalid UTF-8 becomes U+FFFD.
    """
    rest = b""
    while True:
        data = binary_file.read(chunk)
        if not data:
            break
        data = rest + data
        end = data.rfind(b"\n")
        if end < 0:
            if len(data) < chunk:
                rest = data
                continue
            end = len(data)  # no newline in a whole chunk: cut the line here
        rest = data[end + 1:]
        yield from clean_text(data[:end].decode("utf-8", "replace")).split("\n")
    if rest:
        yield clean_text(rest.decode("utf-8", "replace"))


def parse_file(path: str | Path) -> list[Finding]:
    """Findings in a console log file, read as a stream."""
    with open(path, "rb") as log:
        return merge(scan(read_lines(log), clean=True))
