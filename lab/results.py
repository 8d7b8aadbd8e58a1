"""Result objects: a Status enum, one CaseResult per testcase, one
SuiteResult per boot. Pure data; lab.junit renders them."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime


class Status(enum.Enum):
    PASSED = "passed"
    FAILED = "failed"      # the kernel or the workload misbehaved
    ERROR = "error"        # lab or the host could not carry out the case
    SKIPPED = "skipped"    # not applicable (feature missing), with a reason

    @property
    def bad(self) -> bool:
        return self in (Status.FAILED, Status.ERROR)


class CaseKind(enum.StrEnum):
    """What a failed, errored or skipped case is about. Kernel findings carry
    lab.kernellog.Kind instead (warning, lockdep, hung-task, ...); both are
    StrEnums, so the value is what JUnit and summary.json show."""

    NONE = ""
    BOOT = "boot"                  # the guest did not come up
    PANIC = "panic"                # the kernel died
    UNREACHABLE = "unreachable"    # the guest stopped answering
    TIMEOUT = "timeout"            # slow but progressing past the budget
    DEADLOCK = "deadlock"          # tasks blocked for good (shown not to recover)
    STALL = "stall"                # blocked, then recovered (or an operation too slow)
    PERF = "perf-regression"       # bandwidth/IOPS far below the baseline kernel's
    PINS_HELD = "pins-held"        # pins unbalanced while a task of the workload lives
    LOST_WAKEUP = "lost-wakeup"    # a waiter that a signal frees, never woken
    CORRUPTION = "corruption"      # data read back differs from what was written
    PIN_LEAK = "pin-leak"          # FOLL_PIN acquired != released after exit
    APPLY = "apply"                # a patch did not apply
    BUILD = "build"                # the kernel did not build
    INFRA = "infra"                # lab or the host could not carry out the case
    INTERRUPTED = "interrupted"    # Ctrl-C / SIGTERM
    NOT_RUN = "not-run"            # an earlier failure left no guest to run it on


class RunState(enum.StrEnum):
    """The state a run directory's summary.json records."""

    RUNNING = "running"
    FINISHED = "finished"
    INTERRUPTED = "interrupted"
    BAD_INPUT = "bad-input"
    CRASHED = "crashed"


def epoch(stamp) -> float | None:
    """Seconds since the epoch of a time summary.json records
    ("2026-11-30T01:02:03+0000"), None when absent or unreadable: shards on
    hosts in different zones are ordered by instant, not by text."""
    if not isinstance(stamp, str) or not stamp:
        return None
    for parse in (lambda t: datetime.strptime(t, "%Y-%m-%dT%H:%M:%S%z"), datetime.fromisoformat):
        try:
            return parse(stamp).timestamp()
        except ValueError:
            continue
    return None


@dataclass
class CaseResult:
    name: str
    status: Status
    duration: float = 0.0
    classname: str = ""
    message: str = ""            # one line: why it failed / was skipped
    details: str = ""            # failure text: a kernel report, a diff, a log tail
    output: str = ""             # what the case printed (stdout of the workload)
    properties: dict[str, str] = field(default_factory=dict)
    kind: str = CaseKind.NONE    # a CaseKind, or a lab.kernellog.Kind for kernel findings
    started: str = ""            # when it began (ISO 8601, UTC), set when it is recorded

    def to_dict(self) -> dict:
        return {
            "name": self.name, "classname": self.classname, "status": self.status.value,
            "duration": round(self.duration, 3), "message": self.message, "kind": str(self.kind),
            "started": self.started, "properties": dict(self.properties),
        }


@dataclass
class SuiteResult:
    """One boot: its properties and its cases, in order."""

    name: str
    properties: dict[str, str] = field(default_factory=dict)
    cases: list[CaseResult] = field(default_factory=list)
    timestamp: str = ""

    @property
    def failed(self) -> bool:
        return any(c.status.bad for c in self.cases)

    def counts(self) -> dict[str, int]:
        out = {s.value: 0 for s in Status}
        for c in self.cases:
            out[c.status.value] += 1
        return out

    def to_dict(self) -> dict:
        return {"name": self.name, "timestamp": self.timestamp,
                "properties": dict(self.properties), "counts": self.counts(),
                "cases": [c.to_dict() for c in self.cases]}
