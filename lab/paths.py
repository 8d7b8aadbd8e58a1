"""Where lab keeps things: the user cache (images, kernels, build dirs), the
runs, and lab's data (image recipes, config fragments, example jobs), with
the user's own directories searched before it."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

PACKAGE_DIR = Path(__file__).resolve().parent
# lab's data: images/ (recipes), kernels/ (fragments/, series/) and jobs/.
# The repository keeps them at its top level; lab/data/<folder> are symlinks
# to them, so a checkout (PYTHONPATH=.) and an editable install read the files
# being edited, and a wheel holds copies (package data: setuptools follows the
# links when it builds). One path finds them in all three.
DATA_DIR = PACKAGE_DIR / "data"
DATA_FOLDERS = ("images", "kernels", "jobs")
# The old name: the directory that images/, kernels/ and jobs/ are joined to.
PROJECT_ROOT = DATA_DIR


@dataclass(frozen=True)
class SearchPath:
    """Where files of one kind are found by name: the directories in an
    environment variable (separated by ':', earlier first), then lab's own.
    A user's file shadows lab's file of the same name."""

    kind: str        # what the files are, for messages: "image recipe"
    env: str         # the variable naming the user's directories
    builtin: Path    # lab's own directory
    suffix: str      # ".yaml": the name is the file name without it

    def dirs(self) -> list[Path]:
        user = [Path(d).expanduser() for d in os.environ.get(self.env, "").split(os.pathsep) if d]
        return [*user, self.builtin]

    def find(self, name: str) -> Path | None:
        """The file called `name` (with or without the suffix), or None."""
        if not name or os.sep in name or name in (".", ".."):
            return None
        file = name if name.endswith(self.suffix) else name + self.suffix
        for d in self.dirs():
            if (d / file).is_file():
                return d / file
        return None

    def names(self) -> list[str]:
        """Every name found, in order: the user's first, each once."""
        seen: dict[str, None] = {}
        for d in self.dirs():
            if d.is_dir():
                seen.update((p.name[:-len(self.suffix)], None)
                            for p in sorted(d.glob(f"*{self.suffix}")) if p.is_file())
        return list(seen)

    def where(self) -> str:
        """Where names are looked up, for messages."""
        return f"${self.env} ({os.environ.get(self.env) or 'unset'}) and {self.builtin}"


IMAGES = SearchPath("image recipe", "LAB_IMAGES_DIR", DATA_DIR / "images", ".yaml")
FRAGMENTS = SearchPath("config fragment", "LAB_FRAGMENTS_DIR",
                       DATA_DIR / "kernels" / "fragments", ".config")
JOBS = SearchPath("job", "LAB_JOBS_DIR", DATA_DIR / "jobs", ".yaml")


def data_path(p: Path) -> str | None:
    """'kernels/fragments/lab.config' for a file of lab's data however it was
    reached (through lab/data or the top-level folder, from a checkout or an
    installed wheel); None for any other file."""
    real = p.resolve()
    for folder in DATA_FOLDERS:
        root = (DATA_DIR / folder).resolve()
        if real.is_relative_to(root):
            return str(Path(folder) / real.relative_to(root))
    return None


def find_job(arg: str | Path) -> Path:
    """The job file `lab run ARG` means: ARG when it exists; else a job of
    that name in $LAB_JOBS_DIR or lab's jobs, so `lab run smoke` and the
    README's `lab run jobs/smoke.yaml` work from any directory. ARG as it
    was when nothing matches (reading it then says so)."""
    p = Path(arg)
    if p.exists() or p.is_absolute():
        return p
    parts = p.parts
    names = [str(p)] + ([str(Path(*parts[1:]))] if len(parts) > 1 and parts[0] == "jobs" else [])
    for name in names:
        for d in JOBS.dirs():
            for cand in (d / name, d / f"{name}{JOBS.suffix}"):
                if cand.is_file():
                    return cand
    return p


def cache_dir() -> Path:
    """$LAB_CACHE_DIR, else $XDG_CACHE_HOME/lab, else ~/.cache/lab."""
    base = os.environ.get("LAB_CACHE_DIR")
    if base:
        p = Path(base)
    else:
        p = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lab"
    p.mkdir(parents=True, exist_ok=True)
    return p


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
