"""The regression report: which problems are new, known, gone, pre-existing
on the baseline or flaky, and the exit code a nightly matrix gets."""

import json

from lab.report import Format, Novelty, Verdict, apply, classify, render
from lab.results import CaseResult, Status, SuiteResult

WARN = "WARNING in unpin_user_pages"
LOCKDEP = "possible deadlock in ext4_writepages"


def warn(name=WARN, status=Status.FAILED):
    return CaseResult(name, status, classname="fio", kind="warning", message=f"{name} at mm/gup.c",
                      properties={"signature": name})


def leak():
    return CaseResult("fio.pins", Status.FAILED, classname="fio", kind="pin-leak", message="64/42")


def ok():
    return CaseResult("fio.nvme", Status.PASSED, classname="fio")


def suites(cell, *repeats):
    """One SuiteResult a repeat of `cell`, each with the given cases."""
    return [SuiteResult(f"{cell}#{i}", {"cell": cell, "repeat": str(i)}, list(cases))
            for i, cases in enumerate(repeats, 1)]


def summary(results, cells=(("series.d.a", None, False),)):
    """A format-2 summary; cells are (id, baseline, reference)."""
    return {"format": 2, "run_id": "r2", "name": "nightly", "state": "finished",
            "cells": [{"id": i, "kernel": i.split(".")[0], "variant": "d", "workloads": "a",
                       "baseline": b, "reference": r, "repeats": 2} for i, b, r in cells],
            "suites": [s.to_dict() for s in results]}


PAIR = (("series.d.a", "base.d.a", False), ("base.d.a", None, True))


def none(_cell):
    return None


def test_new_known_and_gone_against_the_previous_run():
    prev = {WARN: WARN, "fio/fio.pins": "fio.pins"}
    report = classify(summary(suites("series.d.a", [warn(), warn(LOCKDEP)])),
                      lambda cell: prev if cell == "series.d.a" else None, {"series.d.a": "r1"})
    cell = report.cell("series.d.a")
    assert cell.problem(WARN).novelty is Novelty.KNOWN
    assert cell.problem(LOCKDEP).novelty is Novelty.NEW
    assert [(g.key, g.title) for g in cell.gone] == [("fio/fio.pins", "fio.pins")]
    assert report.previous_run_ids == ("r1",) and report.exit_code == 1


def test_without_history_everything_is_new_and_nothing_gone():
    cell = classify(summary(suites("series.d.a", [warn(), leak()])), none).cells[0]
    assert {p.key: p.novelty for p in cell.problems} == {WARN: Novelty.NEW, "fio/fio.pins": Novelty.NEW}
    assert not cell.has_previous and cell.gone == ()


def test_signature_is_the_key_and_non_findings_key_on_classname_and_name():
    renamed = CaseResult("WARNING in unpin_user_pages (2)", Status.FAILED, classname="rdma",
                         properties={"signature": WARN})
    cell = classify(summary(suites("series.d.a", [warn(), renamed, leak()])), none).cells[0]
    assert [p.key for p in cell.problems] == [WARN, "fio/fio.pins"]
    assert cell.problem(WARN).seen == 1  # one repeat, however many cases show it


def test_baseline_showing_the_problem_makes_it_pre_existing_and_the_run_pass():
    results = (suites("series.d.a", [warn()], [warn()])
               + suites("base.d.a", [ok()], [warn(), leak()]))
    report = classify(summary(results, PAIR), none)
    series, base = report.cell("series.d.a"), report.cell("base.d.a")
    assert series.problem(WARN).pre_existing and series.verdict is Verdict.PRE_EXISTING
    assert not base.problem(WARN).pre_existing and base.verdict is Verdict.FAILED
    assert report.exit_code == 0  # the reference cell's own failures do not fail the run


def test_a_problem_only_the_series_shows_fails_the_run():
    results = suites("series.d.a", [leak()], [leak()]) + suites("base.d.a", [warn()], [ok()])
    report = classify(summary(results, PAIR), none)
    assert not report.cell("series.d.a").problem("fio/fio.pins").pre_existing
    assert report.exit_code == 1


def test_flaky_problems_carry_their_rate_and_still_fail_the_run():
    two = classify(summary(suites("series.d.a", [warn()], [ok()])), none)
    three = classify(summary(suites("series.d.a", [warn()], [warn()], [ok()])), none)
    always = classify(summary(suites("series.d.a", [warn()], [warn()])), none)
    assert (two.cells[0].problems[0].rate, two.cells[0].problems[0].flaky) == ("1/2", True)
    assert (three.cells[0].problems[0].rate, three.cells[0].problems[0].flaky) == ("2/3", True)
    assert not always.cells[0].problems[0].flaky
    assert two.exit_code == three.exit_code == 1


