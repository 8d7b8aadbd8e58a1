"""`lab build` and `lab test-patch`: argument parsing and printing only; the
work is in lab.kernel.api (and lab.runner for the workloads)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import EXIT_OK, EXIT_TESTS_FAILED, UserError
from ..paths import JOBS, find_job
from ..kernel.outcome import StepState
from ..kernel.spec import DEFAULT_FRAGMENTS, BuildSpec, check_upto
from .core import output_option

DEFAULT_JOBS = ("jobs/gup.yaml", "jobs/smoke.yaml")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "build", help="build a kernel from a tree plus a patch series",
        description="Build a kernel (cached) and print its artifact directory. "
                    "Exit 0 built, 1 the series does not apply or the build failed, "
                    "3 bad input.")
    _source_args(p)
    p.add_argument("--no-progress", action="store_true", help="no live progress display")
    p.add_argument("--dry-run", action="store_true",
                   help="print the plan (commit, series, configuration key, build directory "
                        "and whether it is warm, artifact and whether it is cached) and exit")
    p.set_defaults(func=build_handler)

    t = subparsers.add_parser(
        "test-patch", help="build a tree plus a series, then run the default workload job",
        description="Build the kernel, boot it and run the default workload job "
                    f"({' or '.join(DEFAULT_JOBS)}) with it; JUnit includes the apply and "
                    "build cases.")
    _source_args(t)
    t.add_argument("--job", help="workload job file or job name (default: "
                   f"{' if it exists, else '.join(DEFAULT_JOBS)})")
    output_option(t)
    t.add_argument("--no-progress", action="store_true", help="no live progress display")
    t.set_defaults(func=test_patch_handler)


def _source_args(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--tree", type=Path, help="kernel git repository (never modified)")
    src.add_argument("--linux-source", action="store_true",
                     help="Debian's /usr/src/linux-source-*.tar.xz")
    p.add_argument("--ref", help="branch, tag or commit of --tree (default HEAD)")
    p.add_argument("--series", action="append", default=[], metavar="S",
                   help="mbox, directory of patches, patch file or git range A..B; repeat "
                        "for a list of patch files (together one series)")
    p.add_argument("--series-upto", metavar="N",
                   help="apply only patches 1..N of the series, on purpose (e.g. to bisect "
                        "inside it); without it a series with missing patches is refused")
    p.add_argument("--fragment", action="append", metavar="F",
                   help="config fragment: a name ($LAB_FRAGMENTS_DIR's, then lab's "
                        "kernels/fragments) or a path "
                        f"(default: {' '.join(DEFAULT_FRAGMENTS)})")


def spec_from_args(args) -> BuildSpec:
    if getattr(args, "ref", None) and not getattr(args, "tree", None):
        raise UserError("--ref needs --tree", field="--ref")
    upto = getattr(args, "series_upto", None)
    if upto is not None:
        if not args.series:
            raise UserError("needs --series (it says how many of the series' patches to "
                            "apply)", field="--series-upto")
        upto = check_upto(upto, file=None, field="--series-upto")
    return BuildSpec(tree=args.tree, ref=args.ref,
                     linux_source=bool(getattr(args, "linux_source", False)),
                     series=tuple(args.series or ()),
                     fragments=tuple(args.fragment) if args.fragment else DEFAULT_FRAGMENTS,
                     series_upto=upto, upto_at=(None, "--series-upto"))


def report_failure(steps, stream=None) -> None:
    stream = stream or sys.stderr
    for st in steps:
        if st.state is StepState.FAILED:
            print(f"lab: {st.step} failed: {st.message}", file=stream)
            if st.details:
                print(st.details, file=stream)


_DIR_STATE = {
    "warm": "warm: a finished build is there; make recompiles only what changed",
    "partial": "partial: configured or half built (a build failed or was stopped); make "
               "goes on from there",
    "cold": "cold: the first build of this source and configuration",
}


def print_plan(p, stream=None) -> None:
    """`lab build --dry-run`: what would be built, where, and what it costs."""
    from ..kernel.api import cached_outcome, reproducer
    stream = stream or sys.stdout
    hit = cached_outcome(p)
    t, s = p.tree, p.series
    rows = [("source", f"{t.tree_id} at {t.base[:12]} ({t.origin})"),
            ("series", "none" if s is None else
             f"{len(s.patches)} patch(es){f' ({s.prefix})' if s.prefix else ''}, "
             f"hash {s.hash}: {s.name}"),
            ("fragments", ", ".join(f"{f.name} ({f.path})" for f in p.fragments)),
            ("config key", f"{p.config_key} (the fragments' content, not their names)"),
            ("build dir", str(p.build_dir)),
            ("", _DIR_STATE[p.build_dir_state.value]),
            *([("", ("made before build dirs were keyed by content: used as it is, "
                     "under its old name"))] if p.legacy_build_dir else []),
            ("artifact", str(hit.artifact_dir if hit else p.artifact_dir)),
            ("", "cached: nothing to build" if hit else "to build"),
            ("toolchain", f"{p.compiler}; {p.linker}"),
            ("reproduce", reproducer(p.spec, t, p.fragments))]
    if s is not None:
        rows[2:2] = [("", subject) for subject in s.subjects]
    for k, v in rows:
        print(f"{k:11s}{v}", file=stream)


def build_handler(args) -> int:
    from ..kernel.api import build_kernel, plan
    if args.dry_run:
        print_plan(plan(spec_from_args(args)))
        return EXIT_OK
    outcome = build_kernel(spec_from_args(args), progress=not args.no_progress)
    if not outcome.ok:
        report_failure(outcome.steps)
        return EXIT_TESTS_FAILED
    print(outcome.artifact_dir)
    return EXIT_OK


def default_job() -> Path:
    """jobs/gup.yaml (else jobs/smoke.yaml) in the current directory, else the
    job of that name in $LAB_JOBS_DIR or lab's jobs."""
    for rel in DEFAULT_JOBS:
        p = find_job(rel)
        if p.is_file():
            return p
    raise UserError(f"no default job: none of {', '.join(DEFAULT_JOBS)} exists here or in "
                    f"{JOBS.where()}; give --job", field="--job")


def test_patch_handler(args) -> int:
    """Run the job with a kernel built from the tree plus the series, through
    the run core: JUnit gets the apply and build cases first; a series that
    does not apply or a build that fails is written without booting, exit 1."""
    from ..job import KernelKind, KernelSpec, load_job
    from ..kernel.api import plan
    from ..runner import run_job
    spec = spec_from_args(args)
    if not spec.series:
        raise UserError("test-patch needs the patches to test: --series S (an mbox, a "
                        "directory of patches, patch files or a git range A..B)",
                        field="--series")
    job_path = args.job or default_job()
    job = load_job(job_path)          # bad job files fail before the long build
    plan(spec)                        # and so do a bad series or fragment
    job = job.with_kernel(KernelSpec(KernelKind.BUILD, build=spec), name="patched")
    return run_job(job, Path(args.output) if args.output else None)
