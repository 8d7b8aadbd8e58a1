"""A bisection's results (pure): the outcome as a dict (what --json prints
and bisect.json keeps), the text a person reads, and the JUnit suites and
summary.json (format 2) of the whole bisection, which `lab report` and the
history store read like any run's."""

from __future__ import annotations

import statistics

from ..results import CaseResult, Status, SuiteResult
from .revisions import Revision
from .search import Done, Outcome, Search, Tally
from .state import RunRecord, State

EXIT_CODES = {Outcome.FOUND: 0}      # every other outcome: 1
EXPLAIN = {
    Outcome.FOUND: "the first bad revision",
    Outcome.AMBIGUOUS: "no single first bad revision: the revisions that could be it were "
                       "skipped",
    Outcome.LOW_CONFIDENCE: "the most likely first bad revision, below the asked confidence",
    Outcome.NOT_REPRODUCED: "the target does not appear on the bad endpoint",
    Outcome.GOOD_IS_BAD: "the target appears on the good endpoint already",
    Outcome.UNTESTABLE: "an endpoint cannot be tested",
}


def exit_code(outcome: Outcome | str) -> int:
    return EXIT_CODES.get(Outcome(outcome), 1)


def _mean(xs: list[float]) -> float | None:
    return round(statistics.fmean(xs), 1) if xs else None


def step_rows(state: State) -> list[dict]:
    """Each revision run, in the order first run: its verdict and runs."""
    rows = []
    for number, i in enumerate(state.steps(), 1):
        runs = [r for r in state.runs if r.index == i]
        t = Tally(good=sum(r.verdict == "good" for r in runs),
                  bad=sum(r.verdict == "bad" for r in runs),
                  skip=sum(r.verdict == "skip" for r in runs))
        rev = state.revisions[i]
        reasons = [r.reason for r in runs if r.verdict in ("bad", "skip")]
        secs = [r.seconds for r in runs]
        # build: what building cost (summed: a cache hit costs ~0); boot,
        # workload, other: the mean over the step's runs
        rows.append({
            "step": number, "index": i, "revision": rev.to_dict(),
            "verdict": str(t.verdict) if t.verdict else "", "runs": len(runs),
            "bad": t.bad, "good": t.good, "skip": t.skip,
            "reason": reasons[0] if reasons else (runs[-1].reason if runs else ""),
            "run_dirs": [r.run_dir for r in runs],
            "built": any(r.kernel.get("cache") == "built" for r in runs),
            "seconds": {
                "build": round(sum(s.get("build", 0.0) for s in secs), 1),
                "make": round(sum(s.get("make", 0.0) for s in secs), 1),
                "boot": _mean([s["boot"] for s in secs if "boot" in s]),
                "workload": _mean([s["workload"] for s in secs if "workload" in s]),
                "other": _mean([s["other"] for s in secs if "other" in s]),
                "total": round(sum(s.get("total", 0.0) for s in secs), 1)},
        })
    return rows


def result(state: State, done: Done, search: Search) -> dict:
    """The outcome as data (--json, bisect.json's `result`)."""
    bad, runs = search.endpoint_rate
    revs = state.revisions

    def rev(i: int | None) -> dict | None:
        return revs[i].to_dict() if i is not None else None
    culprit_runs = [r for r in state.runs if r.index == done.culprit and r.verdict == "bad"]
    return {
        "outcome": str(done.outcome), "meaning": EXPLAIN[done.outcome],
        "exit_code": exit_code(done.outcome), "message": done.message,
        "culprit": rev(done.culprit) if done.outcome in (
            Outcome.FOUND, Outcome.AMBIGUOUS, Outcome.LOW_CONFIDENCE) else None,
        "confidence": round(done.confidence, 4),
        "asked_confidence": state.setup.policy.confidence,
        "candidates": [revs[c].to_dict() for c in done.candidates],
        "max_runs_needed": done.max_runs_needed,
        "evidence": culprit_runs[0].evidence if culprit_runs else [],
        "signature": culprit_runs[0].signature if culprit_runs else "",
        "target": state.setup.target.to_dict(), "target_text": state.setup.target.describe(),
        "reproduction": {"bad_endpoint_runs": runs, "bad_endpoint_bad": bad,
                         "flaky": search.flaky, "rate_used": round(search.rate, 4)},
        "good": rev(0), "bad": rev(len(revs) - 1),
        "steps": step_rows(state), "build_and_test_steps": len(state.steps()),
        "runs": len(state.runs), "retried_runs": len(state.infra),
        "seconds": round(sum(r.seconds.get("total", 0.0) for r in state.runs), 1),
    }


