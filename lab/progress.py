"""One live display for a whole run: a line per boot (cell and repeat) with
its state (waiting, building, booting, workload N of M, verdict) and how
long it has been in it. On a terminal it is a rich live table; otherwise
(CI logs, pipes) each change is one plain line, and so are log messages."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO


class Progress:
    def __init__(self, units: list[str], stream: TextIO | None = None,
                 live: bool | None = None):
        self.stream = stream or sys.stderr
        self.states = {u: ("waiting", time.monotonic()) for u in units}
        self.single = len(units) == 1
        self.live = (self.stream.isatty() if live is None else live) and not self.single
        self._lock = threading.Lock()
        self._live = None
        if self.live:
            from rich.console import Console
            from rich.live import Live
            self._live = Live(self._table(), console=Console(file=self.stream),
                              refresh_per_second=2, transient=False,
                              get_renderable=self._table)
            self._live.start()

    def _table(self):
        from rich.table import Table
        t = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
        t.add_column("cell")
        t.add_column("state")
        t.add_column("for", justify="right")
        now = time.monotonic()
        for unit, (state, since) in self.states.items():
            t.add_row(unit, state, f"{now - since:.0f}s")
        return t

    def set(self, unit: str, state: str) -> None:
        with self._lock:
            if self.states.get(unit, ("",))[0] == state:
                return
            self.states[unit] = (state, time.monotonic())
        if not self.live and not self.single:
            self._print(f"[lab] {unit}: {state}")

    def log(self, unit: str, msg: str) -> None:
        """A log line of one boot: shown as is for a single boot; prefixed
        with the unit otherwise (and above the table on a terminal)."""
        text = f"[lab] {msg}" if self.single else f"[lab] {unit}: {msg}"
        if self._live is not None:
            self._live.console.print(text, markup=False, highlight=False)
        else:
            self._print(text)

    def _print(self, text: str) -> None:
        with self._lock:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
