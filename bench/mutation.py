"""Mutation testing of lab's pure modules with mutmut: how many small wrong
changes to the code the unit tests catch.

    python bench/mutation.py                 # every module (about an hour on 2 cores)
    python bench/mutation.py checks matrix   # some of them
    python bench/mutation.py --list          # the modules, their code and tests
    python bench/mutation.py --survivors job # after adding tests: re-run the survivors

For each module: a copy of the repository in a work directory of its own
(default /tmp/lab-mutation/MODULE), a setup.cfg telling mutmut what to
mutate (the module's files, and within them only the pure functions where a
module also has effects) and which tests to run (the module's own unit
tests, never the whole suite), then `mutmut run --max-children 1` (one
worker: the machine is shared with qemu guests and kernel builds). It
prints killed / survived per module and overall, and each survivor's diff.

Score = killed / (killed + survived). A timeout or a crash under a mutant
counts as killed (the tests noticed); a mutant no test runs ("no tests")
counts as survived. Mutants that cannot change behaviour (equivalent) are
listed in bench/mutation-equivalent.txt with a reason each, and excluded;
an entry whose mutant no longer has the same diff (the code moved) is
reported as stale and not excluded. Not in CI: it is slow.

Needs mutmut in the Python that runs this (requirements-dev.txt).
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EQUIVALENT = REPO / "bench" / "mutation-equivalent.txt"
COPY = ("lab", "tests", "jobs", "images", "kernels", "pyproject.toml")


@dataclass(frozen=True)
class Module:
    name: str
    files: tuple[str, ...]          # what mutmut mutates
    tests: tuple[str, ...]          # the only tests it runs
    functions: tuple[str, ...] = ()  # mutant name globs when only some functions are pure
    note: str = ""                   # what of the module is left out, and why (printed)


def _fn(module: str, *names: str) -> tuple[str, ...]:
    """Globs of mutmut's mutant names for functions (x_NAME) and methods
    (xǁCLASSǁNAME, given as CLASS.NAME) of a dotted module."""
    out = []
    for n in names:
        if "." in n:
            cls, meth = n.split(".")
            out.append(f"{module}.x\u01c1{cls}\u01c1{meth}__mutmut_*")
        else:
            out.append(f"{module}.x_{n}__mutmut_*")
    return tuple(out)


MODULES = (
    Module("kernellog", ("lab/kernellog/title.py", "lab/kernellog/parser.py"),
           ("tests/unit/test_kernellog.py", "tests/unit/test_kernellog_title.py",
            "tests/unit/test_kernellog_corpus.py"),
           note="title.py and parser.py only: patterns.py (data), frames.py, console.py and "
                "search.py are not mutated (each mutant runs the corpus test, seconds on "
                "2 shared cores)"),
    Module("checks", ("lab/checks.py",), ("tests/unit/test_checks.py",
                                          "tests/unit/test_workloads_common.py")),
    Module("hang", ("lab/hang.py",), ("tests/unit/test_workloads_hang.py",
                                      "tests/unit/test_hang_texts.py"),
           _fn("lab.hang", "BlockedTask.wait_site", "BlockedTask.label", "strip_times",
               "hung_pids", "_task_blocks", "blocked_tasks", "parse_proc_states",
               "Verdict.details", "resolution_text", "blocked_since", "settle", "classify",
               "panic_report")),
    Module("resolve", ("lab/resolve.py",), ("tests/unit/test_resolve.py",),
           _fn("lab.resolve", "Ended.show", "Resolution.released_by",
               "Resolution.all_recovered")),
    Module("job", ("lab/job.py", "lab/validate.py"),
           ("tests/unit/test_job.py", "tests/unit/test_bad_input.py",
            "tests/unit/test_job_messages.py", "tests/unit/test_validate.py",
            "tests/unit/test_matrix.py")),
    Module("matrix", ("lab/matrix.py",), ("tests/unit/test_matrix.py",)),
    Module("series", ("lab/kernel/series.py",),
           # the parser's own tests: the git-based ones (test_kernel_series*.py)
           # take seconds each and exercise apply_series, which is not mutated
           ("tests/unit/test_kernel_series_parse.py",),
           _fn("lab.kernel.series", "Patch.label", "Series.subjects", "Series.prefix",
               "Series.name", "split_mbox", "parse_subject", "parse_message", "series_hash",
               "check", "_check_upto", "_missing_hint", "parse_messages", "is_range",
               "_hunk_report")),
    Module("argv", ("lab/vm/spec.py", "lab/vm/devices.py", "lab/runner.py", "lab/vm/machine.py"),
           ("tests/unit/test_vm_argv.py", "tests/unit/test_machine_argv.py",
            "tests/unit/test_cli.py"),
           ("lab.vm.spec.*", "lab.vm.devices.*", *_fn("lab.runner", "boot_config"),
            *_fn("lab.vm.machine", "Machine.build_spec"))),
    Module("latency", ("lab/latency.py",), ("tests/unit/test_latency.py",)),
    Module("metrics", ("lab/metrics.py",), ("tests/unit/test_metrics.py",
                                           "tests/unit/test_report.py")),
)
BY_NAME = {m.name: m for m in MODULES}

KILLED = {"killed", "timeout", "segfault", "caught by type check"}
SURVIVED = {"survived", "no tests", "suspicious"}


def setup_cfg(m: Module) -> str:
    def lines(key, values):
        return f"{key} =\n" + "".join(f"    {v}\n" for v in values)
    return ("[mutmut]\nsource_paths = lab\n" + lines("only_mutate", m.files)
            + lines("also_copy", [c for c in COPY if c not in ("lab", "tests")])
            + lines("pytest_add_cli_args_test_selection", m.tests)
            + "pytest_add_cli_args = -p no:cacheprovider\n"
            + "use_git_change_detection = false\n")


def prepare(m: Module, work: Path) -> None:
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    for name in COPY:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, work / name, ignore=shutil.ignore_patterns(
                "__pycache__", ".pytest_cache"))
        elif src.exists():
            shutil.copy(src, work / name)
    # the kernellog corpus test reads ../shared next to the checkout
    shared = REPO.parent / "shared"
    if shared.exists():
        (work / "shared").symlink_to(shared)
    (work / "setup.cfg").write_text(setup_cfg(m))


DIFFS = """
import json, sys
from mutmut.mutation.diff_apply import find_mutant, get_diff_for_mutant
paths, out = {}, {}
for name in json.load(sys.stdin):
    prefix = name.rsplit(".", 1)[0]
    if prefix not in paths:
        paths[prefix] = find_mutant(name).path
    out[name] = get_diff_for_mutant(name, path=paths[prefix])
