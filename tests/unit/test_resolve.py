"""Stall or deadlock, proven (lab/resolve.py + hang.settle): a guest model
whose tasks block on what other tasks hold, so that ending a holder frees
its waiters, and a task in an uninterruptible wait never dies."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lab import checks, hang
from lab.guest.fake import FakeGuest
from lab.guest.scope import Scope, Task, parse_states, states_cmd
from lab.proc import Result
from lab.resolve import end_workload
from lab.results import CaseKind


FOREVER = -1      # waits for something that never comes


@dataclass
class T:
    pid: int
    comm: str
    state: str
    tgid: int = 0
    waits_on: int | None = None      # blocked until this pid is gone
    killable: bool = True            # SIGKILL ends it (else it stays in D)
    pins: int = 0                    # pins it releases when it goes
    switches: int = 10


@dataclass
class World:
    """The guest's tasks; every command of the resolution is answered from it."""

    tasks: dict[int, T] = field(default_factory=dict)
    cgroup: set[int] = field(default_factory=set)
    acquired: int = 0
    released: int = 0
    uptime: float = 100.0
    kills: list[int] = field(default_factory=list)

    def add(self, t: T, in_scope=True) -> None:
        t.tgid = t.tgid or t.pid
        self.tasks[t.pid] = t
        self.acquired += t.pins
        if in_scope and t.tgid == t.pid:
            self.cgroup.add(t.pid)

    def guest(self) -> FakeGuest:
        g = FakeGuest()
        g.answers.append((re.compile(r".*"), self.answer))
        return g

    def _settle(self) -> None:
        """A task whose wait is over completes its operation and exits,
        which may free the next one."""
        freed = True
        while freed:
            freed = [t for t in self.tasks.values()
                     if t.waits_on not in (None, FOREVER) and t.waits_on not in self.tasks]
            for t in freed:
                self._remove(t.pid)

    def _remove(self, pid: int) -> None:
        t = self.tasks.pop(pid, None)
        if t is not None:
            self.released += t.pins
            self.cgroup.discard(pid)

    def answer(self, cmd: str) -> Result:
        self.uptime += 0.5
        out = ""
        if m := re.match(r"kill -KILL (\d+)", cmd):
            pid = int(m.group(1))
            self.kills.append(pid)
            group = [t for t in self.tasks.values() if t.tgid == pid]
            dies = [t for t in group if t.killable or t.waits_on is None]
            if len(dies) == len(group):
                for t in group:
                    self._remove(t.pid)
            else:                  # a thread stays in D: the leader lingers as a zombie
                for t in dies:
                    self.released += t.pins
                    if t.pid == pid:
                        t.state, t.pins = "Z", 0
                    else:
                        self.tasks.pop(t.pid)
        elif "cgroup.kill" in cmd:
            for pid in list(self.cgroup):
                self.answer(f"kill -KILL {pid}")
        elif "cgroup.procs" in cmd and cmd.startswith("cat"):
            out = "\n".join(map(str, sorted(self.cgroup)))
        elif cmd.startswith("cat /proc/uptime"):
            pids = [int(p) for p in re.search(r"for p in ([\d ]+);", cmd).group(1).split()]
            out = f"{self.uptime:.2f} 0.0\n"
            for p in pids:
                t = self.tasks.get(p)
                if t:
                    out += (f"/proc/{p}/status:Name:\t{t.comm}\n/proc/{p}/status:State:\t"
                            f"{t.state} (x)\n/proc/{p}/status:Tgid:\t{t.tgid}\n"
                            f"/proc/{p}/status:voluntary_ctxt_switches:\t{t.switches}\n"
                            f"/proc/{p}/status:Start: {p}\n")
        elif "nr_foll_pin" in cmd:
            out = f"nr_foll_pin_acquired {self.acquired}\nnr_foll_pin_released {self.released}\n"
        self._settle()
        return Result(("sh", "-c", cmd), 0, out, "", 0.0)


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t

    def sleep(self, s):
        self.t += s


def resolve(world: World, blocked: list[int], bound=10.0):
    g = world.guest()
    scope = Scope(g, "00-w")
    scope.available = True
    clock = Clock()
    return end_workload(g, scope, blocked, bound=bound, step=2.0, poll=0.5, clock=clock,
                        sleep=clock.sleep)


def test_states_command_round_trips_through_the_parser():
    text = ("123.45 1.0\n/proc/7/status:Name:\tdd\n/proc/7/status:State:\tD (disk sleep)\n"
            "/proc/7/status:Tgid:\t7\n/proc/7/status:voluntary_ctxt_switches:\t3\n"
            "/proc/7/status:nonvoluntary_ctxt_switches:\t4\n/proc/7/status:Start: 900\n")
    uptime, tasks = parse_states(text)
    assert uptime == 123.45
    assert tasks[7].comm == "dd" and tasks[7].state == "D" and tasks[7].switches == 7
    assert tasks[7].start == 900 and tasks[7].tgid == 7
    # never cmdline or environ: they take the mmap lock a stuck task may hold
    assert "cmdline" not in states_cmd([7]) and "environ" not in states_cmd([7])


def test_a_waiter_freed_by_ending_the_pin_holder_is_a_stall_attributed_to_it():
    w = World()
    w.add(T(10, "pinhold", "S", pins=1))
    w.add(T(11, "truncate", "S", waits_on=10))
    w.add(T(12, "sh", "D", waits_on=11, killable=False))
    res = resolve(w, [12])
    assert res.recovered.keys() == {12} and not res.stuck and not res.survivors
    by = res.released_by(12)
    assert by.task.comm == "pinhold" and by.pins_released == 1
    assert w.kills[0] == 10            # the holder first, not the blocked writer