def test_errors_are_listed_never_problems_and_give_exit_2():
    err = CaseResult("gup_test", Status.ERROR, kind="infra", message="ssh died")
    skip = CaseResult("rdma", Status.SKIPPED, message="no rxe")
    cell = classify(summary(suites("series.d.a", [ok(), err, skip], [err])), none).cells[0]
    assert cell.problems == () and cell.verdict is Verdict.ERROR
    assert [(e.name, e.seen) for e in cell.errors] == [("gup_test", 2)]
    report = classify(summary(suites("series.d.a", [err, warn()])), none)
    assert report.exit_code == 1  # a real failure outranks an infrastructure error


def test_apply_annotates_the_junit_view_to_agree_with_the_exit_code():
    results = (suites("series.d.a", [warn(), leak()], [warn()])
               + suites("base.d.a", [warn()], [warn()]))
    report = classify(summary(results, PAIR), none)
    apply(report, results)
    pre, flaky = results[0].cases
    assert pre.status is Status.SKIPPED
    assert pre.message == f"pre-existing: also seen on baseline base.d.a: {WARN} at mm/gup.c"
    assert pre.properties | {"signature": WARN} == {
        "signature": WARN, "outcome": "pre-existing", "original_status": "failed",
        "baseline_cell": "base.d.a", "novelty": "new"}
    assert flaky.status is Status.FAILED and flaky.message == "[flaky 1/2] 64/42"
    assert flaky.properties["flaky_rate"] == "1/2" and flaky.properties["novelty"] == "new"
    assert results[2].cases[0].status is Status.FAILED  # the reference cell keeps its failures


def test_classifying_an_annotated_summary_gives_the_same_report_and_apply_is_idempotent():
    results = (suites("series.d.a", [warn(), leak()], [warn()])
               + suites("base.d.a", [warn()], [warn()]))
    before = classify(summary(results, PAIR), none)
    apply(before, results)
    after = classify(summary(results, PAIR), none)
    assert after == before
    messages = [c.message for s in results for c in s.cases]
    apply(after, results)
    assert [c.message for s in results for c in s.cases] == messages


def test_legacy_summary_each_suite_is_its_own_cell():
    legacy = {"job": "jobs/smoke.yaml", "name": "smoke", "state": "finished",
              "suites": [SuiteResult("smoke:6.1.0", {}, [warn()]).to_dict(),
                         SuiteResult("other", {"cell": "named"}, [ok()]).to_dict()]}
    report = classify(legacy, none)
    assert [(c.id, c.repeats, c.baseline) for c in report.cells] == [
        ("smoke:6.1.0", 1, None), ("named", 1, None)]
    assert report.job == "smoke" and report.exit_code == 1


def test_a_crashed_run_with_missing_keys_is_classified_not_a_traceback():
    assert classify({}, none).exit_code == 0
    report = classify(summary([]), lambda cell: {WARN: WARN})
    cell = report.cells[0]
    assert cell.verdict is Verdict.NOT_RUN and cell.gone == ()  # no results: nothing went away


def test_render_groups_problems_in_every_format():
    results = (suites("series.d.a", [warn(), leak()], [warn(LOCKDEP), leak()])
               + suites("base.d.a", [leak()], [ok()]))
    report = classify(summary(results, PAIR), lambda c: {"x/gone": "old thing"}, {"series.d.a": "r1"})
    text = render(report, Format.TEXT)
    assert "compared with: r1" in text and "series.d.a: FAILED" in text
    assert "  gone:\n    old thing" in text
    assert "  pre-existing:\n    fio.pins [pin-leak] (2/2), also on base.d.a" in text
    assert f"  flaky:\n    {WARN} [warning] (1/2), new" in text
    data = json.loads(render(report, "json"))
    assert data["cells"][0]["problems"][0] | {"novelty": "new"} == data["cells"][0]["problems"][0]
    assert data["cells"][0]["problems"][0]["rate"] == "1/2" and data["exit_code"] == 1
    assert "| `series.d.a` | failed | 0 | 0 | 1 | 1 | 2 | 0 |" in render(report, "markdown")


REGRESSION = "fio/fio.nvme.libaio.write_iops-regression"


def fio_figures(iops, fsync_ms="20.0"):
    return CaseResult("fio.nvme.libaio", Status.PASSED, classname="fio", properties={
        "file": "/dev/nvme0n1", "write_iops": str(iops), "max_fsync_ms": fsync_ms})