print(json.dumps(out))
"""


def diffs_of(work: Path, mutants: list[str]) -> dict[str, str]:
    """`mutmut show` of each mutant, in one process (one each is slow)."""
    if not mutants:
        return {}
    r = subprocess.run([sys.executable, "-c", DIFFS], cwd=work, input=json.dumps(mutants),
                       capture_output=True, text=True, timeout=3600)
    if r.returncode != 0:
        raise SystemExit(f"reading the mutants' diffs in {work} failed:\n{r.stderr[-2000:]}")
    return json.loads(r.stdout)


def fingerprint(diff: str) -> str:
    """The changed lines of a mutant (stable while the code around it is)."""
    changed = [line.strip() for line in diff.splitlines()
               if line[:1] in ("+", "-") and not line.startswith(("+++", "---"))]
    return hashlib.sha256("\n".join(changed).encode()).hexdigest()[:10]


def load_equivalent() -> dict[str, tuple[str, str]]:
    """mutant name -> (fingerprint, reason)."""
    out = {}
    if EQUIVALENT.exists():
        for line in EQUIVALENT.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                name, fp, reason = line.split(None, 2)
                out[name] = (fp, reason)
    return out


def statuses(work: Path, m: Module) -> dict[str, str]:
    from mutmut.stats import status_by_exit_code
    out = {}
    for meta in (work / "mutants" / "lab").rglob("*.meta"):
        for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            if not m.functions or any(fnmatch.fnmatchcase(name, g) for g in m.functions):
                out[name] = status_by_exit_code[code]
    return out


def refresh_tests(work: Path) -> None:
    """This checkout's tests into a work directory of an earlier run."""
    shutil.rmtree(work / "tests")
    shutil.copytree(REPO / "tests", work / "tests", ignore=shutil.ignore_patterns(
        "__pycache__", ".pytest_cache"))


