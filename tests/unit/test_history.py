"""The history store: what a report compares against, on a real SQLite file."""

import sqlite3
import threading

import pytest

from lab.errors import InfraError
from lab.history import History, default_path
from lab.report import classify

WARN = "WARNING in unpin_user_pages"


def run(run_id, hour, cells, name="nightly"):
    """A format-2 summary; cells maps cell id -> list of failed titles of its one repeat
    (None: the cell was planned but left no results)."""
    return {"format": 2, "run_id": run_id, "name": name, "state": "finished",
            "started": f"2026-11-30T{hour:02d}:00:00+0000",
            "cells": [{"id": c, "repeats": 1} for c in cells],
            "suites": [{"name": f"{c}#1", "properties": {"cell": c},
                        "cases": [{"name": t, "classname": "fio", "status": "failed",
                                   "properties": {"signature": t}} for t in fails]}
                       for c, fails in cells.items() if fails is not None]}


@pytest.fixture
def history(tmp_path):
    return History(tmp_path / "h" / "history.sqlite")


def test_previous_problems_come_from_the_latest_earlier_run_of_the_job(history):
    history.record(run("r1", 1, {"a": [WARN, "old"]}))
    history.record(run("r2", 2, {"a": [WARN]}))
    history.record(run("x", 3, {"a": ["other job"]}, name="smoke"))
    history.record(run("r4", 4, {"a": ["later"]}))
    assert history.previous_problems("nightly", "a", "r4") == {WARN: WARN}
    assert history.previous_problems("nightly", "a", "r2") == {WARN: WARN, "old": "old"}
    assert history.previous_problems("nightly", "a", "r1") is None
    assert history.previous_run_id("nightly", "r4") == "r2"


def test_previous_lookup_skips_runs_that_lack_the_cell_or_left_no_results(history):
    history.record(run("r1", 1, {"a": [WARN], "b": []}))
    history.record(run("r2", 2, {"b": []}))               # a not in this run
    history.record(run("r3", 3, {"a": None, "b": []}))    # a planned, crashed before it
    assert history.previous_problems("nightly", "a", "r4-not-recorded") == {WARN: WARN}
    assert history.previous_cell("nightly", "a", "r4").run_id == "r1"
    assert history.previous_problems("nightly", "b", "r4") == {}  # ran, no problems
    assert history.previous_problems("nightly", "c", "r4") is None


def test_recording_a_run_again_replaces_it(history):
    history.record(run("r1", 1, {"a": [WARN]}))
    history.record(run("r1", 1, {"a": ["fixed title"]}))
    assert history.previous_problems("nightly", "a", "r2") == {"fixed title": "fixed title"}
    assert [(r.run_id, r.cells, r.problems) for r in history.runs()] == [("r1", 1, 1)]


def test_runs_lists_newest_first_and_filters_by_job(history):
    for i, name in enumerate(["nightly", "smoke", "nightly"]):
        history.record(run(f"r{i}", i, {"a": []}, name=name))
    assert [r.run_id for r in history.runs()] == ["r2", "r1", "r0"]
    assert [r.run_id for r in history.runs("nightly", limit=1)] == ["r2"]


def test_legacy_run_is_recorded_under_its_directory_name(history, tmp_path):
    legacy = {"name": "smoke", "started": "2026-11-30T01:00:00+0000",
              "suites": [{"name": "smoke:6.1.0", "cases": [
                  {"name": "fio.pins", "classname": "fio", "status": "failed"}]}]}
    assert history.record(legacy, tmp_path / "20261130-010000-smoke") == "20261130-010000-smoke"
    assert history.previous_problems("smoke", "smoke:6.1.0", "next") == {"fio/fio.pins": "fio.pins"}


def test_previous_for_feeds_classify(history):
    history.record(run("r1", 1, {"a": [WARN, "old"]}))
    now = run("r2", 2, {"a": [WARN, "new"]})
    prev = history.previous_for(now)
    report = classify(now, lambda c: prev[c].problems if c in prev else None,
                      {c: p.run_id for c, p in prev.items()})
    cell = report.cells[0]
    assert [(p.key, p.novelty) for p in cell.problems] == [(WARN, "known"), ("new", "new")]
    assert [g.key for g in cell.gone] == ["old"] and report.previous_run_ids == ("r1",)


def test_concurrent_writers_all_land(history):
    history.runs()  # create the schema once, as the first run of a night does
    errors = []

    def write(i):
        try:
            History(history.path).record(run(f"r{i}", i, {"a": [f"p{i}"]}))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(history.runs(limit=100)) == 8
    assert sqlite3.connect(history.path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_corrupt_history_file_is_an_infra_error_naming_it(tmp_path):
    bad = tmp_path / "history.sqlite"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(InfraError, match=str(bad)):
        History(bad).runs()
    with pytest.raises(InfraError, match="cannot open"):
        History(tmp_path / "history.sqlite" / "under-a-file").runs()


def test_default_path_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("LAB_HISTORY", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_path() == tmp_path / "lab" / "history.sqlite"
    monkeypatch.setenv("LAB_HISTORY", "/x/h.sqlite")
    assert str(default_path()) == "/x/h.sqlite"


def test_lab_report_records_and_compares_with_the_previous_run(tmp_path, monkeypatch, capsys):
    import json

    from lab.cli import main
    monkeypatch.setenv("LAB_HISTORY", str(tmp_path / "h.sqlite"))
    monkeypatch.setenv("LAB_RUNS_DIR", str(tmp_path / "runs"))
    for i, fails in enumerate([[WARN, "old"], [WARN]], 1):
        (tmp_path / "runs" / f"r{i}").mkdir(parents=True)
        (tmp_path / "runs" / f"r{i}" / "summary.json").write_text(json.dumps(run(f"r{i}", i, {"a": fails})))
        assert main(["report", "--record", str(tmp_path / "runs" / f"r{i}")]) == 0
    assert "  known:\n    " + WARN + "\n  gone:\n    old" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "missing")]) == 3
    assert capsys.readouterr().out == ""  # bad input: an error on stderr, no report