def _who(r: dict) -> str:
    bits = [r["subject"]]
    if r.get("author"):
        bits.append(f"author: {r['author']}")
    if r.get("commit"):
        bits.append(f"commit: {r['commit'][:12]}")
    return "; ".join(bits)


def _s(x) -> str:
    return "-" if x is None else f"{x:.0f}s"


def text(res: dict, where: str) -> str:
    """What `lab bisect` prints at the end."""
    out = []
    outcome, c = Outcome(res["outcome"]), res.get("culprit")
    rep = res["reproduction"]
    if outcome is Outcome.FOUND:
        out.append(f"first bad revision: {c['id']} (confidence {res['confidence']:.2f})")
        out.append(f"  {_who(c)}")
    elif outcome in (Outcome.AMBIGUOUS, Outcome.LOW_CONFIDENCE):
        out.append(f"{res['meaning']}: {res['message']}")
        if c:
            out.append(f"  most likely: {c['id']}: {_who(c)} (confidence "
                       f"{res['confidence']:.2f}, asked {res['asked_confidence']:g})")
        out.append("  candidates: " + ", ".join(x["id"] for x in res["candidates"]))
        if res.get("max_runs_needed"):
            out.append(f"  to reach it: --max-runs {res['max_runs_needed']} (--resume keeps "
                       "the runs made so far)")
    else:
        out.append(f"no culprit: {res['meaning']}: {res['message']}")
    out.append(f"  target: {res['target_text']}")
    for e in res.get("evidence") or []:
        out.append(f"  evidence: {e}")
    rate = (f"reproduced in {rep['bad_endpoint_bad']}/{rep['bad_endpoint_runs']} runs of the "
            "bad endpoint" if rep["bad_endpoint_runs"] else
            "the bad endpoint not run (--endpoints as-needed)")
    out.append(f"  {rate}" + (
        f": flaky, planned with a rate of {rep['rate_used']:.2f} (the lower end of its "
        "interval)" if rep["flaky"] else ": taken as deterministic"))
    out.append(f"  {res['build_and_test_steps']} build-and-test step(s), {res['runs']} run(s)"
               + (f", {res['retried_runs']} retried for the host" if res["retried_runs"] else "")
               + f", {res['seconds']:.0f}s")
    out.append("")
    out.append(f"{'step':>4}  {'revision':<12} {'verdict':<7} {'runs':>4}  {'build':>6} "
               f"{'(make)':>6} {'boot':>5} {'workload':>8} {'other':>5}  {'kernel':<6}  "
               "subject / why")
    for s in res["steps"]:
        r, sec = s["revision"], s["seconds"]
        why = r["subject"][:50]
        if s["verdict"] == "skip":
            why = "skip: " + s["reason"][:70]
        counts = f"{s['runs']}" if not (s["bad"] and s["good"]) else \
            f"{s['runs']}({s['bad']}b)"
        out.append(f"{s['step']:>4}  {r['label']:<12} {s['verdict']:<7} {counts:>4}  "
                   f"{_s(sec['build']):>6} {_s(sec.get('make')):>6} {_s(sec['boot']):>5} "
                   f"{_s(sec['workload']):>8} {_s(sec.get('other')):>5}  "
                   f"{'built' if s.get('built') else 'cached':<6}  {why}")
    out.append("")
    out.append(f"results: {where} (bisect.json, junit.xml, summary.json, a directory per step)")
    return "\n".join(out) + "\n"


