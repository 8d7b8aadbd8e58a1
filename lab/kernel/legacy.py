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

from ..errors import UserError
from ..paths import PACKAGE_DIR
from . import build as b
from .config import (
    BASE_TARGETS,
    FRAGMENTS_DIR,
    Assignment,
    Fragment,
    display_path,
    in_fragments_dir,
    load_fragment,
)

MAX_VARIANTS = 64      # spellings per configuration tried, at most

# one way the old loader could have named a fragment: (name, its assignments)
Spelling = tuple[str, tuple[Assignment, ...]]


def _spellings(f: Fragment) -> list[Spelling]:
    """The names the old loader could have given this fragment: its stem when
    it lives in kernels/fragments, its path as displayed, and the stem of any
    file of kernels/fragments that asks for exactly the same (so a copy of
    lab.config, or another checkout's, finds what `lab` built)."""
    out: list[Spelling] = []
    if in_fragments_dir(f.path):
        out.append((f.path.stem, f.assignments))
    out.append((display_path(f.path), f.assignments))
    try:    # the old loader showed a checkout's files relative to the checkout
        out.append((str(f.path.resolve().relative_to(PACKAGE_DIR.parent)), f.assignments))
    except ValueError:
        pass
    mine = {a.symbol: a.value for a in f.assignments}
    for path in sorted(FRAGMENTS_DIR.glob("*.config")):
        try:
            other = load_fragment(str(path))
        except UserError:
            continue
        if {a.symbol: a.value for a in other.assignments} == mine:
            out.append((path.stem, other.assignments))
    return list(dict.fromkeys(out))


def fragments_hash(spelling: list[Spelling] | tuple[Spelling, ...],
                   base: tuple[str, ...] = BASE_TARGETS) -> str:
    """The v1 hash: the fragments' names and assignments, in order."""
    h = hashlib.sha256(("base:" + "+".join(base) + "\n").encode())
    for name, assignments in spelling:
        h.update(f"fragment {name}\n".encode())
        h.update("\n".join(a.render() for a in assignments).encode() + b"\n")
    return h.hexdigest()[:16]


def config_hashes(fragments: list[Fragment]) -> list[str]:
    """Every v1 hash these fragments (this content, in this order) could have
    had, whatever spelling named each of them; names before paths."""
    spellings = itertools.islice(itertools.product(*map(_spellings, fragments)),
                                 MAX_VARIANTS)
    return list(dict.fromkeys(fragments_hash(s) for s in spellings))


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
