"""The regression report (pure): a run's summary.json -> which problems are
new, known, gone, pre-existing on the baseline kernel, or flaky, per cell,
and the exit code that follows from them; and each cell's latencies and
bandwidth/IOPS against its baseline cell's (lab/metrics.py), a regression
beyond the thresholds being a problem of the cell like any failure.

A nightly matrix is only useful if it says what changed: a WARNING that has
shown every night for a month, or that the unpatched baseline kernel shows
too, must not read like a fresh regression. The inputs are plain data (the
summary dict, and a lookup of the previous run's problems that the caller
backs with lab.history), so all of this is testable without a run directory.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass

from . import metrics
from .results import CaseResult, Status, SuiteResult

FAILED = Status.FAILED.value
ERROR = Status.ERROR.value


class Novelty(enum.StrEnum):
    NEW = "new"        # not among the problems of this cell's previous run
    KNOWN = "known"    # the previous run of this cell had it too


class Verdict(enum.StrEnum):
    """One cell's outcome, worst first."""

    FAILED = "failed"              # a problem the baseline does not explain
    ERROR = "error"                # no such problem, but lab could not run some cases
    PRE_EXISTING = "pre-existing"  # every problem is also on the baseline kernel
    PASSED = "passed"
    NOT_RUN = "not-run"            # planned, but no repeat of it left results


class Outcome(enum.StrEnum):
    """The `outcome` property apply() writes on an annotated testcase."""

    PRE_EXISTING = "pre-existing"
    FLAKY = "flaky"


class Format(enum.StrEnum):
    TEXT = "text"
    JSON = "json"
    MARKDOWN = "markdown"


@dataclass(frozen=True)
class Problem:
    """A failed case, merged over the repeats of one cell by its key."""

    key: str
    title: str
    kind: str
    classname: str
    message: str
    seen: int                 # repeats that showed it
    repeats: int              # repeats of the cell that left results
    novelty: Novelty
    pre_existing: bool
    baseline_cell: str | None

    @property
    def flaky(self) -> bool:
        return self.repeats > 1 and 0 < self.seen < self.repeats

    @property
    def rate(self) -> str:
        return f"{self.seen}/{self.repeats}"

    def to_dict(self) -> dict:
        return dict(asdict(self), flaky=self.flaky, rate=self.rate)


@dataclass(frozen=True)
class Gone:
    """A problem of the previous run of this cell that no repeat shows now."""

    key: str
    title: str


@dataclass(frozen=True)
class ErrorCase:
    """An infrastructure error: lab could not carry out a case. Never a
    regression, never compared with history; listed so nobody mistakes a
    cell that did not run for one that passed."""

    name: str
    classname: str
    kind: str
    message: str
    seen: int


@dataclass(frozen=True)
class CellReport:
    id: str
    kernel: str
    variant: str
    workloads: str
    baseline: str | None
    reference: bool
    repeats: int               # planned
    ran: int                   # repeats that left a testsuite
    problems: tuple[Problem, ...]
    gone: tuple[Gone, ...]
    errors: tuple[ErrorCase, ...]
    verdict: Verdict
    has_previous: bool
    previous_run_id: str | None = None
    # every figure compared with the baseline cell's (empty without one)
    comparisons: tuple[metrics.Comparison, ...] = ()

    @property
    def regressions(self) -> tuple[metrics.Comparison, ...]:
        return metrics.regressions(self.comparisons)

    def problem(self, key: str) -> Problem | None:
        return next((p for p in self.problems if p.key == key), None)

    @property
    def counts_for_exit(self) -> bool:
        """Whether this cell's problems decide the exit code: a reference
        (baseline) cell's failures are reported, the series' own decide."""
        return not self.reference

    def group(self, name: str) -> tuple[Problem, ...]:
        """Disjoint groups for display: pre-existing first, then flaky, then
        new and known among the rest."""
        rest = [p for p in self.problems if not p.pre_existing]
        return tuple({
            "pre-existing": [p for p in self.problems if p.pre_existing],
            "flaky": [p for p in rest if p.flaky],
            "new": [p for p in rest if not p.flaky and p.novelty is Novelty.NEW],
            "known": [p for p in rest if not p.flaky and p.novelty is Novelty.KNOWN],
        }[name])

    def to_dict(self) -> dict:
        d = {k: v for k, v in asdict(self).items()
             if k not in ("problems", "gone", "errors", "comparisons")}
        return dict(d, problems=[p.to_dict() for p in self.problems],
                    gone=[asdict(g) for g in self.gone], errors=[asdict(e) for e in self.errors],
                    comparisons=[c.to_dict() for c in self.comparisons],
                    regressions=[c.to_dict() for c in self.regressions])


