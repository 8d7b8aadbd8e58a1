"""Building a kernel in a persistent out-of-tree build directory and turning
the result into an artifact directory (the layout KernelArtifact.from_dir reads):

    bzImage  System.map  .config  vmlinux  gup_test  build.log
    modules/lib/modules/<release>/      metadata.json

metadata.json is written (state "building") before make starts and rewritten
at the end (state "done" or "failed"); writes are atomic.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import threading
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from .. import proc
from ..paths import cache_dir
from .artifact import KernelArtifact
from .kbuild import KBuild, shell_line

STATE_BUILDING = "building"
STATE_DONE = "done"
STATE_FAILED = "failed"
STATS_FILE = ".lab-build-stats.json"
GUP_TEST_DIRS = ("tools/testing/selftests/mm", "tools/testing/selftests/vm")

_ERROR_LINE = re.compile(
    r"(\berror:|\bError \d+|undefined reference|fatal error|No rule to make target|"
    r"^make(\[\d+\])?: \*\*\*|multiple definition|ld: .*: in function)")


# --- keys and places ------------------------------------------------------

def build_key(tree_id: str, config_key: str) -> str:
    """A build directory's identity: the source and the configuration's
    content (config.config_key), never how its fragments were named."""
    return f"{tree_id}-{config_key}"


def artifact_key(build_key: str, commit: str, series_hash: str, toolchain: str) -> str:
    """An artifact's identity: its build directory's key, the base commit, the
    series' content and the toolchain (compiler and linker versions)."""
    h = hashlib.sha256("\n".join(["lab-kernel-v2", build_key, commit, series_hash or "-",
                                  toolchain]).encode())
    return h.hexdigest()[:20]


def artifacts_root() -> Path:
    p = cache_dir() / "kernels"
    p.mkdir(parents=True, exist_ok=True)
    return p


def build_dir(tree_id: str, config_key: str) -> Path:
    return cache_dir() / "kbuild" / build_key(tree_id, config_key)


class DirState(str, Enum):
    """What a build directory holds, so what its next build costs."""
    WARM = "warm"          # a finished build: the next make recompiles what changed
    PARTIAL = "partial"    # configured or half built (a build failed or was stopped)
    COLD = "cold"          # absent: the first build of this source and configuration

    @classmethod
    def of(cls, bdir: Path) -> "DirState":
        if (bdir / "vmlinux").exists():
            return cls.WARM
        return cls.PARTIAL if bdir.is_dir() else cls.COLD


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def cached_artifact(adir: Path) -> KernelArtifact | None:
    """The artifact in `adir` if a build finished there, else None."""
    meta = read_json(adir / "metadata.json")
    if meta.get("state") != STATE_DONE or not (adir / "bzImage").exists():
        return None
    return KernelArtifact.from_dir(adir)


# --- the compiler's error lines --------------------------------------------

def error_lines(text: str, limit: int = 60) -> list[str]:
    """The lines of a build log that say what broke (first ones first)."""
    out = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if _ERROR_LINE.search(line):
            # gcc prints "In function ..." / the source line right around the error
            if i > 0 and "In function" in lines[i - 1] and lines[i - 1] not in out:
                out.append(lines[i - 1])
            out.append(line)
            for nxt in lines[i + 1:i + 3]:
                if re.match(r"^\s+\d+ \|| +\|", nxt):
                    out.append(nxt)
        if len(out) >= limit:
            break
    return out


# --- progress ---------------------------------------------------------------

class BuildProgress:
    """A file-like sink for make's output: counts lines, drives a rich
    progress bar whose total is the line count of the previous build."""

    def __init__(self, title: str, estimate: int | None, enabled: bool):
        self.lines = 0
        self.last = ""
        self._lock = threading.Lock()
        self._progress = None
        if enabled:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn,
                                       TextColumn, TimeElapsedColumn, TimeRemainingColumn)
            console = Console(file=sys.stderr)
            if console.is_terminal:
                cols = [SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                        MofNCompleteColumn(), TimeElapsedColumn()]
                if estimate:
                    cols.append(TimeRemainingColumn())
                cols.append(TextColumn("{task.fields[last]}", style="dim"))
                self._progress = Progress(*cols, console=console, transient=True)
                self._task = self._progress.add_task(title, total=estimate or None, last="")
                self._progress.start()
        self._estimate = estimate

    def write(self, s: str) -> None:
        with self._lock:
            self.lines += 1
            if not s.startswith("make"):
                self.last = s.strip()[:60]
            if self._progress is not None:
                total = self._estimate
                if total and self.lines > total:
                    total = self.lines + 1
                self._progress.update(self._task, completed=self.lines, total=total,
                                      last=self.last)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def line_estimate(bdir: Path, tree_id: str) -> int | None:
    """Lines the previous build of this tree printed: the same build dir's
    last build, or (for a fresh build dir) the last full build of the tree."""
    own = read_json(bdir / STATS_FILE)
    if own.get("lines"):
        return int(own["lines"])
    full = read_json(cache_dir() / "kbuild" / f"{tree_id}.full-build.json")
    return int(full["lines"]) if full.get("lines") else None


