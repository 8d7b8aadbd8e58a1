"""Checks that follow every workload: kernel findings in the messages that
appeared during it, and the balance of FOLL_PIN pins."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from .guest.base import Guest
from .results import CaseKind, CaseResult, Status

PIN_KEYS = ("nr_foll_pin_acquired", "nr_foll_pin_released")


def findings_cases(text: str, classname: str, seen: set[str] | None = None) -> list[CaseResult]:
    """One failed testcase per distinct kernel finding in `text`, named by its
    title, the report as the failure text. Signatures in `seen` are skipped
    (and new ones added), so a repeat across workloads is not listed twice."""
    from .kernellog import parse
    cases = []
    for f in parse(text):
        if seen is not None:
            if f.signature in seen:
                continue
            seen.add(f.signature)
        where = f" at {f.location}" if f.location else ""
        count = getattr(f, "count", 1)
        cases.append(CaseResult(
            f.title, Status.FAILED, classname=classname, kind=f.kind,
            message=f"{f.title}{where}" + (f" (x{count})" if count > 1 else "")
                    + (" [report corrupted]" if f.corrupted else ""),
            details=f.report, properties={"signature": f.signature, "kind": f.kind}))
    return cases


@dataclass(frozen=True)
class PinCounters:
    acquired: int
    released: int


def parse_vmstat(text: str) -> PinCounters | None:
    vals = dict(re.findall(r"^(nr_foll_pin_\w+) (\d+)$", text, re.M))
    if not all(k in vals for k in PIN_KEYS):
        return None
    return PinCounters(int(vals[PIN_KEYS[0]]), int(vals[PIN_KEYS[1]]))


def read_pins(guest: Guest) -> PinCounters | None:
    return parse_vmstat(guest.run("grep ^nr_foll_pin_ /proc/vmstat", timeout=30).stdout)


def settle_pins(guest: Guest, before: PinCounters, *, timeout: float = 20.0,
                interval: float = 0.5, stable_for: float = 5.0
                ) -> tuple[PinCounters | None, bool, list[PinCounters]]:
    """Poll until the deltas balance, or until they have stopped moving for
    `stable_for` seconds without balancing (a leak), or `timeout` passes.
    Right after a process exits they may read 64/42 for a moment.
    Returns the last reading, whether it balanced, and every reading."""
    deadline = time.monotonic() + timeout
    readings: list[PinCounters] = []
    last = read_pins(guest)
    changed = time.monotonic()
    while True:
        if last is not None:
            if not readings or readings[-1] != last:
                changed = time.monotonic()
            readings.append(last)
            if (last.acquired - before.acquired) == (last.released - before.released):
                return last, True, readings
            if time.monotonic() - changed >= stable_for:
                return last, False, readings
        if time.monotonic() > deadline:
            return last, False, readings
        time.sleep(interval)
        last = read_pins(guest)


def pin_case(guest: Guest, before: PinCounters | None, classname: str, *,
             scope=None, workload_failed: bool = False,
             timeout: float = 20.0, stable_for: float = 5.0,
             interval: float = 0.5) -> CaseResult:
    """The FOLL_PIN balance over a workload, judged once its processes have
    exited (checked through its scope, lab.guest.scope.Scope): acquired and
    released must have grown by the same amount. Pins that do not balance
    while a process of the workload is still alive are held, not leaked:
    reported with the tasks, skipped when the workload's own verdict already
    failed (it is part of that verdict), failed otherwise."""
    name = "pin-balance"
    if before is None:
        return CaseResult(name, Status.SKIPPED, classname=classname,
                          message="kernel has no nr_foll_pin_* counters in /proc/vmstat")
    start = time.monotonic()
    live = scope.tasks() if scope is not None and scope.available else {}
    if live:
        now = read_pins(guest)
        if now is not None and (now.acquired - before.acquired
                                != now.released - before.released):
            acq, rel = now.acquired - before.acquired, now.released - before.released
            tasks = ", ".join(t.show() for t in sorted(live.values(), key=lambda t: t.pid))
            return CaseResult(
                name, Status.SKIPPED if workload_failed else Status.FAILED,
                time.monotonic() - start, classname=classname, kind=CaseKind.PINS_HELD,
                message=f"not judged: {acq - rel} pin(s) still held by live process(es) of the "
                        f"workload: {tasks} (held, not leaked: the balance is judged once "
                        "they have exited)",
                properties={"pins_acquired": str(acq), "pins_released": str(rel),
                            "pins_held": str(acq - rel), "live_tasks": tasks})
    after, balanced, readings = settle_pins(guest, before, timeout=timeout,
                                            interval=interval, stable_for=stable_for)
    if after is None:
        return CaseResult(name, Status.ERROR, time.monotonic() - start, classname=classname,
                          message="could not read /proc/vmstat after the workload")
    acq, rel = after.acquired - before.acquired, after.released - before.released
    props = {"pins_acquired": str(acq), "pins_released": str(rel),
             "before": f"{before.acquired}/{before.released}",
             "after": f"{after.acquired}/{after.released}", "readings": str(len(readings))}
    trail = "\n".join(f"nr_foll_pin_acquired {r.acquired} nr_foll_pin_released {r.released}"
                      for r in readings[-20:])
    if balanced:
        return CaseResult(name, Status.PASSED, time.monotonic() - start, classname=classname,
                          output=f"FOLL_PIN pins acquired {acq}, released {rel}",
                          properties=props)
    return CaseResult(name, Status.FAILED, time.monotonic() - start, classname=classname,
                      kind=CaseKind.PIN_LEAK,
                      message=f"pin leak: {acq} pins acquired, {rel} released "
                              f"({acq - rel} not released) after the workload's processes exited"
                              + ("" if scope is not None and scope.available else
                                 " (not checked: no cgroup v2 in the guest)"),
                      details=f"before: {before.acquired}/{before.released}\n"
                              f"readings after the workload (acquired/released):\n{trail}",
                      properties=props)