@dataclass(frozen=True)
class RunReport:
    run_id: str
    job: str
    state: str
    cells: tuple[CellReport, ...]
    exit_code: int             # 0, 1 or 2; 130 and 3 are the runner's business

    @property
    def previous_run_ids(self) -> tuple[str, ...]:
        """The runs compared against (one per cell; usually all the same)."""
        return tuple(sorted({c.previous_run_id for c in self.cells if c.previous_run_id}))

    def cell(self, cell_id: str) -> CellReport | None:
        return next((c for c in self.cells if c.id == cell_id), None)

    def to_dict(self) -> dict:
        return {"run_id": self.run_id, "job": self.job, "state": self.state,
                "exit_code": self.exit_code, "previous_run_ids": list(self.previous_run_ids),
                "cells": [c.to_dict() for c in self.cells]}


# --- reading a summary ------------------------------------------------------

def problem_key(name: str, classname: str, properties: Mapping[str, str]) -> str:
    """A kernel finding is identified by its signature (no addresses, no
    release in it); any other failure by where it is and what it is called."""
    return properties.get("signature") or f"{classname}/{name}"


def original_status(status: str, properties: Mapping[str, str]) -> str:
    """The status before apply() annotated the case, so that classifying an
    annotated summary gives the same answer."""
    return properties.get("original_status") or status


def cell_of(suite_name: str, properties: Mapping[str, str], known: Iterable[str] = ()) -> str:
    """The cell a testsuite belongs to: its `cell` property; else, for a
    suite named `<cell>#<repeat>`, that cell when it is known; else (legacy
    single-kernel runs) the suite itself."""
    if properties.get("cell"):
        return properties["cell"]
    base, sep, _ = suite_name.rpartition("#")
    if sep and base in set(known):
        return base
    return suite_name


def cell_ids(summary: dict) -> list[str]:
    """Every cell of a run, planned ones first, in the run's order."""
    return list(suites_by_cell(summary))


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value) -> list:
    return value if isinstance(value, list) else []


def suites_by_cell(summary: dict) -> dict[str, tuple[dict, list[dict]]]:
    """cell id -> (cell entry, its suites). Tolerates a crashed run's missing
    keys, and legacy runs with no `cells` (each suite its own cell)."""
    out: dict[str, tuple[dict, list[dict]]] = {}
    for c in _list(summary.get("cells")):
        if isinstance(c, dict) and c.get("id"):
            out.setdefault(str(c["id"]), (c, []))
    for s in _list(summary.get("suites")):
        if not isinstance(s, dict):
            continue
        cid = cell_of(str(s.get("name", "")), _dict(s.get("properties")), out)
        out.setdefault(cid, ({"id": cid, "repeats": 1}, []))[1].append(s)
    return out


def _cases(suite: dict) -> list[dict]:
    return [c for c in _list(suite.get("cases")) if isinstance(c, dict)]


def _failed_keys(suites: list[dict]) -> dict[str, list[dict]]:
    """key -> the failed case of each repeat that showed it (one a repeat)."""
    out: dict[str, list[dict]] = {}
    for s in suites:
        mine: dict[str, dict] = {}
        for c in _cases(s):
            props = _dict(c.get("properties"))
            if props.get("origin") == metrics.ORIGIN:
                continue  # a regression apply() wrote: classify() finds it from the figures
            if original_status(str(c.get("status", "")), props) == FAILED:
                key = problem_key(str(c.get("name", "")), str(c.get("classname", "")), props)
                mine.setdefault(key, c)
        for key, c in mine.items():
            out.setdefault(key, []).append(c)
    return out


