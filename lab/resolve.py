"""Stall or deadlock, proven: end a workload's processes and watch whether
its blocked tasks recover.

Called after the evidence is collected (lab/hang.py), before anything else
is torn down. The order is fixed and documented:

1. the workload's processes that are not blocked (not in D state, not among
   the blocked tasks): the holders, of pins (an RDMA memory region, a GUP
   call waiting on something else) or of whatever the blocked tasks wait
   for; one at a time, oldest first, each SIGKILLed and followed by a short
   watch (`step`), with the FOLL_PIN counters read before and after so the
   report says which one released pins;
2. then the blocked processes of the workload themselves (SIGKILL ends a
   killable wait; that is not a recovery: the operation never completed);
3. then the blocked tasks are watched until `bound` seconds have passed since
   the first kill (kernel threads among them too: they cannot be killed).

A blocked task *recovered* when, while it was still alive and not yet
killed by lab, it left D state or was scheduled again (its context-switch
count moved) or exited. Tasks that all recover make a stall; any that does
not makes a deadlock. Everything left in the workload's scope at the end is
killed (cgroup.kill) and listed as survivors when it will not die.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from .checks import PinCounters, read_pins
from .guest.base import Guest
from .guest.scope import Scope, Task, task_states

BOUND = 30.0    # seconds the blocked tasks get to recover after the first kill
STEP = 3.0      # seconds of watching after each kill


@dataclass
class Ended:
    """A process of the workload that lab ended."""

    task: Task
    at: float                          # seconds after the resolution began
    gone: bool                         # it exited within the step
    pins_released: int | None = None   # FOLL_PIN releases seen across its end
    freed: list[int] = field(default_factory=list)   # blocked pids that recovered after it

    def show(self) -> str:
        pins = (f", {self.pins_released} pin(s) released" if self.pins_released else "")
        return (f"{self.task.label} ({self.task.state}) at +{self.at:.1f}s"
                f"{'' if self.gone else ', did not exit'}{pins}")


@dataclass
class Resolution:
    """What ending the workload's processes did to its blocked tasks."""

    scoped: bool                        # the workload's processes were known (cgroup v2)
    watched: dict[int, Task] = field(default_factory=dict)   # blocked tasks at the start
    recovered: dict[int, float] = field(default_factory=dict)  # pid -> seconds after start
    killed_blocked: dict[int, float] = field(default_factory=dict)  # blocked pids lab killed
    ended: list[Ended] = field(default_factory=list)
    stuck: list[Task] = field(default_factory=list)     # still blocked at the end
    survivors: list[Task] = field(default_factory=list)  # workload processes still alive
    uptime_at: dict[int, float] = field(default_factory=dict)  # pid -> guest uptime at recovery
    bound: float = BOUND
    note: str = ""

    def released_by(self, pid: int) -> Ended | None:
        return next((e for e in self.ended if pid in e.freed), None)

    @property
    def all_recovered(self) -> bool:
        return bool(self.watched) and not self.stuck


def end_workload(guest: Guest, scope: Scope | None, blocked: list[int], *,
                 bound: float = BOUND, step: float = STEP, poll: float = 0.5,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> Resolution:
    """End the workload's processes in the documented order and watch the
    `blocked` tasks (pids or tids) recover. `guest` is the plain connection."""
    t0 = clock()
    res = Resolution(scoped=bool(scope and scope.available), bound=bound)
    _, first = task_states(guest, blocked)
    res.watched = {p: t for p, t in first.items() if t.state == "D"}
    for p in set(blocked) - set(res.watched):   # gone or running before we looked:
        res.recovered[p] = 0.0                  # recovered on its own
    pending = set(res.watched)

    def check() -> list[int]:
        """Mark the watched tasks that recovered; the newly recovered."""
        if not pending:
            return []
        uptime, now = task_states(guest, list(pending))
        new = []
        for p in sorted(pending):
            t = now.get(p)
            if p in res.killed_blocked:
                continue
            if t is None or t.state not in ("D",) or t.switches != res.watched[p].switches:
                res.recovered[p] = clock() - t0
                if uptime is not None:
                    res.uptime_at[p] = uptime
                new.append(p)
        pending.difference_update(new)
        return new

    check()
    procs = scope.tasks() if res.scoped else {}
    with_blocked = {t.tgid for t in res.watched.values()}
    # holders whose own threads are blocked go last among the holders
    holders = sorted((t for p, t in procs.items() if p not in res.watched and t.state != "D"),
                     key=lambda t: (t.pid in with_blocked, t.start, t.pid))
    waiters = sorted((t for p, t in procs.items() if t not in holders),
                     key=lambda t: (t.start, t.pid))
    for t in holders + waiters:
        if res.watched and not pending:
            break            # every blocked task recovered: the rest go at once below
        for p in [p for p in pending if p == t.pid or res.watched[p].tgid == t.pid]:
            res.killed_blocked[p] = clock() - t0     # killed with it: not a recovery
            pending.discard(p)
        before = _pins(guest)
        guest.run(f"kill -KILL {t.pid} 2>/dev/null; true", timeout=30)
        e = Ended(t, clock() - t0, gone=False)
        deadline = clock() + step
        while True:
            e.freed += check()
            _, left = task_states(guest, [t.pid])
            gone = t.pid not in left or left[t.pid].state == "Z"
            if (gone and (not pending or e.freed)) or clock() >= deadline:
                break
            sleep(poll)
        e.gone = gone
        after = _pins(guest)
        if before is not None and after is not None:
            e.pins_released = after.released - before.released
        res.ended.append(e)
    while pending and clock() - t0 < bound:
        sleep(poll)
        check()
    if scope is not None and res.scoped:
        scope.kill_all()
        left = scope.tasks()
        for _ in range(int(5 / poll)):
            if not left:
                break
            sleep(poll)
            left = scope.tasks()
        res.survivors = sorted(left.values(), key=lambda t: t.pid)
    else:
        res.note = "the workload's processes are not known (no cgroup v2): none were ended"
    res.stuck = [res.watched[p] for p in sorted(res.watched) if p not in res.recovered]
    return res


def _pins(guest: Guest) -> PinCounters | None:
    try:
        return read_pins(guest)
    except Exception:  # noqa: BLE001 - a figure for the report, never the verdict
        return None
