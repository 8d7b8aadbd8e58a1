"""``lab report [RUN]``: what is new, known, gone, pre-existing or flaky in a
run compared with the previous run of its job; ``lab junit merge``: one
junit.xml (or summary.json) from the shards of a matrix."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import EXIT_OK, UserError
from ..history import History, default_path, run_id_of
from ..junit import merge
from ..paths import runs_dir
from ..report import Format, classify, render
from ..shards import merge_summaries
from ..store import mark_if_dead, write_atomic


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "report", help="compare a run with the previous run of its job: new, known, gone problems",
        description="Read a run's summary.json and print, per cell, its verdict and its problems "
                    "grouped as new, known (also in the previous run of the job), gone, "
                    "pre-existing (also on the baseline kernel's cell) and flaky (in some repeats "
                    "only). Exit status: 0, or 3 when RUN cannot be read; 2 when the history "
                    "file is unusable.")
    p.add_argument("run", metavar="RUN", nargs="?",
                   help="a run directory or its summary.json (default: the newest run directory "
                        "with a summary.json under the runs dir, $LAB_RUNS_DIR or ./runs)")
    p.add_argument("--format", choices=[str(f) for f in Format], default=str(Format.TEXT),
                   help="text for a terminal, markdown for a CI comment, json for tools")
    p.add_argument("--history", type=Path, metavar="PATH",
                   help=f"history file (default $LAB_HISTORY, else {default_path()})")
    p.add_argument("--record", action="store_true",
                   help="record the run in the history first (recording again replaces it)")
    p.set_defaults(func=cmd_report)

    p = subparsers.add_parser("junit", help="JUnit files: merge the shards of a matrix")
    jsub = p.add_subparsers(dest="junit_cmd", required=True)
    m = jsub.add_parser(
        "merge", help="merge several junit.xml (or, with --summaries, summary.json) into one",
        description="lab junit merge OUT A.xml B.xml ... writes one <testsuites> with every "
                    "input's testsuites and recomputed totals. With --summaries, the inputs are "
                    "summary.json files and OUT is one summary.json: cells deduplicated, suites "
                    "concatenated, the worst state, the exit code recomputed over all cells "
                    "(so a baseline that ran on another shard counts). An input may be a run "
                    "directory. Exit status: 0, or 3 when an input is not what it should be.")
    m.add_argument("out", metavar="OUT", type=Path, help="the merged file to write")
    m.add_argument("inputs", metavar="INPUT", nargs="+", type=Path,
                   help="junit.xml files (summary.json with --summaries) or run directories")
    m.add_argument("--summaries", action="store_true",
                   help="merge summary.json files instead of junit.xml")
    m.set_defaults(func=cmd_junit_merge)


def newest_run() -> Path:
    """The run directory whose summary.json changed last."""
    base = runs_dir()
    found = sorted(base.glob("*/summary.json"), key=lambda p: p.stat().st_mtime) if base.is_dir() else []
    if not found:
        raise UserError("no run directory with a summary.json here; give RUN, or set LAB_RUNS_DIR",
                        file=str(base))
    return found[-1]


def _read(path: Path, default_name: str) -> tuple[str, Path]:
    """The text of a file, or of `default_name` in a directory."""
    if path.is_dir():
        path = path / default_name
    try:
        return path.read_text(encoding="utf-8"), path
    except FileNotFoundError:
        raise UserError(f"no such file; give a run directory or its {default_name}",
                        file=str(path)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot be read: {e}", file=str(path)) from None


def load_summary(path: Path) -> tuple[dict, Path]:
    """A summary.json as a dict, and the run directory it is in (a run left
    `running` by a lab that died is marked crashed first)."""
    mark_if_dead(path if path.is_dir() else path.parent)
    text, path = _read(path, "summary.json")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"not JSON ({e}); a run directory's summary.json is", file=str(path)) from None
    if not isinstance(data, dict):
        raise UserError("not a lab summary.json (expected a JSON object)", file=str(path))
    return data, path.parent


def cmd_report(args: argparse.Namespace) -> int:
    summary, run_dir = load_summary(Path(args.run) if args.run else newest_run())
    summary = dict(summary, run_id=run_id_of(summary, run_dir))
    path = args.history or default_path()
    previous = {}
    if args.record or path.exists():  # reading must not create a history nobody asked for
        history = History(path)
        if args.record:
            history.record(summary, run_dir)
        previous = history.previous_for(summary, run_dir)
    report = classify(summary, lambda cell: previous[cell].problems if cell in previous else None,
                      {cell: p.run_id for cell, p in previous.items()})
    sys.stdout.write(render(report, args.format))
    return EXIT_OK


def cmd_junit_merge(args: argparse.Namespace) -> int:
    if args.summaries:
        loaded = [load_summary(p)[0] for p in args.inputs]
        text = json.dumps(merge_summaries(loaded, [str(p) for p in args.inputs]), indent=1)
    else:
        read = [_read(p, "junit.xml") for p in args.inputs]
        text = merge([t for t, _ in read], [str(p) for _, p in read])
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(args.out, text)
    except OSError as e:
        raise UserError(f"cannot be written: {e}", file=str(args.out)) from None
    print(f"[lab] merged {len(args.inputs)} files into {args.out}", file=sys.stderr)
    return EXIT_OK
