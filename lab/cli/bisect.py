"""`lab bisect`: argument parsing and printing only; the work is in
lab/bisect/."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import UserError
from .core import output_option

DESCRIPTION = """\
Find the first bad revision: a commit between --good and --bad of a kernel
tree, or the first patch of a series (each prefix of it applied on the base
is a step). Each step builds the revision in lab's own clone (an incremental
build in the configuration's build directory, or an artifact cache hit),
boots it and runs the job's workloads, and judges the run: bad when the
target appears; good when the workloads finish without it; skip when the
revision cannot say (the series does not apply, the build or the boot fails,
a different crash). The endpoints are checked first. With --repeat N a
flaky target is handled: each step runs N times unless the target shows,
and once some revision both shows and hides it, the bad endpoint is run
--max-runs times to measure its rate and the search asks for runs until the
culprit's probability reaches --confidence.

Exit codes: 0 the first bad revision was named with the asked confidence;
1 the bisection ended without one (skipped revisions leave several, the
confidence was not reached within --max-runs, the target did not appear on
the bad endpoint or did on the good one, an endpoint could not be tested);
2 infrastructure error (resumable); 3 bad input (nothing was run);
130 interrupted (resumable with --resume DIR)."""


def register(subparsers) -> None:
    p = subparsers.add_parser("bisect", help="find the commit or patch that introduced a "
                              "regression", description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_argument_group("revisions")
    x = src.add_mutually_exclusive_group()
    x.add_argument("--tree", type=Path, help="kernel git repository (never modified)")
    x.add_argument("--linux-source", action="store_true",
                   help="Debian's /usr/src/linux-source-*.tar.xz as the base of --series")
    src.add_argument("--good", metavar="REV",
                     help="a revision without the regression: a commit of --tree, or with "
                          "--series the number of patches applied (default 0, the base)")
    src.add_argument("--bad", metavar="REV",
                     help="a revision with it: a commit of --tree, or with --series a number "
                          "of patches (default all of them)")
    src.add_argument("--series", action="append", default=[], metavar="S",
                     help="bisect inside this series (mbox, directory, patch files, range)")
    src.add_argument("--ref", help="with --tree and --series: the base commit (default HEAD)")
    src.add_argument("--fragment", action="append", metavar="F",
                     help="config fragment (default: the job's, else lab debug)")
    run = p.add_argument_group("what runs at each step")
    y = run.add_mutually_exclusive_group()
    y.add_argument("--job", help="job file, or the name of one (e.g. gup), whose workloads "
                                 "run (its kernel is replaced by each revision's)")
    y.add_argument("--workload", action="append", default=[], metavar="W",
                   help="a workload: NAME or NAME:{YAML options}, e.g. "
                        "'gup_test:{variants: [pin-basic], backings: [anon], size_mb: 1}'; "
                        "repeatable")
    run.add_argument("--cell", metavar="ID", help="the job's cell to run (a matrix job)")
    run.add_argument("--image", default="debian-bookworm", help="image with --workload")
    tg = p.add_argument_group("the target (one)")
    z = tg.add_mutually_exclusive_group()
    z.add_argument("--finding", metavar="TEXT",
                   help="a kernel finding whose title or signature contains TEXT "
                        "(case-insensitive; re:PATTERN for a regular expression)")
    z.add_argument("--any-finding", action="store_true", help="any kernel finding")
    z.add_argument("--pin-leak", action="store_true", help="a pin-leak testcase")
    z.add_argument("--deadlock", action="store_true", help="a deadlock testcase")
    z.add_argument("--case", metavar="NAME", help="the testcase NAME (or CLASS.NAME) failing")
    fl = p.add_argument_group("flaky targets")
    fl.add_argument("--repeat", type=int, metavar="N",
                    help="runs of each endpoint, and of each step unless the target shows "
                         "(default 1: deterministic; 3 or more for a flaky target)")
    fl.add_argument("--max-runs", type=int, metavar="N",
                    help="most runs of one revision (default 10; with --resume, raise it to "
                         "reach the confidence)")
    fl.add_argument("--confidence", type=float, metavar="C",
                    help="probability the named revision must reach (default 0.95)")
    fl.add_argument("--endpoints", choices=("first", "as-needed"),
                    help="first (default): run the bad endpoint, then the good one, before "
                         "searching; as-needed (with --repeat 1): run an endpoint only when "
                         "the search needs it, at most ceil(log2(N+2)) steps in all (one "
                         "fewer when N is a power of two) but a target that never shows is "
                         "noticed only at the end")
    output_option(p, "the bisection's directory (default: a new <date>-bisect-<job> "
                     "directory under $LAB_RUNS_DIR, else ./runs)")
    p.add_argument("--resume", type=Path, metavar="DIR",
                   help="continue the bisection in DIR (after Ctrl-C or an error)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=bisect_handler)


def setup_from_args(args):
    from ..bisect.search import Policy
    from ..paths import find_job
    from ..bisect.state import Setup
    from ..bisect.target import Target, TargetKind
    targets = [(TargetKind.FINDING, args.finding), (TargetKind.ANY_FINDING, args.any_finding),
               (TargetKind.PIN_LEAK, args.pin_leak), (TargetKind.DEADLOCK, args.deadlock),
               (TargetKind.CASE, args.case)]
    chosen = [(k, v) for k, v in targets if v]
    if not chosen:
        raise UserError("say what to look for: --finding TEXT, --any-finding, --pin-leak, "
                        "--deadlock or --case NAME", field="--finding")
    kind, value = chosen[0]
    target = Target(kind, value if isinstance(value, str) else "")
    if not args.tree and not args.linux_source:
        raise UserError("give the source: --tree PATH (with --good/--bad, or --series), or "
                        "--linux-source --series S", field="--tree")
    if args.linux_source and not args.series:
        raise UserError("--linux-source has one revision: bisect inside a series with "
                        "--series S", field="--series")
    if args.ref and not (args.tree and args.series):
        raise UserError("--ref is the base of --series on --tree; without --series give "
                        "--good/--bad", field="--ref")
    if not args.job and not args.workload:
        raise UserError("say what to run at each step: --job JOB [--cell ID] or --workload W",
                        field="--job")
    if args.cell and not args.job:
        raise UserError("--cell chooses a cell of --job", field="--cell")
    frags = tuple(args.fragment) if args.fragment else None
    if frags:
        frags = tuple(str(Path(f).resolve()) if ("/" in f or f.endswith(".config")) else f
                      for f in frags)
    return Setup(target=target,
                 policy=policy_from_args(args, Policy()),
                 tree=str(args.tree.expanduser().resolve()) if args.tree else None,
                 ref=args.ref, linux_source=bool(args.linux_source),
                 series=tuple(s if ".." in s and not Path(s).exists()
                              else str(Path(s).expanduser().resolve()) for s in args.series),
                 good=args.good, bad=args.bad, fragments=frags,
                 job=str(find_job(args.job).resolve()) if args.job else None, cell=args.cell,
                 workloads=tuple(args.workload), image=args.image)


def policy_from_args(args, old):
    """--repeat, --max-runs, --confidence over `old` (the defaults, or the
    policy of the bisection being resumed)."""
    from ..bisect.search import Policy
    repeat = old.repeat if args.repeat is None else args.repeat
    max_runs = (max(old.max_runs, repeat) if args.max_runs is None else args.max_runs)
    confidence = old.confidence if args.confidence is None else args.confidence
    if not 1 <= repeat <= 100:
        raise UserError(f"must be 1..100, got {repeat}", field="--repeat")
    if not repeat <= max_runs <= 1000:
        raise UserError(f"must be --repeat ({repeat})..1000, got {max_runs}", field="--max-runs")
    if not 0.5 <= confidence < 1:
        raise UserError(f"must be at least 0.5 and below 1, got {confidence:g}",
                        field="--confidence")
    endpoints = getattr(args, "endpoints", None)
    first = old.endpoints_first if endpoints is None else endpoints == "first"
    if not first and repeat > 1:
        raise UserError("--endpoints as-needed is for a deterministic target (--repeat 1): "
                        "a flaky target's rate is measured on the bad endpoint, first",
                        field="--endpoints")
    return Policy(repeat, max_runs, confidence, first)


def _only_resume(args) -> None:
    given = [f"--{k.replace('_', '-')}" for k in ("tree", "linux_source", "good", "bad",
                                                  "series", "ref", "fragment", "job",
                                                  "workload", "cell", "finding", "any_finding",
                                                  "pin_leak", "deadlock", "case", "output")
             if getattr(args, k)]
    if given:
        raise UserError("--resume continues the bisection as it was started (only --repeat, "
                        f"--max-runs, --confidence and --json may change); drop "
                        f"{', '.join(given)}", field="--resume")


def bisect_handler(args) -> int:
    from ..bisect.driver import Bisection
    from ..bisect.report import text
    if args.resume:
        _only_resume(args)
        b = Bisection.resume(args.resume, policy=lambda old: policy_from_args(args, old))
    else:
        b = Bisection.start(setup_from_args(args), Path(args.output) if args.output else None,
                            argv=sys.argv)
    res = b.run()
    if args.json:
        print(json.dumps(dict(res, directory=str(b.dir)), indent=1))
    else:
        sys.stdout.write(text(res, str(b.dir)))
    return int(res["exit_code"])
