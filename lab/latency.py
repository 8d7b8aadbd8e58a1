"""Latency stalls (pure): which case properties are the worst latency of an
operation the workloads timed, and a latency above the job's bound as a
failed testcase of kind `stall` naming the operation, the file and the
duration.

Why a bound of its own: a task that waits in fsync or truncate for a pinned
page for a few seconds and then completes is never reported by the kernel's
hung-task detector (it fires after hung_task_timeout, 20 s in a job by
default) and the workload passes; yet that wait is the finding the pinned-
pages work is about. The helpers time each operation and report the worst
(pinstress: fsync, truncate, hole punch, the pinners' O_DIRECT and io_uring
IO; fio: completion latency and fsync; rdma: the truncate of the MR file;
pinhold: the truncate that waits for the held pin and the write behind it);
this module judges them. The workloads name the properties; this table is
the one place that says which of them are latencies.

The default bound, 2 s (DEFAULT_BOUND_S): a tenth of the job's default
hung-task timeout, so a stall the detector would miss is caught with room
to spare, and ~30x the worst latency a healthy 6.1 kernel showed under TCG
with other guests on the same 2 cores (fsync of the MR file 22-69 ms, fio
completion 10-39 ms and fsync 12-32 ms, truncate 14-16 ms), so host noise
does not trip it. It equals dax's `kick_after` default: an operation still
waiting 2 s after the last pin was dropped is already suspect there.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .results import CaseKind, CaseResult, Status

DEFAULT_BOUND_S = 2.0

# A case that already failed for blocking says so itself (a lost wakeup's
# truncate takes the kick delay, a deadlock's forever): its latencies are a
# symptom of that finding, not a second one.
BLOCKING_KINDS = frozenset({CaseKind.DEADLOCK, CaseKind.STALL, CaseKind.LOST_WAKEUP,
                            CaseKind.TIMEOUT})


@dataclass(frozen=True)
class Latency:
    """A case property holding the worst latency of one operation."""

    prop: str              # the property, e.g. max_fsync_ms
    slug: str              # names the stall case: <case>.<slug>-latency
    what: str              # the operation as a message says it; {file} is the file
    unit: str = "ms"       # the property's unit: ms or s
    file_prop: str = "file"  # the property naming the file the operation was on

    def ms(self, value: float) -> float:
        return value * 1000.0 if self.unit == "s" else value

    def describe(self, properties: Mapping[str, str]) -> str:
        return self.what.format(file=properties.get(self.file_prop) or "(file not reported)")


LATENCIES: tuple[Latency, ...] = (
    # rdma (pinstress fsync: the MR file), fio (its `sync` section: the target file)
    Latency("max_fsync_ms", "fsync", "fsync of {file}"),
    # dax (pinstress dax: the file mapped and pinned)
    Latency("max_truncate_ms", "truncate", "truncate of {file}"),
    Latency("max_punch_ms", "punch", "hole punch in {file}"),
    Latency("max_direct_read_ms", "direct-read", "O_DIRECT read into the mapping of {file}"),
    Latency("max_uring_io_ms", "uring-io", "io_uring fixed-buffer IO on the mapping of {file}"),
    # fio (clat max of the job)
    Latency("max_write_clat_ms", "write-clat", "write to {file} (fio completion latency)"),
    Latency("max_read_clat_ms", "read-clat", "read of {file} (fio completion latency)"),
    # rdma on fsdax: the truncate while the MR is registered
    Latency("truncate_s", "mr-truncate", "truncate of {file} while an RDMA MR is registered "
                                         "on it", unit="s"),
    # pinhold: the truncate waiting for the held pin, the writer behind it
    Latency("truncate_ms", "pinned-truncate", "truncate of {file} while a page of it was "
                                              "pinned"),
    Latency("write_ms", "pinned-write", "write to {file} behind the truncate"),
)
BY_PROP = {m.prop: m for m in LATENCIES}


def number(value) -> float | None:
    """A property's value as a finite number >= 0; None when it is missing
    or not one ("None", "", "nan", "-1"): a figure a helper did not report
    is not a latency of zero, nor a stall."""
    if value is None or isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) and x >= 0 else None


def latencies(properties: Mapping[str, str]) -> dict[str, float]:
    """The latencies among a case's properties: prop -> milliseconds."""
    out = {}
    for m in LATENCIES:
        x = number(properties.get(m.prop))
        if x is not None:
            out[m.prop] = m.ms(x)
    return out


def stall_case_name(case_name: str, latency: Latency) -> str:
    """The stall case's name: stable across runs (no duration in it), so
    the report tells new from known and pre-existing by it."""
    return f"{case_name}.{latency.slug}-latency"


def _ms(x: float) -> str:
    return f"{x:.0f}" if x >= 10 else f"{x:.3g}"


def judged(case: CaseResult) -> bool:
    """Whether a case's latencies are judged: it ran, and did not already
    fail for blocking."""
    if case.status is Status.SKIPPED:
        return False
    return not (case.status.bad and case.kind in BLOCKING_KINDS)


def stall_cases(cases: Iterable[CaseResult], bound_s: float, classname: str) -> list[CaseResult]:
    """A failed `stall` case for each latency of `cases` above `bound_s`
    seconds (at the bound is within it); none when the bound is 0 (off)."""
    if not bound_s or bound_s <= 0:
        return []
    bound_ms = bound_s * 1000.0
    out = []
    for case in cases:
        if not judged(case):
            continue
        for prop, ms in latencies(case.properties).items():
            if ms <= bound_ms:
                continue
            m = BY_PROP[prop]
            what = m.describe(case.properties)
            out.append(CaseResult(
                stall_case_name(case.name, m), Status.FAILED, classname=classname,
                kind=CaseKind.STALL,
                message=f"{what} took {_ms(ms)} ms (bound {_ms(bound_ms)} ms)",
                details=(f"{case.name} reported {prop} = {case.properties[prop]} "
                         f"({what}); the bound (stall_threshold) is {bound_s:g} s. The "
                         "operation completed: slow, then done (a stall, not a deadlock)."),
                properties={"operation": m.slug, "file": case.properties.get(m.file_prop, ""),
                            "latency_ms": f"{ms:.1f}", "bound_ms": f"{bound_ms:.0f}",
                            "measured_in": case.name, "property": prop}))
    return out


__all__ = ["DEFAULT_BOUND_S", "BLOCKING_KINDS", "Latency", "LATENCIES", "BY_PROP", "number",
           "latencies", "stall_case_name", "judged", "stall_cases"]
