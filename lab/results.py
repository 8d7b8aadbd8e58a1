"""Result objects: a Status enum, one CaseResult per testcase, one
SuiteResult per boot. Pure data; lab.junit renders them."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Status(enum.Enum):
    PASSED = "passed"
    FAILED = "failed"      # the kernel or the workload misbehaved
    ERROR = "error"        # lab or the host could not carry out the case
    SKIPPED = "skipped"    # not applicable (feature missing), with a reason

    @property
    def bad(self) -> bool:
        return self in (Status.FAILED, Status.ERROR)


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
    kind: str = ""               # e.g. "deadlock", "timeout", "panic", "warning"

    def to_dict(self) -> dict:
        return {
            "name": self.name, "classname": self.classname, "status": self.status.value,
            "duration": round(self.duration, 3), "message": self.message, "kind": self.kind,
            "properties": dict(self.properties),
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
