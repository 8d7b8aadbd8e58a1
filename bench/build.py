#!/usr/bin/env python3
"""Benchmark lab's kernel builds against raw `make` on the same tree, in the
same run:

    cold         lab: fresh build dir, no artifact     raw: make all in a fresh O= dir
    cache hit    lab: the same spec again              (raw has no equivalent)
    no-op        lab: artifact removed, build dir kept raw: make all in that build dir
    one patch    lab: a series changing mm/gup.c       raw: git apply + make all

Raw runs use the same compiler command (ccache on, unless --no-ccache) and -j.
No-op and one-patch run --repeat rounds, alternating which side goes first,
and report medians. The one-patch change adds a uniquely named symbol to mm/gup.c, so neither side
gets a ccache hit for it. Not run in CI: a cold build takes ~15 min on 2 cores.

    python3 bench/build.py [--tree PATH | --linux-source] [--fragment F ...]
                           [--skip-cold] [--no-ccache] [--repeat N] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lab.kernel import source as ksource    # noqa: E402
from lab.kernel.api import build_kernel, plan   # noqa: E402
from lab.kernel.kbuild import KBuild   # noqa: E402
from lab.kernel.spec import DEFAULT_FRAGMENTS, BuildSpec  # noqa: E402


def timed(fn, *a, **kw):
    start = time.monotonic()
    out = fn(*a, **kw)
    return time.monotonic() - start, out


def gup_patch(repo: Path, base: str, out: Path, tag: str) -> Path:
    """A one-patch series (format-patch text) adding a unique symbol to mm/gup.c,
    made with git plumbing in a temporary index: lab's working tree is not touched."""
    text = ksource.git(repo, "show", f"{base}:mm/gup.c").stdout + f"\nint lab_bench_{tag};\n"
    with tempfile.TemporaryDirectory(prefix="lab-bench-idx-") as td:
        env = {"GIT_INDEX_FILE": str(Path(td) / "index")}
        blob = ksource.git(repo, "hash-object", "-w", "--stdin", input=text).stdout.strip()
        ksource.git(repo, "read-tree", base, env=env)
        ksource.git(repo, "update-index", "--cacheinfo", f"100644,{blob},mm/gup.c", env=env)
        tree = ksource.git(repo, "write-tree", env=env).stdout.strip()
    commit = ksource.git(repo, "commit-tree", tree, "-p", base, "-m",
                         f"mm/gup: bench marker {tag}").stdout.strip()
    out.write_text(ksource.git(repo, "format-patch", "--stdout", "-1", commit).stdout)
    return out


def alternate(a, b, n: int) -> tuple[list[float], list[float]]:
    """Run a and b n times each, swapping who goes first every round."""
    ra, rb = [], []
    for i in range(n):
        if i % 2 == 0:
            ra.append(a())
            rb.append(b())
        else:
            rb.append(b())
            ra.append(a())
        print(f"  round {i + 1}: lab {ra[-1]:.2f} s, raw {rb[-1]:.2f} s", flush=True)
    return ra, rb


