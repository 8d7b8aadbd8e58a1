"""`lab matrix JOB --format gitlab|github`: the emitted pipelines pass each
engine's published schema (SchemaStore's, as check-jsonschema ships them),
cover the matrix with their shards, and their merge step really merges
(run here with bash and this lab)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lab.cli import main
from lab.junit import render as junit_render
from lab.pipelines import plan, render
from lab.results import CaseResult, Status, SuiteResult

REPO = Path(__file__).resolve().parents[2]
SCHEMA = {"gitlab": "vendor.gitlab-ci", "github": "vendor.github-workflows"}

JOB = """
name: four
image: debian-bookworm
kernel: distro
workloads:
  a: [{shell: {command: "true", case: a}}]
  b: [{shell: {command: "true", case: b}}]
  c: [{shell: {command: "true", case: c}}]
  d: [{shell: {command: "true", case: d}}]
"""


def emit(tmp_path, capsys, *args) -> str:
    job = tmp_path / "four.yaml"
    job.write_text(JOB)
    assert main(["matrix", str(job), *args]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("engine", ["gitlab", "github"])
@pytest.mark.parametrize("shards", [None, 2])
def test_pipeline_passes_the_engines_schema(tmp_path, capsys, engine, shards):
    text = emit(tmp_path, capsys, "--format", engine,
                *(["--shards", str(shards)] if shards else []))
    f = tmp_path / f"{engine}.yml"
    f.write_text(text)
    r = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema",
                        SCHEMA[engine], str(f)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    doc = yaml.safe_load(text)
    n = shards or 4
    if engine == "gitlab":
        job = doc["lab-shard"]
        assert job["parallel"]["matrix"] == [{"SHARD": [str(i) for i in range(1, n + 1)]}]
        assert f'--shard "$SHARD/{n}"' in job["script"][0]
        assert job["artifacts"]["reports"]["junit"] == "results/shard-$SHARD/junit.xml"
        assert job["allow_failure"] == {"exit_codes": [1]}
        merge = doc["lab-merge"]
        assert merge["when"] == "always" and merge["needs"][0]["job"] == "lab-shard"
        assert any("--summaries" in line for line in merge["script"])
        assert any(line.startswith("lab report") for line in merge["script"])
    else:
        job = doc["jobs"]["shard"]
        assert job["strategy"]["matrix"]["shard"] == list(range(1, n + 1))
        assert job["strategy"]["fail-fast"] is False
        assert f'--shard "${{{{ matrix.shard }}}}/{n}"' in job["steps"][1]["run"]
        assert job["steps"][2]["uses"].startswith("actions/upload-artifact")
        merge = doc["jobs"]["merge"]
        assert merge["needs"] == "shard" and merge["if"] == "always()"
        assert "GITHUB_STEP_SUMMARY" in merge["steps"][1]["run"]


@pytest.mark.parametrize("args, field", [
    (["--shards", "0"], "--shards"), (["--shards", "5"], "--shards"),
    (["--shard", "1/2"], "--format"), (["--runner-tag", "a b"], "--runner-tag")])
def test_bad_pipeline_options_are_bad_input(tmp_path, capsys, args, field):
    job = tmp_path / "four.yaml"
    job.write_text(JOB)
    assert main(["matrix", str(job), "--format", "gitlab", *args]) == 3
    assert f"field '{field}'" in capsys.readouterr().err


def _shard_dir(d: Path, run_id: str, cell: str, status: Status) -> Path:
    d.mkdir(parents=True)
    suite = SuiteResult(f"{cell}#1", {"cell": cell, "repeat": "1"},
                        [CaseResult("boot", Status.PASSED), CaseResult(cell, status, message="x")])
    (d / "junit.xml").write_text(junit_render([suite]))
    cells = [{"id": cell, "kernel": "distro", "variant": "default", "workloads": cell,
              "baseline": None, "reference": False, "repeats": 1}]
    (d / "summary.json").write_text(json.dumps({
        "format": 2, "run_id": run_id, "name": "four", "job": "four.yaml", "state": "finished",
        "started": "2026-11-30T01:00:00+0000", "ended": "2026-11-30T01:01:00+0000",
        "exit_code": 0 if status is Status.PASSED else 1, "cells": cells,
        "suites": [suite.to_dict()]}))
    return d


@pytest.mark.parametrize("failing, code", [(False, 0), (True, 1)])
def test_the_merge_script_merges_reports_and_exits_with_the_merged_code(
        tmp_path, failing, code):
    """The merge job's own lines, run by bash in a directory holding what the
    shards uploaded, with `lab` on PATH."""
    p = plan("four.yaml", "four", 4, 2)
    script = yaml.safe_load(render(p, "gitlab"))["lab-merge"]["script"]
    _shard_dir(tmp_path / "results" / "shard-1", "s1", "a", Status.PASSED)
    _shard_dir(tmp_path / "results" / "shard-2", "s2", "b",
               Status.FAILED if failing else Status.PASSED)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "lab").write_text(f"#!/bin/sh\nexec {sys.executable} -m lab.cli \"$@\"\n")
    (bin_dir / "lab").chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", PYTHONPATH=str(REPO),
               LAB_HISTORY=str(tmp_path / "h.sqlite"))
    r = subprocess.run(["bash", "-c", "\n".join(script)], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == code, r.stdout + r.stderr
    merged = json.loads((tmp_path / "merged" / "summary.json").read_text())
    assert [s["name"] for s in merged["suites"]] == ["a#1", "b#1"]
    assert (tmp_path / "merged" / "junit.xml").read_text().count("<testsuite ") == 2
    assert "b" in (tmp_path / "merged" / "report.md").read_text()