# --- JUnit and summary.json of the bisection ---------------------------------------

def _run_case(r: RunRecord, rev: Revision) -> CaseResult:
    status = {"bad": Status.FAILED, "good": Status.PASSED, "skip": Status.SKIPPED}.get(
        r.verdict, Status.ERROR)
    props = {"run_dir": r.run_dir, "verdict": r.verdict, "revision": rev.id,
             **{f"{k}_s": f"{v:.1f}" for k, v in r.seconds.items()},
             **{f"kernel_{k}": v for k, v in r.kernel.items() if v}}
    if r.signature:
        props["signature"] = r.signature
    details = "\n".join(r.evidence + ([""] + ["also failed: " + o for o in r.others]
                                      if r.others else []))
    return CaseResult(f"run {r.n}", status, r.seconds.get("total", 0.0),
                      classname=f"bisect.{rev.label}",
                      message=(r.reason if r.verdict != "good" else "") [:300],
                      details=details, properties=props,
                      kind="" if r.verdict == "good" else r.verdict)


def suites(state: State, res: dict | None) -> list[SuiteResult]:
    """A suite per step (a case per run), then the suite `bisect` whose case
    `first-bad` says the outcome: failed naming the first bad revision when
    one was found (the regression located), error otherwise."""
    out = []
    for row in step_rows(state):
        i = row["index"]
        rev = state.revisions[i]
        s = SuiteResult(f"step{row['step']:02d}-{rev.label}",
                        {"cell": f"step{row['step']:02d}-{rev.label}", "index": str(i),
                         "revision": rev.id, "subject": rev.subject, "verdict": row["verdict"],
                         "runs": str(row["runs"])})
        s.cases = [_run_case(r, rev) for r in state.runs if r.index == i]
        out.append(s)
    final = SuiteResult("bisect", {"cell": "bisect", "state": state.status,
                                   "target": state.setup.target.describe()})
    if res is not None:
        c = res.get("culprit")
        props = {"outcome": res["outcome"], "confidence": f"{res['confidence']:.4f}",
                 "asked_confidence": f"{res['asked_confidence']:g}",
                 "steps": str(res["build_and_test_steps"]), "runs": str(res["runs"])}
        if c:
            props.update({"culprit": c["id"], "culprit_subject": c["subject"],
                          "culprit_author": c["author"], "culprit_commit": c["commit"]})
        if res["outcome"] == Outcome.FOUND:
            final.cases.append(CaseResult(
                "first-bad", Status.FAILED, res["seconds"], classname="bisect",
                kind="culprit", message=f"first bad: {c['id']}: {_who(c)}"[:300],
                details="\n".join(res.get("evidence") or []), properties=props))
        else:
            final.cases.append(CaseResult(
                "first-bad", Status.ERROR, res["seconds"], classname="bisect",
                kind=res["outcome"], message=f"{res['meaning']}: {res['message']}"[:300],
                properties=props))
    out.append(final)
    return out


def summary(state: State, job_name: str, job_file: str, res: dict | None,
            suite_list: list[SuiteResult], exit_code: int | None) -> dict:
    """summary.json (format 2) of the bisection: a cell per step. Its state
    is the process's, as for any run: running (exit code null), finished,
    interrupted (130)."""
    cells = [{"id": s.properties["cell"], "kernel": s.properties.get("revision", "bisect"),
              "variant": "default", "workloads": "default", "kernel_kind": "build",
              "baseline": None, "reference": False, "repeats": len(s.cases)}
             for s in suite_list]
    running = state.status == "running"
    return {"format": 2, "kind": "bisect", "run_id": state.id, "name": f"bisect-{job_name}",
            "job": job_file, "started": state.created,
            "ended": None if running else state.updated,
            "state": "interrupted" if state.status == "interrupted"
            else "running" if running else "finished",
            "exit_code": None if running else exit_code, "pid": state.pid, "cells": cells,
            "suites": [s.to_dict() for s in suite_list], "result": res}