def _errors(suites: list[dict]) -> tuple[ErrorCase, ...]:
    seen: dict[tuple[str, str], list[dict]] = {}
    for s in suites:
        for c in _cases(s):
            if original_status(str(c.get("status", "")), _dict(c.get("properties"))) == ERROR:
                seen.setdefault((str(c.get("classname", "")), str(c.get("name", ""))), []).append(c)
    return tuple(ErrorCase(name, cls, str(cs[0].get("kind", "")), str(cs[0].get("message", "")),
                           len(cs)) for (cls, name), cs in seen.items())


# --- classification ---------------------------------------------------------

Previous = Callable[[str], "dict[str, str] | None"]


def classify(summary: dict, previous: Previous,
             previous_runs: Mapping[str, str] | None = None,
             thresholds: metrics.Thresholds = metrics.DEFAULT) -> RunReport:
    """Classify every problem of the run.

    `previous(cell_id)` gives {key: title} of that cell's problems in the
    previous run of the same job, None when the cell never ran before.
    `previous_runs` optionally maps cell id -> that previous run's id, only
    for display. A cell's figures are compared with its baseline cell's
    (lab/metrics.py, under `thresholds`); each regression is a problem."""
    groups = suites_by_cell(summary)
    failed = {cid: _failed_keys(suites) for cid, (_, suites) in groups.items()}
    cells = []
    for cid, (entry, suites) in groups.items():
        baseline = str(entry["baseline"]) if entry.get("baseline") else None
        base_keys = failed.get(baseline, {}) if baseline else {}
        prev = previous(cid)
        problems = tuple(
            Problem(key=key, title=str(cs[0].get("name", key)), kind=str(cs[0].get("kind", "")),
                    classname=str(cs[0].get("classname", "")),
                    message=_strip_annotation(cs[0]), seen=len(cs), repeats=len(suites),
                    novelty=_novelty(prev, key), pre_existing=key in base_keys,
                    baseline_cell=baseline)
            for key, cs in failed[cid].items())
        comparisons = (metrics.compare(suites, groups[baseline][1], failed[cid], thresholds)
                       if baseline in groups and baseline != cid else ())
        # a regression is the cell's own (the baseline is what it is measured
        # against), judged on the median of every repeat: never flaky
        problems += tuple(
            Problem(key=_regression_key(c), title=c.name, kind=c.kind, classname=c.classname,
                    message=c.message(str(baseline)), seen=len(suites), repeats=len(suites),
                    novelty=_novelty(prev, _regression_key(c)), pre_existing=False,
                    baseline_cell=baseline)
            for c in metrics.regressions(comparisons))
        keys = {p.key for p in problems}
        # A cell that left no results says nothing about what went away.
        gone = tuple(Gone(k, t) for k, t in (prev or {}).items() if k not in keys) if suites else ()
        errors = _errors(suites)
        cells.append(CellReport(
            id=cid, kernel=str(entry.get("kernel") or ""), variant=str(entry.get("variant") or ""),
            workloads=str(entry.get("workloads") or ""), baseline=baseline,
            reference=bool(entry.get("reference")), repeats=_int(entry.get("repeats"), len(suites)),
            ran=len(suites), problems=problems, gone=gone, errors=errors,
            verdict=_verdict(suites, problems, errors), has_previous=prev is not None,
            previous_run_id=(previous_runs or {}).get(cid) if prev is not None else None,
            comparisons=comparisons))
    return RunReport(run_id=str(summary.get("run_id") or ""),
                     job=str(summary.get("name") or summary.get("job") or ""),
                     state=str(summary.get("state") or ""), cells=tuple(cells),
                     exit_code=_exit_code(cells))


def _novelty(prev: dict[str, str] | None, key: str) -> Novelty:
    return Novelty.KNOWN if prev is not None and key in prev else Novelty.NEW


def _regression_key(c: metrics.Comparison) -> str:
    return problem_key(c.name, c.classname, {})


