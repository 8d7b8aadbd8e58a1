"""``lab export kcidb RUN``: a run's results as KernelCI KCIDB JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import EXIT_OK, UserError
from ..history import run_id_of
from ..kcidb import convert
from ..store import write_atomic
from .report import load_summary, newest_run


def register(subparsers) -> None:
    p = subparsers.add_parser("export", help="write a run's results in another format")
    sub = p.add_subparsers(dest="export_cmd", required=True)
    k = sub.add_parser(
        "kcidb", help="KernelCI KCIDB JSON (schema v5): checkouts, builds, tests",
        description="Write a run's results as a KCIDB v5 report: a checkout per base commit + "
                    "patchset (its KCIDB patchset hash), a build per kernel (config, compiler, "
                    "log), a test per testcase (path lab.<workload>.<case>, status, start time, "
                    "duration, output files as file:// URLs into the run directory). Submit it "
                    "with kcidb-submit. Exit status: 0, or 3 when RUN cannot be read or the "
                    "origin is not valid.")
    k.add_argument("run", metavar="RUN", nargs="?",
                   help="a run directory or its summary.json (default: the newest run)")
    k.add_argument("-o", "--output", type=Path, metavar="FILE",
                   help="write here instead of standard output")
    k.add_argument("--origin", default="lab",
                   help="the KCIDB origin (your CI system's name: lowercase letters, digits, _)")
    k.set_defaults(func=cmd_kcidb)


def cmd_kcidb(args: argparse.Namespace) -> int:
    summary, run_dir = load_summary(Path(args.run) if args.run else newest_run())
    summary = dict(summary, run_id=run_id_of(summary, run_dir))
    try:
        report = convert(summary, run_dir, args.origin)
    except ValueError as e:
        raise UserError(str(e), field="--origin") from None
    text = json.dumps(report, indent=1) + "\n"
    if args.output is None:
        sys.stdout.write(text)
        return EXIT_OK
    try:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(args.output, text)
    except OSError as e:
        raise UserError(f"cannot be written: {e}", file=str(args.output)) from None
    print(f"[lab] {len(report['tests'])} tests, {len(report['builds'])} builds, "
          f"{len(report['checkouts'])} checkouts -> {args.output}", file=sys.stderr)
    return EXIT_OK