def record_stats(bdir: Path, tree_id: str, lines: int, seconds: float, fresh: bool) -> None:
    data = {"lines": lines, "seconds": round(seconds, 1), "when": int(time.time())}
    write_json(bdir / STATS_FILE, data)
    if fresh:
        write_json(cache_dir() / "kbuild" / f"{tree_id}.full-build.json", data)


# --- the steps --------------------------------------------------------------

@dataclass
class MakeResult:
    ok: bool
    seconds: float
    log: Path
    errors: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)


def run_make(kb: KBuild, *, tree_id: str, log: Path, progress: bool,
             title: str = "building kernel") -> MakeResult:
    """`make all` in the build directory, the whole output kept in `log`."""
    fresh = not (kb.objtree / "vmlinux").exists()
    sink = BuildProgress(title, line_estimate(kb.objtree, tree_id), progress)
    start = time.monotonic()
    try:
        r = kb.run("all", log=log, echo=sink)
    finally:
        sink.close()
    seconds = time.monotonic() - start
    cmd = shell_line(kb.argv("all"))
    if not r.ok:
        errs = error_lines(log.read_text(errors="replace")) or r.tail(30).splitlines()
        return MakeResult(False, seconds, log, errs, [cmd])
    record_stats(kb.objtree, tree_id, sink.lines, seconds, fresh)
    return MakeResult(True, seconds, log, [], [cmd])


def has_modules(config: Path) -> bool:
    return bool(re.search(r"^CONFIG_MODULES=y$", config.read_text(), re.M))


def install_modules(kb: KBuild, adir: Path, log: Path) -> tuple[proc.Result | None, str]:
    """modules_install into <adir>/modules (stripped); skipped without CONFIG_MODULES."""
    dest = adir / "modules"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    variables = {"INSTALL_MOD_PATH": str(dest), "INSTALL_MOD_STRIP": "1"}
    cmd = shell_line(kb.argv("modules_install", variables=variables))
    if not has_modules(kb.objtree / ".config"):
        return None, cmd
    return kb.run("modules_install", variables=variables, log=log), cmd


def build_gup_test(kb: KBuild, log: Path) -> tuple[Path | None, proc.Result | None, str]:
    """The gup_test selftest, linked statically, built from the same tree into
    the build directory (lib.mk names targets by their absolute output path)."""
    for sub in GUP_TEST_DIRS:
        src = kb.srctree / sub
        if (src / "gup_test.c").exists():
            break
    else:
        return None, None, ""
    out = kb.objtree / "selftests" / Path(sub).name
    out.mkdir(parents=True, exist_ok=True)
    target = out / "gup_test"
    argv = ["make", "-C", str(src), f"OUTPUT={out}", "LDFLAGS=-static", str(target)]
    hdrs = kb.objtree / "usr" / "include"
    if hdrs.is_dir():
        argv.insert(-1, f"KHDR_INCLUDES=-isystem {hdrs}")
    r = proc.run(argv, timeout=600, log=log, env=kb.env())
    return (target if r.ok and target.exists() else None), r, shell_line(argv)


def copy_outputs(kb: KBuild, adir: Path) -> None:
    o = kb.objtree
    for src, name in ((o / "arch" / "x86" / "boot" / "bzImage", "bzImage"),
                      (o / "System.map", "System.map"), (o / ".config", ".config"),
                      (o / "vmlinux", "vmlinux")):
        if src.exists():
            tmp = adir / (name + ".tmp")
            shutil.copyfile(src, tmp)
            os.replace(tmp, adir / name)
