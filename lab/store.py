"""The run directory: results are written as each case ends, atomically, so
an interrupted or crashed run still leaves valid junit.xml and summary.json
for everything that finished."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from . import junit
from .results import CaseResult, RunState, Status, SuiteResult


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class RunStore:
    def __init__(self, out: Path, meta: dict):
        self.out = out
        self.out.mkdir(parents=True, exist_ok=True)
        self.suites: list[SuiteResult] = []
        self.meta = dict(meta, started=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                         state=str(RunState.RUNNING))
        self.flush()

    def suite(self, name: str, properties: dict | None = None) -> SuiteResult:
        s = SuiteResult(name, dict(properties or {}),
                        timestamp=time.strftime("%Y-%m-%dT%H:%M:%S"))
        self.suites.append(s)
        self.flush()
        return s

    def add(self, suite: SuiteResult, *cases: CaseResult) -> None:
        suite.cases.extend(cases)
        self.flush()

    def flush(self) -> None:
        write_atomic(self.out / "junit.xml", junit.render(self.suites))
        write_atomic(self.out / "summary.json", json.dumps(
            dict(self.meta, exit_code=self.exit_code(), suites=[s.to_dict() for s in self.suites]),
            indent=1))

    def finish(self, state: RunState = RunState.FINISHED) -> int:
        self.meta["state"] = str(state)
        self.meta["ended"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.flush()
        return self.exit_code()

    def exit_code(self) -> int:
        cases = [c for s in self.suites for c in s.cases]
        if any(c.status is Status.FAILED for c in cases):
            return 1
        if any(c.status is Status.ERROR for c in cases):
            return 2
        return 0
