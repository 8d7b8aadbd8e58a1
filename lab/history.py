"""The history store: every recorded run's cells, cases and problems in one
SQLite file, so a report can say what is new since the previous night.

SQLite because nightly shards on one host record concurrently and a file
needs no server: WAL lets readers go on while one writer records, a busy
timeout makes writers queue instead of failing, and each run is recorded in
one transaction, so a killed writer leaves the previous state. Classifying is
lab.report's job; this module only stores facts and looks them up.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import InfraError
from .report import cell_ids, classify, original_status, problem_key, suites_by_cell
from .results import epoch

SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, name TEXT NOT NULL, job TEXT, run_dir TEXT,
    started TEXT, started_ts REAL NOT NULL, ended TEXT, state TEXT, exit_code INTEGER,
    format INTEGER, recorded TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS runs_by_name ON runs (name, started_ts, run_id);
CREATE TABLE IF NOT EXISTS cells (
    run_id TEXT NOT NULL REFERENCES runs ON DELETE CASCADE, cell_id TEXT NOT NULL,
    kernel TEXT, variant TEXT, workloads TEXT, baseline TEXT, reference INTEGER NOT NULL,
    repeats INTEGER NOT NULL, ran INTEGER NOT NULL, verdict TEXT NOT NULL,
    PRIMARY KEY (run_id, cell_id));
CREATE TABLE IF NOT EXISTS cases (
    run_id TEXT NOT NULL REFERENCES runs ON DELETE CASCADE, cell_id TEXT NOT NULL,
    suite TEXT NOT NULL, name TEXT NOT NULL, classname TEXT, status TEXT NOT NULL,
    kind TEXT, key TEXT NOT NULL, duration REAL, message TEXT);
CREATE INDEX IF NOT EXISTS cases_by_run ON cases (run_id, cell_id);
CREATE TABLE IF NOT EXISTS problems (
    run_id TEXT NOT NULL REFERENCES runs ON DELETE CASCADE, cell_id TEXT NOT NULL,
    key TEXT NOT NULL, title TEXT NOT NULL, kind TEXT, seen INTEGER NOT NULL,
    repeats INTEGER NOT NULL, pre_existing INTEGER NOT NULL,
    PRIMARY KEY (run_id, cell_id, key));
CREATE INDEX IF NOT EXISTS problems_by_key ON problems (key);
"""


@dataclass(frozen=True)
class RunRow:
    run_id: str
    name: str
    job: str
    run_dir: str
    started: str
    state: str
    exit_code: int | None
    cells: int
    problems: int


@dataclass(frozen=True)
class PreviousCell:
    """A cell's problems in the run it is compared against."""

    run_id: str
    problems: dict[str, str]   # key -> title


def default_path() -> Path:
    """$LAB_HISTORY, else $XDG_DATA_HOME/lab/history.sqlite, else
    ~/.local/share/lab/history.sqlite: data to keep, not a cache."""
    if os.environ.get("LAB_HISTORY"):
        return Path(os.environ["LAB_HISTORY"])
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "lab" / "history.sqlite"


def run_id_of(summary: dict, run_dir: Path | None) -> str:
    """The summary's run_id; legacy runs have none, their directory's name is."""
    rid = summary.get("run_id") or (run_dir.name if run_dir else "")
    if not rid:
        raise InfraError("summary.json has no run_id and no run directory was given")
    return str(rid)


def job_name_of(summary: dict) -> str:
    """The name runs of one job share: the job's name, else its file's stem."""
    return str(summary.get("name") or Path(str(summary.get("job") or "")).stem)


