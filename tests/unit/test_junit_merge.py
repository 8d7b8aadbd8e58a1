"""Merging shards: junit.xml files into one with right totals, summary.json
files into one run whose exit code sees every cell."""

import xml.etree.ElementTree as ET

import pytest

from lab.errors import UserError
from lab.junit import merge, render
from lab.results import CaseResult, Status, SuiteResult
from lab.shards import merge_summaries


def shard(name, *statuses):
    cases = [CaseResult(f"c{i}", s, duration=0.1) for i, s in enumerate(statuses)]
    return render([SuiteResult(name, {"cell": name}, cases)])


def test_merge_concatenates_suites_and_recomputes_totals():
    a = shard("a#1", Status.PASSED, Status.FAILED, Status.SKIPPED)
    b = shard("b#1", Status.ERROR, Status.PASSED, Status.PASSED)
    root = ET.fromstring(merge([a, b]))
    assert [s.get("name") for s in root] == ["a#1", "b#1"]
    assert {k: root.get(k) for k in ("tests", "failures", "errors", "time")} == {
        "tests": "6", "failures": "1", "errors": "1", "time": "0.6"}
    assert root.get("skipped") is None            # junit-10.xsd has none on <testsuites>
    assert root[0].get("skipped") == "1"
    assert root[1].get("errors") == "1" and root[1].get("tests") == "3"


def test_merge_recounts_suites_whose_attributes_are_stale():
    bare = ('<testsuite name="x" tests="99"><testcase name="t" time="1.23456">'
            '<failure message="m"/></testcase></testsuite>')
    root = ET.fromstring(merge([bare]))
    assert (root.get("tests"), root.get("failures"), root.get("time")) == ("1", "1", "1.235")


@pytest.mark.parametrize("text, why", [("not xml at all", "not XML"),
                                       ("<html><body/></html>", "not JUnit XML: the root element is <html>")])
def test_merge_names_the_file_that_is_not_junit(text, why):
    with pytest.raises(UserError, match=f"b.xml: {why}"):
        merge([shard("a", Status.PASSED), text], ["a.xml", "b.xml"])


def summary(run_id, state, cells, *suites):
    return {"format": 2, "run_id": run_id, "name": "nightly", "state": state,
            "started": "2026-11-30T0%s:00:00+0000" % run_id[-1], "ended": "2026-11-30T09:00:00+0000",
            "cells": cells, "suites": [s.to_dict() for s in suites]}


def test_merged_summaries_judge_a_series_against_a_baseline_from_another_shard():
    warn = CaseResult("W", Status.FAILED, properties={"signature": "W"})
    series = {"id": "s", "baseline": "b", "reference": False, "repeats": 1}
    base = {"id": "b", "baseline": None, "reference": True, "repeats": 1}
    one = summary("r1", "finished", [series, base], SuiteResult("s#1", {"cell": "s"}, [warn]))
    two = summary("r2", "interrupted", [base], SuiteResult("b#1", {"cell": "b"}, [warn]))
    merged = merge_summaries([one, two])
    assert [c["id"] for c in merged["cells"]] == ["s", "b"]
    assert [s["name"] for s in merged["suites"]] == ["s#1", "b#1"]
    assert merged["state"] == "interrupted" and merged["shards"] == ["r1", "r2"]
    assert merged["started"] == "2026-11-30T01:00:00+0000"
    assert merged["exit_code"] == 0  # pre-existing: the baseline ran on the other shard
    assert merge_summaries([one])["exit_code"] == 1


def test_merge_summaries_rejects_what_is_not_a_summary():
    with pytest.raises(UserError, match="x.json"):
        merge_summaries([{"suites": []}, ["not", "a", "dict"]], ["ok.json", "x.json"])


def test_lab_junit_merge_writes_out_and_rejects_bad_input(tmp_path):
    from lab.cli import main
    (tmp_path / "a.xml").write_text(shard("a#1", Status.FAILED))
    (tmp_path / "b.xml").write_text("{}")
    assert main(["junit", "merge", str(tmp_path / "m.xml"), str(tmp_path / "a.xml")]) == 0
    assert ET.parse(tmp_path / "m.xml").getroot().get("failures") == "1"
    assert main(["junit", "merge", str(tmp_path / "n.xml"), str(tmp_path / "b.xml")]) == 3
    assert not (tmp_path / "n.xml").exists()