def test_holders_are_ended_oldest_first_and_the_blocked_last():
    w = World()
    w.add(T(30, "blocked", "D", waits_on=99, killable=True))
    w.add(T(20, "b", "S"))
    w.add(T(10, "a", "S"))
    w.add(T(99, "elsewhere", "S"), in_scope=False)   # not the workload's: never killed
    res = resolve(w, [30], bound=3)
    assert w.kills[:3] == [10, 20, 30] and 99 not in w.kills
    # killing the blocked task itself is no recovery: its operation never completed
    assert 30 in res.killed_blocked and [t.pid for t in res.stuck] == [30]


def test_a_task_that_never_leaves_d_state_is_stuck_and_survives():
    w = World()
    w.add(T(40, "writer", "D", waits_on=FOREVER, killable=False))
    res = resolve(w, [40], bound=5)
    assert [t.pid for t in res.stuck] == [40]
    assert [t.pid for t in res.survivors] == [40]


def test_a_blocked_thread_of_a_killed_process_is_not_counted_as_recovered():
    w = World()
    w.add(T(50, "pinhold", "S", pins=8))
    w.add(T(51, "pinhold", "D", tgid=50, waits_on=FOREVER, killable=False))
    res = resolve(w, [51], bound=4)
    assert 51 not in res.recovered and [t.pid for t in res.stuck] == [51]
    assert [t.pid for t in res.survivors] == [50]


def test_a_task_already_running_again_recovered_on_its_own():
    w = World()
    w.add(T(60, "fsync", "S"))
    res = resolve(w, [60, 61])                 # 61 is gone already
    assert res.recovered == {60: 0.0, 61: 0.0}


def _verdict(stuck_pids):
    return hang.Verdict(CaseKind.DEADLOCK, [hang.BlockedTask("sh", p, hung_reports=1)
                                            for p in stuck_pids])


def test_settle_all_recovered_is_a_stall_naming_what_released_it():
    w = World()
    w.add(T(10, "pinhold", "S", pins=1))
    w.add(T(12, "sh", "D", waits_on=10, killable=False))
    res = resolve(w, [12])
    v = hang.settle(_verdict([12]), res, {12: 60.0})
    assert v.kind is CaseKind.STALL
    assert "recovered after lab ended pinhold:10 (1 pin(s) released)" in v.reason
    assert v.blocked_s[12] > 40          # from the hung report's start to the recovery
    assert "recovered after ending pinhold:10, which released 1 pin(s)" in v.details()


def test_settle_any_stuck_is_a_deadlock_saying_it_did_not_recover():
    w = World()
    w.add(T(10, "pinhold", "S", pins=1))
    w.add(T(12, "sh", "D", waits_on=10, killable=False))
    w.add(T(13, "dd", "D", waits_on=FOREVER, killable=False))
    res = resolve(w, [12, 13], bound=5)
    v = hang.settle(_verdict([12, 13]), res)
    assert v.kind is CaseKind.DEADLOCK
    assert "did not recover within 5s after every process of the workload was ended" in v.reason
    assert [t.pid for t in v.stuck] == [13] and [t.pid for t in v.recovered] == [12]


def test_settle_leaves_a_timeout_a_timeout():
    res = resolve(World(), [])
    v = hang.settle(hang.Verdict(CaseKind.TIMEOUT, reason="slow"), res)
    assert v.kind is CaseKind.TIMEOUT and v.reason == "slow"


def test_pins_held_by_a_live_task_are_not_a_leak():
    w = World()
    w.add(T(70, "pinhold", "D", pins=8, waits_on=FOREVER, killable=False))
    g = w.guest()
    scope = Scope(g, "00-w")
    scope.available = True
    before = checks.PinCounters(0, 0)
    case = checks.pin_case(g, before, "pinhold", scope=scope, workload_failed=True)
    assert case.kind is CaseKind.PINS_HELD and case.status.value == "skipped"
    assert "8 pin(s) still held by live process(es) of the workload: 70 pinhold (D)" \
        in case.message
    alone = checks.pin_case(g, before, "pinhold", scope=scope, workload_failed=False)
    assert alone.status.value == "failed" and alone.kind is CaseKind.PINS_HELD


def test_pins_unbalanced_after_every_process_exited_are_a_leak():
    w = World()
    w.acquired = 5
    g = w.guest()
    scope = Scope(g, "00-w")
    scope.available = True
    case = checks.pin_case(g, checks.PinCounters(0, 0), "rdma", scope=scope, timeout=1,
                           stable_for=0.1, interval=0.05)
    assert case.kind is CaseKind.PIN_LEAK and "5 not released" in case.message
    assert "not checked" not in case.message


def test_what_an_ended_process_did_reads_in_one_line():
    """resolution.txt and the stall's message say which process was ended
    when, whether it exited, and the pins its end released."""
    from lab.resolve import Ended, Resolution
    holder = Task(41, "pinhold", "S", 7)
    assert Ended(holder, 3.04, True, 5, [42]).show() == \
        "pinhold:41 (S) at +3.0s, 5 pin(s) released"
    assert Ended(holder, 0.0, False).show() == "pinhold:41 (S) at +0.0s, did not exit"
    assert Ended(holder, 1.0, True, 0).show() == "pinhold:41 (S) at +1.0s"
    r = Resolution(scoped=True, ended=[Ended(Task(40, "a", "S", 1), 1.0, True),
                                       Ended(holder, 3.0, True, 5, [42, 43])])
    assert r.released_by(43).task.pid == 41
    assert r.released_by(99) is None