def _int(value, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _strip_annotation(case: dict) -> str:
    """The case's message as the runner wrote it, before apply() prefixed it."""
    msg = str(case.get("message", ""))
    props = _dict(case.get("properties"))
    if props.get("outcome") == Outcome.PRE_EXISTING:
        prefix = f"pre-existing: also seen on baseline {props.get('baseline_cell', '')}: "
        return msg.removeprefix(prefix)
    if props.get("outcome") == Outcome.FLAKY:
        return msg.removeprefix(f"[flaky {props.get('flaky_rate', '')}] ")
    return msg


def _verdict(suites: list[dict], problems: tuple[Problem, ...],
             errors: tuple[ErrorCase, ...]) -> Verdict:
    if any(not p.pre_existing for p in problems):
        return Verdict.FAILED
    if errors:
        return Verdict.ERROR
    if problems:
        return Verdict.PRE_EXISTING
    return Verdict.PASSED if suites else Verdict.NOT_RUN


def _exit_code(cells: list[CellReport]) -> int:
    """1 when a non-reference cell has a problem its baseline does not
    explain (flaky ones too: a flaky WARNING is still a bug); else 2 when
    any case could not be carried out; else 0."""
    if any(not p.pre_existing for c in cells if c.counts_for_exit for p in c.problems):
        return 1
    if any(c.errors for c in cells):
        return 2
    return 0


# --- annotating the live results ---------------------------------------------

def apply(report: RunReport, suites: list[SuiteResult]) -> None:
    """Write the classification onto the result objects, so that the JUnit
    a CI system shows agrees with the exit code: a failure the baseline
    explains becomes a skip (neither Jenkins nor GitLab has a "known
    failure" state, both show a skip's message), a flaky one keeps failing
    with its rate in the message; a regression against the baseline's
    figures becomes a failed testcase in the first suite of its cell.
    Applying twice changes nothing more."""
    known = [c.id for c in report.cells]
    placed: set[str] = set()
    for suite in suites:
        cell = report.cell(cell_of(suite.name, suite.properties, known))
        if cell is None:
            continue
        if cell.id not in placed:
            placed.add(cell.id)
            _add_regressions(cell, suite)
        for case in suite.cases:
            props = case.properties
            if original_status(case.status.value, props) != FAILED:
                continue
            problem = cell.problem(problem_key(case.name, case.classname, props))
            if problem is None:
                continue
            props["novelty"] = str(problem.novelty)
            if "outcome" in props:
                continue
            if problem.pre_existing and not cell.reference:
                case.status = Status.SKIPPED
                case.message = (f"pre-existing: also seen on baseline {problem.baseline_cell}: "
                                f"{case.message}")
                props.update(outcome=str(Outcome.PRE_EXISTING), original_status=FAILED,
                             baseline_cell=str(problem.baseline_cell))
            elif problem.flaky:
                case.message = f"[flaky {problem.rate}] {case.message}"
                props.update(outcome=str(Outcome.FLAKY), flaky_rate=problem.rate)


def _add_regressions(cell: CellReport, suite: SuiteResult) -> None:
    """Each regression of the cell as a failed testcase in `suite` (once)."""
    have = {(c.classname, c.name) for c in suite.cases}
    for c in cell.regressions:
        if (c.classname, c.name) in have:
            continue
        suite.cases.append(CaseResult(
            c.name, Status.FAILED, classname=c.classname, kind=c.kind,
            message=c.message(str(cell.baseline)),
            properties=dict(metrics.case_properties(c, str(cell.baseline)))))


# --- rendering ---------------------------------------------------------------

GROUPS = ("new", "known", "gone", "pre-existing", "flaky")


def render(report: RunReport, fmt: Format | str = Format.TEXT) -> str:
    fmt = Format(fmt)
    if fmt is Format.JSON:
        return json.dumps(report.to_dict(), indent=2) + "\n"
    if fmt is Format.MARKDOWN:
        return _markdown(report)
    return _text(report)


def _describe(p: Problem) -> str:
    kind = f" [{p.kind}]" if p.kind else ""
    rate = f" ({p.rate})" if p.repeats > 1 else ""
    return f"{p.title}{kind}{rate}"


def _lines(cell: CellReport, group: str) -> list[str]:
    if group == "gone":
        return [g.title for g in cell.gone]
    if group == "pre-existing":
        return [f"{_describe(p)}, also on {p.baseline_cell}" for p in cell.group(group)]
    if group == "flaky":
        return [f"{_describe(p)}, {p.novelty}" for p in cell.group(group)]
    return [_describe(p) for p in cell.group(group)]


def _header(report: RunReport) -> list[str]:
    prev = ", ".join(report.previous_run_ids) or "none (first run of these cells)"
    return [f"run {report.run_id or '?'}, job {report.job or '?'}, state {report.state or '?'}"
            f", exit code {report.exit_code}", f"compared with: {prev}"]


def _cell_title(cell: CellReport) -> str:
    notes = [f"{cell.ran}/{cell.repeats} repeats"]
    if cell.baseline:
        notes.append(f"baseline {cell.baseline}")
    if cell.reference:
        notes.append("reference")
    if not cell.has_previous:
        notes.append("no previous run")
    return f"{cell.id}: {cell.verdict.upper()} ({', '.join(notes)})"


def _text(report: RunReport) -> str:
    out = _header(report)
    for cell in report.cells:
        out.append(_cell_title(cell))
        for group in GROUPS:
            lines = _lines(cell, group)
            if lines:
                out.append(f"  {group}:")
                out += [f"    {line}" for line in lines]
        if cell.errors:
            out.append("  errors:")
            out += [f"    {e.name}: {e.message}" for e in cell.errors]
    compared = [c for c in report.cells if c.comparisons]
    if compared:
        out.append("figures vs baseline (latencies and bandwidth/IOPS, medians over repeats):")
        for cell in compared:
            out.append(f"  {_figures_line(cell)}")
            out += [f"    [{r.kind}] {r.message(str(cell.baseline))}" for r in cell.regressions]
    return "\n".join(out) + "\n"


def _figures_line(cell: CellReport) -> str:
    n = len(cell.regressions)
    return (f"{cell.id} vs {cell.baseline}: {len(cell.comparisons)} figures compared, "
            f"{n or 'no'} regression{'' if n == 1 else 's'}")


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;")


def _markdown(report: RunReport) -> str:
    head = _header(report)
    out = [f"### lab: {_md(head[0])}", "", _md(head[1]), "",
           "| cell | verdict | new | known | gone | pre-existing | flaky | errors |",
           "|---|---|---|---|---|---|---|---|"]
    for c in report.cells:
        n = [len(_lines(c, g)) for g in GROUPS]
        out.append(f"| `{c.id}` | {c.verdict} | " + " | ".join(map(str, n)) + f" | {len(c.errors)} |")
    for cell in report.cells:
        body = [f"- **{group}**: " + "; ".join(_md(x) for x in _lines(cell, group))
                for group in GROUPS if _lines(cell, group)]
        body += [f"- **error** {_md(e.name)}: {_md(e.message)}" for e in cell.errors]
        if body:
            out += ["", f"#### `{cell.id}`: {cell.verdict}", ""] + body
    compared = [c for c in report.cells if c.comparisons]
    if compared:
        out += ["", "#### Figures vs baseline", ""]
        out += [f"- {_md(_figures_line(c))}" for c in compared]
        rows = [(cell, r) for cell in compared for r in cell.regressions]
        if rows:
            out += ["", "| cell | case | figure | value | baseline | ratio | kind | regression when |",
                    "|---|---|---|---|---|---|---|---|"]
            out += [f"| `{cell.id}` | {_md(r.case)} | {_md(r.prop)} | {r.value:.4g} {_md(r.unit)} "
                    f"| {r.baseline:.4g} {_md(r.unit)} | "
                    f"{'n/a' if r.ratio is None else f'{r.ratio:.2f}x'} | {r.kind} | "
                    f"{_md(r.threshold)} |" for cell, r in rows]
    return "\n".join(out) + "\n"


__all__ = ["Novelty", "Verdict", "Outcome", "Format", "Problem", "Gone", "ErrorCase",
           "CellReport", "RunReport", "problem_key", "original_status", "cell_of", "cell_ids",
           "suites_by_cell", "classify", "apply", "render"]
