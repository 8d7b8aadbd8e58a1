"""One live display for a run or a boot: a line per boot (cell and repeat)
with its state (waiting, building, booting: its stage, workload N of M,
verdict) and how long it has been in it. On a terminal it is a rich live
table (a single boot: one status line with the run's elapsed time);
otherwise (CI logs, pipes) plain lines: one per state change of a matrix,
and for any run one per boot stage and one per finished case. Log lines
and finished cases print above the live display."""

from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager
from typing import Iterable, Iterator, TextIO

from .results import CaseResult, Status


def duration(seconds: float) -> str:
    """42s, 3m07s, 1h02m (pure)."""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def case_line(case: CaseResult) -> str:
    """A finished case as one line (pure): status, classname.name, duration
    and, for a case that did not pass, its message."""
    name = (f"{case.classname}.{case.name}" if case.classname not in ("", case.name)
            else case.name)
    text = f"{case.status.value} {name}"
    if case.duration:
        text += f" ({case.duration:.1f}s)"
    if case.status is not Status.PASSED and case.message:
        msg = case.message.splitlines()[0]
        text += f": {msg[:160]}{'...' if len(msg) > 160 else ''}"
    return text


class Progress:
    def __init__(self, units: list[str], stream: TextIO | None = None,
                 live: bool | None = None):
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self.states = {u: ("waiting", self.started) for u in units}
        self.single = len(units) == 1
        self.live = self.stream.isatty() if live is None else live
        self._lock = threading.Lock()
        self._live = None
        if self.live:
            self._start_live()

    def _start_live(self) -> None:
        from rich.console import Console
        from rich.live import Live
        # a single boot's status line goes when the display ends (its log
        # lines say the outcome); a matrix's table stays
        self._live = Live(self._render(), console=Console(file=self.stream),
                          refresh_per_second=2, transient=self.single,
                          get_renderable=self._render)
        self._live.start()

    def _render(self):
        now = time.monotonic()
        if self.single:
            from rich.text import Text
            (state, since), = self.states.values()
            return Text(f"[lab] {state} ({duration(now - since)}; "
                        f"{duration(now - self.started)} in all)")
        from rich.table import Table
        t = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
        t.add_column("cell")
        t.add_column("state")
        t.add_column("for", justify="right")
        for unit, (state, since) in self.states.items():
            t.add_row(unit, state, duration(now - since))
        return t

    def set(self, unit: str, state: str) -> bool:
        """A boot's new state; a plain line for a matrix off a terminal (a
        single boot's log lines already say as much). False when unchanged."""
        with self._lock:
            if self.states.get(unit, ("",))[0] == state:
                return False
            self.states[unit] = (state, time.monotonic())
        if not self.live and not self.single:
            self._print(f"[lab] {unit}: {state}")
        return True

    def stage(self, unit: str, stage: str, at: float) -> None:
        """A boot reached `stage` (lab.vm.base.BootStage) `at` seconds after
        qemu started: the state on a terminal, a line otherwise."""
        with self._lock:
            self.states[unit] = (f"booting: {stage}", time.monotonic())
        if not self.live:
            self._print(self._prefix(unit, f"boot: {stage} ({at:.1f}s)"))

    def cases(self, unit: str, cases: Iterable[CaseResult]) -> None:
        """Cases that have just finished, a line each."""
        for c in cases:
            self._emit(self._prefix(unit, case_line(c)))

    def log(self, unit: str, msg: str) -> None:
        """A log line of one boot: shown as is for a single boot; prefixed
        with the unit otherwise (and above the display on a terminal)."""
        self._emit(self._prefix(unit, msg))

    def _prefix(self, unit: str, text: str) -> str:
        return f"[lab] {text}" if self.single else f"[lab] {unit}: {text}"

    def _emit(self, text: str) -> None:
        live = self._live
        if live is not None:
            live.console.print(text, markup=False, highlight=False)
        else:
            self._print(text)

    def _print(self, text: str) -> None:
        with self._lock:
            print(text, file=self.stream, flush=True)

    @contextmanager
    def paused(self) -> Iterator[None]:
        """No live display meanwhile: something else draws on the terminal
        (a kernel build's own progress bar; rich allows one at a time)."""
        if self._live is None:
            yield
            return
        self._live.stop()
        self._live = None
        try:
            yield
        finally:
            if self.live:
                self._start_live()

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
        self.live = False   # later lines (after the display) are plain
