"""The run directory: results are written as each case ends, atomically, so
an interrupted or crashed run still leaves valid junit.xml (and
junit-properties.xml, the same with each case's properties as data) and
summary.json for everything that finished."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from . import junit
from .errors import InfraError, UserError
from .paths import free_space
from .results import CaseResult, RunState, Status, SuiteResult


# a filesystem that cannot take the results is the host's problem (exit 2)
HOST_ERRNOS = (errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EIO)


def prepare_output(out: Path, *, field: str = "-o") -> Path:
    """The directory a run, a boot or test-patch writes to, created and
    proven writable before anything runs, so a bad `-o` is a one-line error
    and not a traceback halfway through: a path that is a file, or one that
    cannot be created, is bad input (exit 3); a read-only or full
    filesystem is the host's fault (exit 2)."""
    valid = "valid: a new or existing directory you can write"
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a directory; {valid}", field=field)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".lab-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        why = e.strerror or str(e)
        if e.errno in HOST_ERRNOS:
            raise InfraError(f"cannot write results to {out}: {why} (the filesystem "
                             f"holding it); give -o on a writable filesystem") from None
        raise UserError(f"cannot create or write {out}: {why}; {valid}", field=field) from None
    return out


def write_atomic(path: Path, text: str) -> None:
    """Write then rename, so a reader sees the old file or the new one; a
    failed write (a full filesystem) leaves the old one and is an
    infrastructure error naming the file and its filesystem's free space."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise InfraError(f"cannot write {path}: {e.strerror}{free_space(path.parent)}") \
            from None


SUMMARY_FORMAT = 2


class RunStore:
    """summary.json (format 2): the run's metadata, its cells, and a suite
    per boot; see the README's Results section. Safe to use from the
    threads of parallel cells."""

    def __init__(self, out: Path, meta: dict, cells: list[dict] | None = None):
        self.out = prepare_output(out)
        self.suites: list[SuiteResult] = []
        self.meta = dict(format=SUMMARY_FORMAT, run_id=out.name, **meta,
                         started=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                         state=str(RunState.RUNNING), pid=os.getpid(),
                         process_start=_process_start(os.getpid()))
        self.cells = list(cells or [])
        # told (suite, cases) after cases are recorded: a display of them
        self.on_add: Callable[[SuiteResult, tuple[CaseResult, ...]], None] | None = None
        self.exit_override: int | None = None
        self._lock = threading.RLock()
        self.flush()

    def suite(self, name: str, properties: dict | None = None) -> SuiteResult:
        # with its UTC offset: Jenkins reads a time without one as UTC
        s = SuiteResult(name, dict(properties or {}),
                        timestamp=datetime.now().astimezone().isoformat(timespec="seconds"))
        with self._lock:
            self.suites.append(s)
            self.flush()
        return s

    def add(self, suite: SuiteResult, *cases: CaseResult) -> None:
        """Record cases that have just ended (their start: now - duration)."""
        now = time.time()
        for c in cases:
            if not c.started:
                c.started = datetime.fromtimestamp(now - max(c.duration, 0.0), timezone.utc
                                                   ).isoformat(timespec="milliseconds")
        with self._lock:
            suite.cases.extend(cases)
            self.flush()
        if self.on_add is not None and cases:
            self.on_add(suite, cases)

    def summary(self) -> dict:
        """The summary; its exit_code is null until the run has ended, so a
        run that died is never read as one that passed."""
        with self._lock:
            running = self.meta["state"] == RunState.RUNNING
            return dict(self.meta, exit_code=None if running else self.exit_code(),
                        cells=self.cells, suites=[s.to_dict() for s in self.suites])

    def flush(self) -> None:
        with self._lock:
            write_atomic(self.out / junit.FILE, junit.render(self.suites))
            write_atomic(self.out / junit.PROPERTIES_FILE,
                         junit.render(self.suites, case_properties=True))
            write_atomic(self.out / "summary.json", json.dumps(self.summary(), indent=1))

    def finish(self, state: RunState = RunState.FINISHED, exit_code: int | None = None) -> int:
        with self._lock:
            self.meta["state"] = str(state)
            self.meta["ended"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            self.exit_override = exit_code
            self.flush()
            return self.exit_code()

    def exit_code(self) -> int:
        if self.exit_override is not None:
            return self.exit_override
        cases = [c for s in self.suites for c in s.cases]
        if any(c.status is Status.FAILED for c in cases):
            return 1
        if any(c.status is Status.ERROR for c in cases):
            return 2
        return 0


# --- runs that died -----------------------------------------------------------

def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of
    /proc/PID/stat): with the pid it names one process, not a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int, start: str | None) -> bool:
    now = _process_start(pid)
    return now is not None and (start is None or now == start)


def mark_if_dead(run_dir: Path) -> bool:
    """A summary.json left `running` by a lab that is gone (SIGKILL, a
    crash, a power cut) is marked crashed, exit code 2, and the scratch disks
    it left are removed. True when it did so."""
    path = run_dir / "summary.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(data, dict) or data.get("state") != RunState.RUNNING:
        return False
    pid = data.get("pid")
    if isinstance(pid, int) and _alive(pid, data.get("process_start")):
        return False
    data.update(state=str(RunState.CRASHED), exit_code=2,
                ended=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                crash_note=f"lab (pid {pid}) ended without finishing this run (killed or "
                           "crashed); marked by a later lab")
    write_atomic(path, json.dumps(data, indent=1))
    for disks in [run_dir / "disks", *run_dir.glob("*/r*/disks")]:
        shutil.rmtree(disks, ignore_errors=True)
    return True


def mark_dead_runs(root: Path) -> list[Path]:
    """mark_if_dead for every run directory under `root`; and the socket
    directories (/tmp/lab-vm-PID-*) of lab processes that are gone."""
    marked = [d for d in sorted(root.glob("*/")) if mark_if_dead(d)] if root.is_dir() else []
    for d in Path(tempfile.gettempdir()).glob("lab-vm-*-*"):
        try:
            pid = int(d.name.split("-")[2])
        except (IndexError, ValueError):
            continue
        if _process_start(pid) is None:
            shutil.rmtree(d, ignore_errors=True)
    return marked
