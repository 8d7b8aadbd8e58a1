"""The cache as lab keyed it before configurations were keyed by content.

Until then a build directory was <tree_id>-<hash of the fragments' names and
assignments> and an artifact's key hashed that too ("lab-kernel-v1"), so one
configuration named two ways (`lab` vs kernels/fragments/lab.config) had two
build directories. lab now keys both by content (config.config_key); this
module finds what the old keys would have named for the same fragments, so a
warm build directory (or a finished artifact) made before the change is used
as it is instead of being rebuilt. Lookups only: nothing is moved or linked
(a build directory keeps its path, which kbuild's tools/objtool records:
renaming it would relink objtool and so recompile every object).

Pure except for the stat() calls in `build_dir` and `artifact`; delete this
module once no cache holds a v1 directory.
"""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

from . import build as b
from .config import BASE_TARGETS, Fragment, display_path, in_fragments_dir

MAX_VARIANTS = 64      # 2 spellings per fragment: enough for 6 fragments


def _names(f: Fragment) -> list[str]:
    """The names the old loader could have given this fragment's file: its
    stem when it lives in kernels/fragments, else its path as displayed."""
    out = [f.path.stem] if in_fragments_dir(f.path) else []
    shown = display_path(f.path)
    return out + [shown] if shown not in out else out


def fragments_hash(names: list[str] | tuple[str, ...], fragments: list[Fragment],
                   base: tuple[str, ...] = BASE_TARGETS) -> str:
    """The v1 hash: the fragments' names and assignments, in order."""
    h = hashlib.sha256(("base:" + "+".join(base) + "\n").encode())
    for name, f in zip(names, fragments):
        h.update(f"fragment {name}\n".encode())
        h.update("\n".join(a.render() for a in f.assignments).encode() + b"\n")
    return h.hexdigest()[:16]


def config_hashes(fragments: list[Fragment]) -> list[str]:
    """Every v1 hash these fragments (this content, in this order) could have
    had, whatever spelling named each of them; names before paths."""
    spellings = list(itertools.islice(itertools.product(*map(_names, fragments)),
                                      MAX_VARIANTS))
    return list(dict.fromkeys(fragments_hash(s, fragments) for s in spellings))


def artifact_key(base: str, series_hash: str, config_hash: str, compiler: str) -> str:
    h = hashlib.sha256("\n".join(["lab-kernel-v1", base, series_hash or "-", config_hash,
                                  compiler]).encode())
    return h.hexdigest()[:20]


def build_dir(tree_id: str, fragments: list[Fragment]) -> Path | None:
    """A v1 build directory of this source and configuration: one that holds a
    finished build first, then the most recently built."""
    found = [d for d in (b.build_dir(tree_id, h) for h in config_hashes(fragments))
             if d.is_dir() and not d.is_symlink()]
    if not found:
        return None

    def rank(d: Path):
        stats = d / b.STATS_FILE
        return ((d / "vmlinux").exists(), (stats if stats.exists() else d).stat().st_mtime)
    return max(found, key=rank)


def artifact(base: str, series_hash: str, fragments: list[Fragment],
             compiler: str) -> Path | None:
    """A finished v1 artifact of this commit, series, configuration and compiler."""
    for h in config_hashes(fragments):
        adir = b.artifacts_root() / artifact_key(base, series_hash, h, compiler)
        if b.cached_artifact(adir) is not None:
            return adir
    return None
