"""What the parser reports: one Finding per distinct kernel report."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Kind(enum.StrEnum):
    """The family of a kernel report; the value is what JSON and JUnit show."""

    WARNING = "warning"
    BUG = "bug"
    OOPS = "oops"  # general protection fault, paging request, NULL deref, ...
    KASAN = "kasan"
    KFENCE = "kfence"
    KMSAN = "kmsan"
    KCSAN = "kcsan"
    UBSAN = "ubsan"
    LOCKDEP = "lockdep"
    HUNG_TASK = "hung-task"
    SOFT_LOCKUP = "soft-lockup"
    HARD_LOCKUP = "hard-lockup"
    RCU_STALL = "rcu-stall"
    WORKQUEUE_LOCKUP = "workqueue-lockup"
    PANIC = "panic"
    MEMORY_LEAK = "memory-leak"
    REBOOT = "reboot"
    OTHER = "other"


@dataclass(frozen=True)
class Finding:
    """One kernel report found in a console log.

    ``signature`` identifies the bug across runs (no addresses, PIDs,
    timestamps, CPU or line numbers); reports that share it are counted in
    ``count`` and only the first one is kept. ``line`` is the 1-based line of
    the log where that first report starts; ``report`` is its text with the
    console prefixes removed and other tasks' lines filtered out.
    """

    kind: Kind
    title: str
    signature: str
    report: str
    line: int
    location: str | None = None
    corrupted: bool = False
    count: int = 1

    def to_dict(self) -> dict:
        """JSON-ready, keys in the order ``lab dmesg --json`` documents."""
        return {"kind": self.kind.value, "title": self.title, "signature": self.signature,
                "corrupted": self.corrupted, "line": self.line, "location": self.location,
                "report": self.report, "count": self.count}
