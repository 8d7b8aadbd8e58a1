"""Where lab keeps things: the user cache (images, kernels, build dirs) and
the project root (recipes, jobs, fragments)."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """$LAB_CACHE_DIR, else $XDG_CACHE_HOME/lab, else ~/.cache/lab."""
    base = os.environ.get("LAB_CACHE_DIR")
    if base:
        p = Path(base)
    else:
        p = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lab"
    p.mkdir(parents=True, exist_ok=True)
    return p


def images_dir() -> Path:
    """Where image recipes live: $LAB_IMAGES_DIR or <project>/images."""
    return Path(os.environ.get("LAB_IMAGES_DIR") or PROJECT_ROOT / "images")


def runs_dir() -> Path:
    return Path(os.environ.get("LAB_RUNS_DIR") or Path.cwd() / "runs")


@contextmanager
def cache_lock(name: str) -> Iterator[None]:
    """An exclusive lock on one thing in the cache, between lab processes and
    between the threads of one (flock locks an open file description)."""
    d = cache_dir() / "locks"
    d.mkdir(parents=True, exist_ok=True)
    with open(d / f"{name}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def make_once(out: Path, make: Callable[[Path], None]) -> Path:
    """`out`, made by make(tmp) then renamed into place, once: parallel cells
    (threads or lab processes) that need the same cached file wait for the
    first to make it instead of writing one temporary file together."""
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with cache_lock(f"{out.parent.name}-{out.name}"):
        if out.exists():
            return out
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        try:
            make(tmp)
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
    return out


def free_space(path: Path) -> str:
    """' (N KiB free there)' for the filesystem holding `path`, or '': for
    messages about a write that failed."""
    try:
        st = os.statvfs(path if path.exists() else path.parent)
    except OSError:
        return ""
    return f" ({st.f_bavail * st.f_frsize // 1024} KiB free there)"