def test_a_regression_against_the_baseline_fails_the_cell_as_its_own_testcase():
    """IOPS at a sixth of the baseline kernel's (medians of 2 repeats): a
    problem of the series cell (exit 1), a failed testcase of kind
    perf-regression in its first suite for JUnit, and a section of the
    report; the baseline cell is not compared with anything."""
    from lab.junit import render as junit
    results = (suites("series.d.a", [fio_figures(1000)], [fio_figures(1200)])
               + suites("base.d.a", [fio_figures(7400)], [fio_figures(6000)]))
    report = classify(summary(results, PAIR), none)
    series = report.cell("series.d.a")
    p = series.problem(REGRESSION)
    assert (p.kind, p.flaky, p.novelty, p.pre_existing) == ("perf-regression", False,
                                                            Novelty.NEW, False)
    assert p.message.startswith("write_iops of fio.nvme.libaio: 1100 IOPS over 2 repeats vs "
                                "6700 IOPS on baseline base.d.a (0.16x")
    assert series.verdict is Verdict.FAILED and report.exit_code == 1
    assert report.cell("base.d.a").comparisons == ()
    apply(report, results)
    [added] = [c for c in results[0].cases if c.name.endswith("-regression")]
    assert (added.status, added.kind, added.classname) == (Status.FAILED, "perf-regression", "fio")
    assert added.message == p.message and added.properties["novelty"] == "new"
    assert not [c for c in results[1].cases if c.name.endswith("-regression")]
    assert 'type="perf-regression"' in junit(results)


def test_an_annotated_summary_gives_the_same_regressions_and_apply_adds_them_once():
    results = (suites("series.d.a", [fio_figures(1000)], [fio_figures(1200)])
               + suites("base.d.a", [fio_figures(7400)], [fio_figures(6000)]))
    before = classify(summary(results, PAIR), none)
    apply(before, results)
    after = classify(summary(results, PAIR), none)
    assert after == before
    apply(after, results)
    assert sum(c.name.endswith("-regression") for s in results for c in s.cases) == 1


def test_noise_is_compared_but_not_reported_and_no_baseline_compares_nothing():
    noisy = (suites("series.d.a", [fio_figures(2100, "69")], [fio_figures(2300, "60")])
             + suites("base.d.a", [fio_figures(7400, "22")], [fio_figures(7000, "25")]))
    report = classify(summary(noisy, PAIR), none)
    cell = report.cell("series.d.a")
    assert len(cell.comparisons) == 2 and cell.regressions == () and report.exit_code == 0
    assert "series.d.a vs base.d.a: 2 figures compared, no regressions" in render(report)
    alone = classify(summary(suites("series.d.a", [fio_figures(10)])), none)
    assert alone.cells[0].comparisons == () and "figures vs baseline" not in render(alone)


def test_a_regression_is_known_next_run_and_gone_once_fixed():
    results = (suites("series.d.a", [fio_figures(1000)], [fio_figures(1200)])
               + suites("base.d.a", [fio_figures(7400)], [fio_figures(6000)]))
    prev = {REGRESSION: "fio.nvme.libaio.write_iops-regression"}
    cell = classify(summary(results, PAIR), lambda c: prev).cell("series.d.a")
    assert cell.problem(REGRESSION).novelty is Novelty.KNOWN
    fixed = (suites("series.d.a", [fio_figures(7000)], [fio_figures(6900)])
             + suites("base.d.a", [fio_figures(7400)], [fio_figures(6000)]))
    cell = classify(summary(fixed, PAIR), lambda c: prev).cell("series.d.a")
    assert [g.key for g in cell.gone] == [REGRESSION]


def test_regressions_in_every_format():
    results = (suites("series.d.a", [fio_figures(1000, "900")], [fio_figures(1200, "800")])
               + suites("base.d.a", [fio_figures(7400, "30")], [fio_figures(6000, "40")]))
    report = classify(summary(results, PAIR), none)
    text = render(report, Format.TEXT)
    assert ("figures vs baseline (latencies and bandwidth/IOPS, medians over repeats):\n"
            "  series.d.a vs base.d.a: 2 figures compared, 2 regressions\n") in text
    assert ("    [stall] max_fsync_ms of fio.nvme.libaio (fsync of /dev/nvme0n1): 850 ms over "
            "2 repeats vs 35 ms on baseline base.d.a (24.29x; a regression when above 3x and "
            "500 ms)") in text
    md = render(report, Format.MARKDOWN)
    assert "#### Figures vs baseline" in md
    assert ("| `series.d.a` | fio.nvme.libaio | write_iops | 1100 IOPS | 6700 IOPS | 0.16x | "
            "perf-regression | below 0.2x |") in md
    data = json.loads(render(report, Format.JSON))["cells"][0]
    assert len(data["comparisons"]) == 2
    assert {r["name"]: r["kind"] for r in data["regressions"]} == {
        "fio.nvme.libaio.write_iops-regression": "perf-regression",
        "fio.nvme.libaio.max_fsync_ms-regression": "stall"}