def artifact_dir_of(spec: BuildSpec) -> Path:
    o = build_kernel(spec, progress=False)
    if not o.ok:
        raise SystemExit(f"build failed: {[c.message for c in o.steps]}")
    return o.artifact_dir


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--tree", type=Path)
    src.add_argument("--linux-source", action="store_true", default=True)
    ap.add_argument("--fragment", action="append")
    ap.add_argument("--skip-cold", action="store_true")
    ap.add_argument("--no-ccache", action="store_true")
    ap.add_argument("--repeat", type=int, default=3, help="rounds per comparison (median)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    if args.no_ccache:
        os.environ["CCACHE_DISABLE"] = "1"
    frags = tuple(args.fragment) if args.fragment else DEFAULT_FRAGMENTS
    spec = BuildSpec(tree=args.tree, linux_source=args.tree is None, fragments=frags)
    p = plan(spec)
    tree, bdir, adir, cc = p.tree, p.build_dir, p.artifact_dir, p.cc
    results: dict[str, dict[str, float]] = {}

    def report(name: str, lab_s: float, raw_s: float | None) -> None:
        results[name] = {"lab_s": round(lab_s, 3)}
        line = f"{name:12s} lab {lab_s:8.3f} s"
        if raw_s is not None:
            results[name].update(raw_s=round(raw_s, 2), ratio=round(lab_s / raw_s, 3))
            line += f"   raw make {raw_s:8.2f} s   ratio {lab_s / raw_s:5.2f}"
        print(line, flush=True)

    # cold: lab in a fresh build dir vs raw make in another fresh O= dir
    if not args.skip_cold:
        shutil.rmtree(adir, ignore_errors=True)
        shutil.rmtree(bdir, ignore_errors=True)
        lab_s, _ = timed(artifact_dir_of, spec)
        raw_dir = Path(tempfile.mkdtemp(prefix="lab-bench-raw-", dir=bdir.parent))
        try:
            raw = KBuild(tree.repo, raw_dir, cc=cc)
            shutil.copy(bdir / ".config", raw_dir / ".config")
            with ksource.tree_lock(tree.tree_id):
                ksource.checkout(tree.repo, tree.base)
                raw_s, r = timed(raw.run, "all")
            if not r.ok:
                raise SystemExit(f"raw make failed:\n{r.tail()}")
        finally:
            shutil.rmtree(raw_dir, ignore_errors=True)
        report("cold", lab_s, raw_s)
    else:
        artifact_dir_of(spec)   # make sure the base build exists

    # cache hit
    hits = [timed(artifact_dir_of, spec)[0] for _ in range(args.repeat)]
    report("cache-hit", statistics.median(hits), None)

    k = KBuild(tree.repo, bdir, cc=cc)

    def to_base() -> None:
        """The tree at base and the build dir up to date with it (not timed)."""
        with ksource.tree_lock(tree.tree_id):
            ksource.checkout(tree.repo, tree.base)
            if not k.run("all").ok:
                raise SystemExit("make failed at base")

    # no-op: artifact gone, build dir up to date; lab and raw alternate who goes
    # first (the machine's page cache and load favour the second)
    def lab_noop() -> float:
        shutil.rmtree(adir, ignore_errors=True)
        return timed(artifact_dir_of, spec)[0]

    def raw_noop() -> float:
        with ksource.tree_lock(tree.tree_id):
            ksource.checkout(tree.repo, tree.base)
            return timed(k.run, "all")[0]

    to_base()
    labs, raws = alternate(lab_noop, raw_noop, args.repeat)
    report("no-op", statistics.median(labs), statistics.median(raws))

    # one patch to mm/gup.c: lab applies a series and builds incrementally; raw
    # applies the same kind of change with git apply and runs make. Both start
    # from the tree at base with an up-to-date build dir.
    td = Path(tempfile.mkdtemp(prefix="lab-bench-"))

    def lab_patch() -> float:
        to_base()
        p = gup_patch(tree.repo, tree.base, td / "lab.patch", f"lab{time.time_ns()}")
        return timed(artifact_dir_of, BuildSpec(tree=args.tree, linux_source=args.tree is None,
                                                series=(str(p),), fragments=frags))[0]

    def raw_patch() -> float:
        to_base()
        p = gup_patch(tree.repo, tree.base, td / "raw.patch", f"raw{time.time_ns()}")
        with ksource.tree_lock(tree.tree_id):
            ksource.git(tree.repo, "apply", str(p))
            secs, r = timed(k.run, "all")
            ksource.git(tree.repo, "checkout", "--force", "--quiet", "--detach", tree.base)
        if not r.ok:
            raise SystemExit(f"raw make failed:\n{r.tail()}")
        return secs

    try:
        labs, raws = alternate(lab_patch, raw_patch, args.repeat)
    finally:
        shutil.rmtree(td, ignore_errors=True)
    report("one-patch", statistics.median(labs), statistics.median(raws))
    to_base()

    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
