"""The one subprocess wrapper: argv lists, timeouts, process groups, output
teed to a log. Never shell=True.

Every child is started in its own process group so a timeout (or lab's own
exit) can kill the whole tree, and every long-lived child is registered so
that no process outlives lab (see `reap_all`).
"""

from __future__ import annotations

import atexit
import ctypes
import os
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Sequence

from .errors import CommandTimeout, InfraError


@dataclass(frozen=True)
class Result:
    """What a finished command did."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    duration: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def tail(self, n: int = 20) -> str:
        lines = (self.stdout + self.stderr).splitlines()
        return "\n".join(lines[-n:])


def which(binary: str, package: str | None = None) -> str:
    """Path of `binary`, or an InfraError naming the package to install."""
    path = shutil.which(binary)
    if path is None:
        hint = f" (install the Debian package '{package}')" if package else ""
        raise InfraError(f"'{binary}' not found on PATH{hint}")
    return path


# --- long-lived children -------------------------------------------------

_live: set[subprocess.Popen] = set()
_live_lock = threading.Lock()


def _kill_group(p: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(p.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _die_with_parent() -> None:
    """In the child: get SIGKILL when lab dies, even by SIGKILL (PR_SET_PDEATHSIG)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def spawn(argv: Sequence[str], *, cwd: str | Path | None = None,
          env: dict[str, str] | None = None, stdout: IO | int | None = subprocess.DEVNULL,
          stderr: IO | int | None = subprocess.STDOUT,
          stdin: IO | int | None = subprocess.DEVNULL) -> subprocess.Popen:
    """Start a long-lived child in its own process group, registered for reaping
    and killed by the kernel if lab itself dies."""
    argv = [str(a) for a in argv]
    try:
        p = subprocess.Popen(argv, cwd=cwd, env=env, stdout=stdout, stderr=stderr,
                             stdin=stdin, start_new_session=True,
                             preexec_fn=_die_with_parent)
    except FileNotFoundError as e:
        raise InfraError(f"cannot run {argv[0]}: {e.strerror}") from e
    with _live_lock:
        _live.add(p)
    return p


def forget(p: subprocess.Popen) -> None:
    with _live_lock:
        _live.discard(p)


def terminate(p: subprocess.Popen, grace: float = 5.0) -> int | None:
    """SIGTERM the child's group, wait `grace`, then SIGKILL. Returns its status."""
    if p.poll() is None:
        _kill_group(p, signal.SIGTERM)
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            _kill_group(p, signal.SIGKILL)
            p.wait(10)
    else:
        _kill_group(p, signal.SIGKILL)  # stragglers left in its group
    forget(p)
    return p.returncode


def reap_all() -> None:
    """Kill every registered child still running (atexit, signal handlers)."""
    with _live_lock:
        live = list(_live)
    for p in live:
        terminate(p, grace=2.0)


atexit.register(reap_all)


# --- short commands -------------------------------------------------------

def run(argv: Sequence[str], *, timeout: float, cwd: str | Path | None = None,
        env: dict[str, str] | None = None, log: Path | None = None,
        input: str | None = None, check: bool = False,
        echo: IO | None = None) -> Result:
    """Run argv to completion with a timeout; output captured and teed to `log`.

    On timeout the whole process group is killed and CommandTimeout carries
    the tail of the output. With check=True a nonzero exit raises InfraError.
    """
    argv = [str(a) for a in argv]
    start = time.monotonic()
    logf = open(log, "a", encoding="utf-8", errors="replace") if log else None
    out_chunks: list[str] = []
    err_chunks: list[str] = []
    tail: deque[str] = deque(maxlen=40)
    try:
        try:
            p = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE,
                                 stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                                 start_new_session=True, text=True, errors="replace")
        except FileNotFoundError as e:
            raise InfraError(f"cannot run {argv[0]}: {e.strerror}") from e
        with _live_lock:
            _live.add(p)

        def pump(stream, chunks):
            for line in stream:
                chunks.append(line)
                tail.append(line)
                if logf:
                    logf.write(line)
                    logf.flush()
                if echo:
                    echo.write(line)
                    echo.flush()

        threads = [threading.Thread(target=pump, args=(p.stdout, out_chunks), daemon=True),
                   threading.Thread(target=pump, args=(p.stderr, err_chunks), daemon=True)]
        for t in threads:
            t.start()
        if input is not None:
            try:
                p.stdin.write(input)
                p.stdin.close()
            except BrokenPipeError:
                pass
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            _kill_group(p)
            p.wait()
            for t in threads:
                t.join(5)
            raise CommandTimeout(argv, timeout, "".join(tail)) from None
        except BaseException:      # Ctrl-C / SIGTERM while waiting: its group dies too
            _kill_group(p)
            p.wait()
            raise
        finally:
            forget(p)
        for t in threads:
            t.join()
        _kill_group(p)  # nothing of it may linger in its group
    finally:
        if logf:
            logf.close()
    result = Result(tuple(argv), p.returncode, "".join(out_chunks), "".join(err_chunks),
                    time.monotonic() - start)
    if check and not result.ok:
        raise InfraError(f"command failed with exit {result.returncode}: {' '.join(argv)}\n"
                         + result.tail())
    return result
