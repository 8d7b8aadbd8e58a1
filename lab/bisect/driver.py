"""Driving a bisection (effects): each run of a revision is one `run_job`
of a one-cell job whose kernel is that revision's build, judged from its
summary.json (lab/bisect/target.py); the search (lab/bisect/search.py)
says what to run next. Every build goes through lab/kernel (lab's own clone
and worktree, the build directory of the configuration, the artifact cache),
so a step after the first is an incremental build, and a revision built by
an earlier bisection is a cache hit.

    lab bisect ... -> Bisection.start (bad input checked: revisions, series,
    job, target) -> run(): next() -> run_job(step job) -> judge -> bisect.json
    (after every run) -> ... -> Done -> result, junit.xml, summary.json,
    history

The state file is rewritten after every run; Ctrl-C marks it interrupted
and `lab bisect --resume DIR` continues. An infrastructure error in a run
(the guest never answered, qemu died under it) is retried, never counted.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import yaml

from .. import junit
from ..errors import InfraError, LabError, UserError
from ..job import Job, KernelKind, KernelSpec, MatrixSpec, NamedKernel, load_job, parse_job
from ..kernel.spec import DEFAULT_FRAGMENTS, BuildSpec
from ..matrix import Cell, expand, select
from ..store import prepare_output, write_atomic
from ..vm.base import MachineFactory
from . import report
from .revisions import Revisions, from_series, from_tree
from .search import Done, Next, Policy, Search, Verdict
from .state import STATE_FILE, RunRecord, Setup, State, Status, load
from .target import Judgement, judge

INFRA_RETRIES = 2     # a run that fails for the host is tried this many more times


def say_stderr(msg: str) -> None:
    print(f"[lab bisect] {msg}", file=sys.stderr, flush=True)


# --- what each run runs ----------------------------------------------------------

def parse_workload_arg(text: str):
    """--workload NAME or NAME:{YAML options}, e.g.
    'gup_test:{variants: [pin-basic], backings: [anon], size_mb: 1}'."""
    name, sep, rest = text.partition(":")
    if not sep:
        return name.strip()
    try:
        opts = yaml.safe_load(rest) if rest.strip() else {}
    except yaml.YAMLError as e:
        why = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise UserError(f"{text!r}: the options after ':' are not YAML ({why}); valid: NAME "
                        "or NAME:{key: value, ...}", field="--workload") from None
    if opts is None:
        opts = {}
    if not isinstance(opts, dict):
        raise UserError(f"{text!r}: the options after ':' must be a mapping; valid: NAME or "
                        "NAME:{key: value, ...}", field="--workload")
    return {name.strip(): opts}


def base_job(setup: Setup) -> tuple[Job, Cell]:
    """The job whose workloads every run runs, and the cell chosen in it."""
    if setup.job:
        job = load_job(setup.job)
        cells = expand(job)
        if setup.cell:
            cells = select(job, cells, [setup.cell])
        elif len(cells) > 1:
            raise UserError(f"the job has {len(cells)} cells; choose one with --cell (valid: "
                            + ", ".join(c.id for c in cells) + ")", file=setup.job,
                            field="--cell")
        return job, cells[0]
    if not setup.workloads:
        raise UserError("say what to run: --job JOB [--cell ID] or --workload W ...",
                        field="--workload")
    data = {"name": "workloads", "kernel": "distro", "image": setup.image,
            "workloads": [parse_workload_arg(w) for w in setup.workloads]}
    job = parse_job(data, file="--workload", base=Path.cwd())
    return job, expand(job)[0]


def fragments_for(setup: Setup, cell: Cell) -> tuple[str, ...]:
    """--fragment, else the cell's variant's, else the job's build kernel's,
    else lab + debug."""
    if setup.fragments:
        return setup.fragments
    if cell.variant.fragments:
        return cell.variant.fragments
    if cell.kernel.spec.kind is KernelKind.BUILD:
        return cell.kernel.spec.build.fragments
    return DEFAULT_FRAGMENTS


def step_job(job: Job, cell: Cell, spec: BuildSpec) -> Job:
    """A one-cell job: the cell's variant (its command line) and workloads,
    with the revision's build as its kernel. Its runs go into the history as
    `bisect-<job>-step`; the bisection itself as `bisect-<job>`."""
    return replace(job, name=f"bisect-{job.name}-step",
                   kernels=(NamedKernel("bisect", KernelSpec(KernelKind.BUILD, build=spec)),),
                   variants=(replace(cell.variant, fragments=None),),
                   workload_sets=(cell.workload_set,), matrix=MatrixSpec(), repeat=1,
                   declared=frozenset({"kernel"}))


def revisions_for(setup: Setup, cell: Cell) -> Revisions:
    frags = fragments_for(setup, cell)
    if setup.mode == "tree":
        if not setup.tree or setup.good is None or setup.bad is None:
            raise UserError("bisecting commits needs --tree PATH --good REV --bad REV (or "
                            "--series S to bisect inside a series)", field="--good")
        return from_tree(Path(setup.tree), setup.good, setup.bad, frags)
    base = BuildSpec(tree=Path(setup.tree) if setup.tree else None, ref=setup.ref,
                     linux_source=setup.linux_source, fragments=frags)
    return from_series(base, setup.series, setup.good, setup.bad)


def timings(summary: dict, total: float) -> tuple[dict[str, float], dict[str, str]]:
    """A run's wall time split: build (or the cache lookup), boot (to SSH),
    workload (the workloads' testcases and their checks, as timed by the
    runner) and other (the rest: the guest finishing its start after SSH,
    each workload's setup, results, shutdown); and its kernel."""
    suites = summary.get("suites") or [{}]
    props = suites[0].get("properties") or {}
    cases = suites[0].get("cases") or []
    build = float(props.get("kernel_resolve_s") or 0.0)
    boot = sum(float(c.get("duration") or 0) for c in cases if c.get("classname") == "boot")
    work = sum(float(c.get("duration") or 0) for c in cases
               if c.get("classname") not in ("boot", "kernel"))
    secs = {"total": round(total, 1), "build": round(build, 1), "boot": round(boot, 1),
            "workload": round(work, 1),
            "other": round(max(0.0, total - build - boot - work), 1)}
    kernel = {"cache": props.get("kernel_cache", ""), "release": props.get("kernel_release", ""),
              "artifact": props.get("kernel_origin", "")}
    meta = {}
    if kernel["artifact"]:
        try:
            meta = json.loads((Path(kernel["artifact"]) / "metadata.json").read_text())
        except (OSError, ValueError):
            meta = {}
    if meta.get("tree_commit") or meta.get("commit"):
        kernel["commit"] = meta.get("tree_commit") or meta.get("commit")
    if kernel["cache"] == "built" and meta.get("make_seconds") is not None:
        secs["make"] = float(meta["make_seconds"])
    return secs, kernel


# --- the bisection --------------------------------------------------------------

class Bisection:
    def __init__(self, directory: Path, state: State, job: Job, cell: Cell, revs: Revisions,
                 *, machine_factory: MachineFactory | None = None,
                 say: Callable[[str], None] = say_stderr):
        self.dir, self.state, self.job, self.cell, self.revs = directory, state, job, cell, revs
        self.factory, self.say = machine_factory, say

    @classmethod
    def start(cls, setup: Setup, out: Path | None = None, *, argv: list[str] | None = None,
              **kw) -> "Bisection":
        """Check everything that can be checked without building (the job, the
        revisions, the series, the fragments), then create the directory."""
        from ..kernel.api import plan
        from ..runner import new_run_dir
        job, cell = base_job(setup)
        revs = revisions_for(setup, cell)
        plan(revs.spec(revs.n))
        plan(revs.spec(0))
        directory = Path(out) if out else new_run_dir(f"bisect-{job.name}")
        if (directory / STATE_FILE).exists():
            raise UserError(f"{directory} already holds a bisection; continue it with "
                            f"lab bisect --resume {directory}", field="-o")
        prepare_output(directory)
        state = State(id=directory.name, setup=setup, mode=revs.mode,
                      revisions=list(revs.items), series_hash=revs.series_hash, of=revs.of,
                      argv=list(argv or []))
        state.save(directory)
        b = cls(directory, state, job, cell, revs, **kw)
        b.write()
        return b

    @classmethod
    def resume(cls, directory: Path, *, policy: Callable[[Policy], Policy] | None = None,
               **kw) -> "Bisection":
        """The bisection in `directory`, as its state file left it; `policy`
        may change its --repeat, --max-runs or --confidence (a finished
        bisection then goes on if the new policy asks for more)."""
        from ..kernel.api import plan
        directory = Path(directory)
        state = load(directory)
        if policy is not None:
            new = policy(state.setup.policy)
            if new != state.setup.policy:
                state.setup = replace(state.setup, policy=new)
                state.status, state.result = Status.RUNNING, None
        if state.status != Status.FINISHED:
            state = state.resumed()
        setup = state.setup
        job, cell = base_job(setup)
        frags = fragments_for(setup, cell)
        items = tuple(state.revisions)
        if state.mode == "tree":
            base = BuildSpec(tree=Path(setup.tree), ref=items[0].commit, fragments=frags)
            revs = Revisions("tree", items, base)
        else:
            base = BuildSpec(tree=Path(setup.tree) if setup.tree else None, ref=setup.ref,
                             linux_source=setup.linux_source, fragments=frags)
            now = plan(replace(base, series=setup.series)).series
            if now is None or now.hash != state.series_hash:
                raise UserError(f"the series {', '.join(setup.series)} changed since this "
                                f"bisection started (hash {state.series_hash}, now "
                                f"{now.hash if now else 'none'}): start a new bisection",
                                field="--resume")
            revs = Revisions("series", items, base, setup.series, state.series_hash, state.of)
        return cls(directory, state, job, cell, revs, **kw)   # saved by run(), under its lock

    # --- running ---------------------------------------------------------------

    def run(self) -> dict:
        """Run until the search is done; returns the result (report.result).
        One lab at a time runs a bisection's directory."""
        st = self.state
        if st.status == Status.FINISHED and st.result is not None:
            return st.result
        with open(self.dir / ".lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UserError(f"another lab bisect is running in {self.dir}",
                                field="--resume") from None
            return self._run()

    def _run(self) -> dict:
        st = self.state
        try:
            while True:
                search = Search(self.revs.n, st.setup.policy, st.observations)
                act = search.next()
                if isinstance(act, Done):
                    return self._finish(act, search)
                self._run_one(act)
        except KeyboardInterrupt:
            self._stop(Status.INTERRUPTED, 130)
            self.say(f"interrupted; the runs so far are kept: lab bisect --resume {self.dir}")
            raise
        except LabError as e:
            self._stop(Status.FAILED, e.exit_code)
            raise

    def _step_dir(self, index: int) -> tuple[Path, int]:
        steps = self.state.steps()
        number = steps.index(index) + 1 if index in steps else len(steps) + 1
        return self.dir / f"{number:02d}-{self.revs.items[index].label}", number

    def _run_one(self, act: Next) -> RunRecord:
        st, i = self.state, act.index
        rev = self.revs.items[i]
        k = 1 + sum(r.index == i for r in st.runs)
        sdir, number = self._step_dir(i)
        self.say(f"{sdir.name}: {rev.id} {rev.subject[:60]!r}: run {k} ({act.why})")
        job = step_job(self.job, self.cell, self.revs.spec(i))
        retried: list[str] = []
        judgement = Judgement(Verdict.INFRA, "not run")
        for _ in range(INFRA_RETRIES + 1):
            # a run directory's name is its run id in the history: unique
            rdir = sdir / f"{st.id}-step{number:02d}-r{k}"
            if rdir.exists():           # an attempt interrupted before it was counted
                shutil.rmtree(rdir)
            started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            t0 = time.monotonic()
            summary: dict = {}
            try:
                from ..runner import run_job
                run_job(job, rdir, machine_factory=self.factory, live=False)
                summary = json.loads((rdir / "summary.json").read_text())
                judgement = judge(summary, st.setup.target)
            except (KeyboardInterrupt, UserError):
                raise
            except (LabError, OSError, ValueError) as e:
                judgement = Judgement(Verdict.INFRA, f"{type(e).__name__}: "
                                      + (str(e).splitlines() or [""])[0])
            total = time.monotonic() - t0
            if judgement.verdict is Verdict.INFRA:
                dest = rdir.with_name(f"{rdir.name}-infra{len(retried) + 1}")
                if rdir.exists():
                    rdir.rename(dest)
                retried.append(str(dest.relative_to(self.dir)))
                st.infra.append({"index": i, "run_dir": retried[-1],
                                 "reason": judgement.reason})
                st.save(self.dir)
                self.say(f"  infrastructure error, not counted: {judgement.reason}")
                continue
            secs, kernel = timings(summary, total)
            rec = RunRecord(index=i, n=k, verdict=str(judgement.verdict),
                            reason=judgement.reason, run_dir=str(rdir.relative_to(self.dir)),
                            evidence=list(judgement.evidence), signature=judgement.signature,
                            others=list(judgement.others), started=started, seconds=secs,
                            kernel=kernel, retried=retried)
            st.runs.append(rec)
            st.save(self.dir)
            self.write()
            self.say(f"  {rec.verdict}: {rec.reason} (build {secs['build']:.0f}s, boot "
                     f"{secs['boot']:.0f}s, workload {secs['workload']:.0f}s, other "
                     f"{secs['other']:.0f}s)")
            return rec
        raise InfraError(f"{rev.id}: {INFRA_RETRIES + 1} attempts failed for the host's reasons "
                         f"(last: {judgement.reason}); the runs so far are kept: "
                         f"lab bisect --resume {self.dir}")

    # --- results -----------------------------------------------------------------

    def write(self, exit_code: int | None = None) -> dict:
        """junit.xml and summary.json of the bisection, from its state."""
        res = self.state.result
        suite_list = report.suites(self.state, res)
        summary = report.summary(self.state, self.job.name, str(self.state.setup.job or ""),
                                 res, suite_list,
                                 exit_code if exit_code is not None
                                 else (res["exit_code"] if res else None))
        write_atomic(self.dir / "junit.xml", junit.render(suite_list))
        write_atomic(self.dir / junit.PROPERTIES_FILE,
                     junit.render(suite_list, case_properties=True))
        write_atomic(self.dir / "summary.json", json.dumps(summary, indent=1))
        return summary

    def _record(self, summary: dict) -> None:
        from ..history import History, default_path
        try:
            History(default_path()).record(summary, self.dir)
        except LabError as e:
            self.say(f"bisection not recorded in the history: {e}")

    def _finish(self, done: Done, search: Search) -> dict:
        st = self.state
        st.result = report.result(st, done, search)
        st.status = Status.FINISHED
        st.save(self.dir)
        self._record(self.write())
        return st.result

    def _stop(self, status: str, code: int) -> None:
        self.state.status = status
        try:
            self.state.save(self.dir)
            self._record(self.write(code))
        except LabError as e:
            self.say(f"cannot save the state: {e}")