def run_module(m: Module, root: Path, equivalent, show_diffs: bool,
               run: bool = True, again: bool = False) -> tuple[int, int]:
    work = root / m.name
    start = time.monotonic()
    code = 0
    if run:
        names = list(m.functions)
        if again:
            # the last run's survivors only, against the tests as they are now
            # (a test added kills; the mutants killed before stay killed)
            if not (work / "mutants").is_dir():
                raise SystemExit(f"--survivors: no earlier run of {m.name} in {work}")
            names = sorted(n for n, s in statuses(work, m).items() if s in SURVIVED)
            refresh_tests(work)
        else:
            prepare(m, work)
        argv = [sys.executable, "-m", "mutmut", "run", "--max-children", "1", *names]
        with open(work / "mutmut.log", "a" if again else "w") as log:
            code = subprocess.run(argv, cwd=work, stdout=log, stderr=subprocess.STDOUT).returncode
    took = time.monotonic() - start
    got = statuses(work, m) if (work / "mutants").is_dir() else {}
    if code != 0 or not got:
        tail = (work / "mutmut.log").read_text(errors="replace")[-2000:]
        print(f"{m.name}: mutmut failed (exit {code}); see {work}/mutmut.log\n{tail}")
        return 0, 0
    killed = sum(s in KILLED for s in got.values())
    survivors = sorted(n for n, s in got.items() if s in SURVIVED)
    excluded, stale, left = [], [], []
    diffs = diffs_of(work, survivors)
    for name in survivors:
        d = diffs[name]
        if name in equivalent:
            fp, reason = equivalent[name]
            if fp == fingerprint(d):
                excluded.append((name, reason))
                continue
            stale.append(name)
        left.append((name, got[name], d))
    other = len(got) - killed - len(survivors)
    score = killed / max(1, killed + len(left))
    print(f"{m.name}: {killed} killed, {len(left)} survived, {len(excluded)} equivalent "
          f"excluded{f', {other} not run' if other else ''}: score {score:.1%} "
          f"({len(got)} mutants, {took / 60:.1f} min{', survivors re-run' if again else ''})")
    if m.note:
        print(f"    scope: {m.note}")
    for name, reason in excluded:
        print(f"    equivalent {name}: {reason}")
    for name in stale:
        print(f"    STALE equivalence entry (its diff changed, not excluded): {name}")
    for name, status, d in left:
        print(f"    {status}: {name}  [{fingerprint(d)}]")
        if show_diffs:
            print("".join(f"        {line}\n" for line in d.splitlines()
                          if line[:1] in ("+", "-", "@") and not line.startswith(("+++", "---"))))
    return killed, len(left)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("modules", nargs="*", help=f"of: {', '.join(BY_NAME)} (default: all)")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/lab-mutation"))
    ap.add_argument("--list", action="store_true", help="the modules, their code and tests")
    ap.add_argument("--no-diffs", action="store_true", help="survivors' names only")
    ap.add_argument("--no-run", action="store_true",
                    help="report the last run's results left in the work directory")
    ap.add_argument("--survivors", action="store_true",
                    help="re-run only the last run's survivors, in its work directory, "
                         "against this checkout's tests (after adding tests; the code "
                         "must be unchanged since that run)")
    args = ap.parse_args()
    unknown = [n for n in args.modules if n not in BY_NAME]
    if unknown:
        ap.error(f"unknown module(s) {', '.join(unknown)}; valid: {', '.join(BY_NAME)}")
    chosen = [BY_NAME[n] for n in args.modules] or list(MODULES)
    if args.list:
        for m in chosen:
            print(f"{m.name}: {' '.join(m.files)}"
                  f"{' (functions: ' + ' '.join(m.functions) + ')' if m.functions else ''}"
                  f"\n    tests: {' '.join(m.tests)}"
                  f"{chr(10) + '    scope: ' + m.note if m.note else ''}")
        return 0
    try:
        import mutmut  # noqa: F401
    except ImportError:
        print("mutmut is not installed: pip install -r requirements-dev.txt", file=sys.stderr)
        return 2
    os.environ.setdefault("PYTHONHASHSEED", "0")
    equivalent = load_equivalent()
    killed = survived = 0
    for m in chosen:
        k, s = run_module(m, args.workdir, equivalent, not args.no_diffs, not args.no_run,
                          args.survivors)
        killed, survived = killed + k, survived + s
    print(f"overall: {killed} killed, {survived} survived: mutation score "
          f"{killed / max(1, killed + survived):.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