class History:
    """One history file. Connections are short-lived: one a call."""

    def __init__(self, path: Path | str):
        self.path = Path(path)

    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            con = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except (OSError, sqlite3.Error) as e:
            raise InfraError(f"{self.path}: cannot open the history file: {e}") from None
        try:
            con.execute("PRAGMA foreign_keys = ON")
            version = con.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise InfraError(f"{self.path}: history schema version {version} is newer than "
                                 f"this lab's ({SCHEMA_VERSION}); upgrade lab or use --history")
            if version < SCHEMA_VERSION:
                con.execute("PRAGMA journal_mode = WAL")
                con.execute("BEGIN IMMEDIATE")
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    con.execute(statement)
                con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                con.execute("COMMIT")
        except sqlite3.Error as e:
            con.close()
            raise InfraError(f"{self.path}: not a usable lab history file ({e}); move it aside "
                             "or point LAB_HISTORY elsewhere") from None
        except BaseException:
            con.close()
            raise
        return con

    def _query(self, sql: str, params=()) -> list[tuple]:
        con = self._connect()
        try:
            return con.execute(sql, params).fetchall()
        except sqlite3.Error as e:
            raise InfraError(f"{self.path}: reading the history failed: {e}") from None
        finally:
            con.close()

    def record(self, summary: dict, run_dir: Path | None = None) -> str:
        """Store a run (replacing an earlier record of the same run_id, so a
        run can be recorded while running and again when done). Returns its id."""
        run_id = run_id_of(summary, run_dir)
        report = classify(summary, lambda _cell: None)
        con = self._connect()
        try:
            con.execute("BEGIN IMMEDIATE")
            con.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
            con.execute("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?)", (
                run_id, job_name_of(summary), summary.get("job"),
                str(run_dir) if run_dir else None, summary.get("started"),
                epoch(summary.get("started")) or 0.0, summary.get("ended"), summary.get("state"),
                _exit_code(summary, report.exit_code), summary.get("format") or 1,
                time.strftime("%Y-%m-%dT%H:%M:%S%z")))
            con.executemany("INSERT INTO cells VALUES (?,?,?,?,?,?,?,?,?,?)", [
                (run_id, c.id, c.kernel, c.variant, c.workloads, c.baseline, int(c.reference),
                 c.repeats, c.ran, str(c.verdict)) for c in report.cells])
            con.executemany("INSERT INTO problems VALUES (?,?,?,?,?,?,?,?)", [
                (run_id, c.id, p.key, p.title, p.kind, p.seen, p.repeats, int(p.pre_existing))
                for c in report.cells for p in c.problems])
            con.executemany("INSERT INTO cases VALUES (?,?,?,?,?,?,?,?,?,?)", _case_rows(run_id, summary))
            con.execute("COMMIT")
        except sqlite3.Error as e:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise InfraError(f"{self.path}: recording run {run_id} failed: {e}") from None
        finally:
            con.close()
        return run_id

    def _before(self, before_run_id: str) -> tuple[float, str]:
        """The ordering key of a run; a run not recorded yet is the newest."""
        rows = self._query("SELECT started_ts FROM runs WHERE run_id = ?", (before_run_id,))
        return (rows[0][0], before_run_id) if rows else (float("inf"), "")

    def previous_run_id(self, job_name: str, before_run_id: str) -> str | None:
        """The latest run of the job that started before the given run."""
        ts, rid = self._before(before_run_id)
        rows = self._query(
            "SELECT run_id FROM runs WHERE name = ? AND run_id != ? AND (started_ts, run_id) < (?, ?)"
            " ORDER BY started_ts DESC, run_id DESC LIMIT 1", (job_name, before_run_id, ts, rid))
        return rows[0][0] if rows else None

    def previous_cell(self, job_name: str, cell_id: str, before_run_id: str) -> PreviousCell | None:
        """The cell in the latest earlier run of the job that ran it (a run
        that skipped the cell, or planned it but left no results, is passed
        over: it says nothing about the cell's problems)."""
        ts, rid = self._before(before_run_id)
        rows = self._query(
            "SELECT r.run_id FROM runs r JOIN cells c ON c.run_id = r.run_id AND c.cell_id = ?"
            " WHERE r.name = ? AND r.run_id != ? AND c.ran > 0 AND (r.started_ts, r.run_id) < (?, ?)"
            " ORDER BY r.started_ts DESC, r.run_id DESC LIMIT 1",
            (cell_id, job_name, before_run_id, ts, rid))
        if not rows:
            return None
        problems = self._query("SELECT key, title FROM problems WHERE run_id = ? AND cell_id = ?"
                               " ORDER BY rowid", (rows[0][0], cell_id))
        return PreviousCell(rows[0][0], dict(problems))

    def previous_problems(self, job_name: str, cell_id: str, before_run_id: str) -> dict[str, str] | None:
        prev = self.previous_cell(job_name, cell_id, before_run_id)
        return prev.problems if prev else None

    def previous_for(self, summary: dict, run_dir: Path | None = None) -> dict[str, PreviousCell]:
        """cell id -> what to compare it with, for every cell of the run."""
        run_id, name = run_id_of(summary, run_dir), job_name_of(summary)
        found = {cid: self.previous_cell(name, cid, run_id) for cid in cell_ids(summary)}
        return {cid: p for cid, p in found.items() if p is not None}

    def runs(self, job_name: str | None = None, limit: int = 20) -> list[RunRow]:
        """The newest runs first, of one job or of all."""
        rows = self._query(
            "SELECT r.run_id, r.name, r.job, r.run_dir, r.started, r.state, r.exit_code,"
            " (SELECT count(*) FROM cells c WHERE c.run_id = r.run_id),"
            " (SELECT count(*) FROM problems p WHERE p.run_id = r.run_id)"
            " FROM runs r WHERE ?1 IS NULL OR r.name = ?1"
            " ORDER BY r.started_ts DESC, r.run_id DESC LIMIT ?2", (job_name, limit))
        return [RunRow(rid, name, job or "", run_dir or "", started or "", state or "", code, nc, np)
                for rid, name, job, run_dir, started, state, code, nc, np in rows]


def _exit_code(summary: dict, classified: int) -> int:
    """What the run exited with (130, 3 included); classified when it
    crashed before saying."""
    code = summary.get("exit_code")
    return code if isinstance(code, int) and not isinstance(code, bool) else classified


def _case_rows(run_id: str, summary: dict) -> list[tuple]:
    rows = []
    for cid, (_, suites) in suites_by_cell(summary).items():
        for s in suites:
            for c in s.get("cases") or []:
                if not isinstance(c, dict):
                    continue
                props = c.get("properties") if isinstance(c.get("properties"), dict) else {}
                name, cls = str(c.get("name", "")), str(c.get("classname", ""))
                rows.append((run_id, cid, str(s.get("name", "")), name, cls,
                             original_status(str(c.get("status", "")), props), str(c.get("kind", "")),
                             problem_key(name, cls, props),
                             c.get("duration") if isinstance(c.get("duration"), (int, float)) else None,
                             str(c.get("message", ""))))
    return rows
