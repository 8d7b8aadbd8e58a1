"""Deadlock vs timeout vs panic from sample evidence, the early stop on a
hung-task report, and the investigation over a fake guest."""

import threading
import time
from pathlib import Path

import pytest

from lab import hang
from lab.errors import CommandTimeout
from lab.guest.fake import FakeGuest
from lab.proc import Result
from lab.results import Status
from lab.workloads.base import WorkloadContext

STACK = """\
[  109.035437] task:dd              state:D stack:0     pid:270   ppid:1      flags:0x00000002
[  109.035730] Call Trace:
[  109.035801]  <TASK>
[  109.035877]  __schedule+0x34d/0xa00
[  109.036005]  schedule+0x5a/0xd0
[  109.036076]  percpu_rwsem_wait+0x116/0x140
[  109.036170]  ? __percpu_rwsem_trylock.part.0+0x60/0x60
[  109.036282]  __percpu_down_read+0x64/0x120
[  109.036372]  mnt_want_write+0x8b/0xc0
[  109.036457]  path_openat+0xb00/0x1260
[  109.038942]  do_syscall_64+0x5d/0xb0
[  109.039896]  entry_SYSCALL_64_after_hwframe+0x6e/0xd8
[  109.046415]  </TASK>
"""
HUNG = """\
[  102.874024] INFO: task dd:270 blocked for more than 10 seconds.
[  102.874400]       Not tainted 6.1.0-56-amd64 #1 Debian 6.1.158-1
[  102.874612] "echo 0 > /proc/sys/kernel/hung_task_timeout_secs" disables this message.
""" + STACK
SYSRQ_W = "[  110.024477] sysrq: Show Blocked State\n" + STACK
POLLER = """\
[  50.1] sysrq: Show Blocked State
[  50.1] task:poller          state:D stack:0     pid:77    ppid:1      flags:0x00000000
[  50.1] Call Trace:
[  50.1]  <TASK>
[  50.1]  __schedule+0x34d/0xa00
[  50.1]  schedule+0x5a/0xd0
[  50.1]  schedule_timeout+0x98/0x160
[  50.1]  msleep+0x2d/0x40
[  50.1]  poll_device+0x20/0x40 [mydrv]
[  50.1]  </TASK>
"""
PANIC = """\
[   12.0] BUG: kernel NULL pointer dereference, address: 0000000000000000
[   12.0] Oops: 0000 [#1] PREEMPT SMP NOPTI
[   12.1] Kernel panic - not syncing: Fatal exception
[   12.1] ---[ end Kernel panic - not syncing: Fatal exception ]---
"""


def states(**pids):
    return {int(p[1:]): v for p, v in pids.items()}


def test_hung_report_and_dump_without_proc_view_is_a_deadlock():
    v = hang.classify(HUNG + SYSRQ_W)
    assert v.kind == "deadlock"
    [t] = v.stuck
    assert (t.name, t.pid, t.hung_reports, t.dumps) == ("dd", 270, 1, 1)
    assert t.wait_site == "mnt_want_write"
    details = v.details()
    assert "dd:270 blocked in mnt_want_write" in details and "percpu_rwsem_wait" in details


def test_frozen_switch_count_is_stuck_and_a_moving_one_is_progress():
    text = SYSRQ_W + POLLER
    a = states(p270=("D", 8), p77=("D", 100), p1=("S", 5))
    b = states(p270=("D", 8), p77=("D", 160), p1=("S", 5))
    v = hang.classify(text, a, b)
    assert v.kind == "deadlock"
    assert [t.pid for t in v.stuck] == [270]
    assert [t.pid for t in v.progressing] == [77]
    assert "poller:77 100->160" in v.details()


def test_a_polling_task_alone_is_a_timeout_not_a_deadlock():
    a, b = states(p77=("D", 100)), states(p77=("D", 140))
    v = hang.classify(POLLER + POLLER, a, b)
    assert v.kind == "timeout" and "still scheduled" in v.reason
    assert hang.classify(POLLER).kind == "timeout"
    # Without the /proc view (SSH dead), two dumps listing the same task are
    # taken as stuck: that is why the snapshots are taken whenever SSH answers.
    assert hang.classify(POLLER + POLLER).kind == "deadlock"


def test_a_reported_task_that_has_exited_since_is_not_stuck():
    """The detector's report and a dump name dd:270, but dd is gone by the
    second snapshot: it finished, so it was slow, not deadlocked (a false
    deadlock otherwise, and a fresh boot for nothing)."""
    v = hang.classify(HUNG + SYSRQ_W, states(p270=("D", 8)), states(p1=("S", 5)))
    assert v.kind == "timeout" and v.stuck == []
    assert [t.pid for t in v.progressing] == [270]
    # gone before the first snapshot too: the same
    assert hang.classify(HUNG + SYSRQ_W, states(p1=("S", 5)), states(p1=("S", 5))).kind \
        == "timeout"
    # still there and blocked without a switch: stuck
    assert hang.classify(HUNG + SYSRQ_W, states(p270=("D", 8)), states(p270=("D", 8))).kind \
        == "deadlock"


def test_nothing_blocked_is_a_timeout():
    v = hang.classify("[ 1.0] sysrq: Show Blocked State\n", {}, {})
    assert v.kind == "timeout" and "slow, not stuck" in v.reason


def test_d_state_in_both_snapshots_without_a_dump_is_stuck():
    v = hang.classify("", states(p9=("D", 3)), states(p9=("D", 3)))
    assert v.kind == "deadlock" and v.stuck[0].pid == 9


def test_panic_wins():
    assert hang.classify(HUNG + PANIC).kind == "panic"
    assert hang.panic_report("noise\n" + PANIC).startswith("[   12.0] BUG: kernel NULL")


def test_dead_guest_without_evidence_is_unreachable():
    assert hang.classify("", dead=True).kind == "unreachable"


def test_parse_proc_states():
    text = ("/proc/12/status:State:\tD (disk sleep)\n"
            "/proc/12/status:voluntary_ctxt_switches:\t5\n"
            "/proc/12/status:nonvoluntary_ctxt_switches:\t2\n"
            "/proc/13/status:State:\tS (sleeping)\n")
    assert hang.parse_proc_states(text) == {12: ("D", 7), 13: ("S", 0)}
    # threads are tasks too: an io_uring worker or a helper's second thread
    threads = ("/proc/12/task/12/status:State:\tS (sleeping)\n"
               "/proc/12/task/15/status:State:\tD (disk sleep)\n"
               "/proc/12/task/15/status:voluntary_ctxt_switches:\t3\n")
    assert hang.parse_proc_states(threads) == {12: ("S", 0), 15: ("D", 3)}
    assert "/task/" in hang.PROC_STATES


# --- effects, with fakes -----------------------------------------------------

class FakeMachine:
    def __init__(self, path: Path, hung_task_timeout=1):
        self.console_log = path
        path.write_text("[ 1.0] boot\n")
        self.running = True
        self.keys = []

        class Cfg:
            pass
        self.cfg = Cfg()
        self.cfg.hung_task_timeout = hung_task_timeout

    def console_size(self):
        return self.console_log.stat().st_size

    def console_text(self):
        return self.console_log.read_text()

    def append(self, text):
        with open(self.console_log, "a") as f:
            f.write(text)

    def sysrq(self, key):
        self.keys.append(key)
        if key == "w":
            self.append(SYSRQ_W)

    def nmi(self):
        self.keys.append("nmi")


def test_run_watched_stops_early_on_a_new_hung_task(tmp_path):
    m = FakeMachine(tmp_path / "console.log")
    m.append("[ 0.5] INFO: task old:5 blocked for more than 10 seconds.\n")   # known before

    def slow(cmd):
        time.sleep(30)
        return Result(("sh",), 0, "", "", 30)
    g = FakeGuest([("dd", slow)])
    # the reported task is still in D state, not scheduled, after the grace period
    g.answer(r"^cat /proc/uptime", stdout="10.0 1.0\n/proc/270/status:Name:\tdd\n"
             "/proc/270/status:State:\tD (disk sleep)\n"
             "/proc/270/status:voluntary_ctxt_switches:\t7\n")
    threading.Timer(0.3, m.append, args=(HUNG,)).start()
    start = time.monotonic()
    with pytest.raises(hang.HungTaskDetected) as ei:
        hang.run_watched(g, m, "dd if=/dev/zero of=/mnt/f", timeout=60, grace=0.5, poll=0.1)
    assert time.monotonic() - start < 5
    assert ei.value.pids == {270} and isinstance(ei.value, CommandTimeout)


def test_run_watched_keeps_waiting_when_the_reported_task_moves_again(tmp_path):
    """A hung-task report for a task that is scheduled again within the grace
    period (a long wait that ends, a lock handed over) does not cut the
    workload short: the command's own result comes back."""
    m = FakeMachine(tmp_path / "console.log")
    switches = iter(range(7, 100))

    def states(cmd):
        return Result(("sh",), 0, "10.0 1.0\n/proc/270/status:Name:\tdd\n"
                      "/proc/270/status:State:\tD (disk sleep)\n"
                      f"/proc/270/status:voluntary_ctxt_switches:\t{next(switches)}\n", "", 0)

    def done_later(cmd):
        time.sleep(2.0)
        return Result(("sh",), 0, "done\n", "", 2.0)
    g = FakeGuest([("dd", done_later), (r"^cat /proc/uptime", states)])
    threading.Timer(0.2, m.append, args=(HUNG,)).start()
    r = hang.run_watched(g, m, "dd if=/dev/zero of=/mnt/f", timeout=60, grace=0.5, poll=0.1)
    assert r.stdout == "done\n"


def test_run_watched_returns_the_result_and_ignores_old_reports(tmp_path):
    m = FakeMachine(tmp_path / "console.log")
    m.append(HUNG)
    g = FakeGuest()
    g.answer("echo hi", stdout="hi\n")
    assert hang.run_watched(g, m, "echo hi", timeout=10, grace=0, poll=0.05).stdout == "hi\n"
    assert hang.run_watched(g, None, "echo hi", timeout=10).stdout == "hi\n"


def ctx_for(g, tmp_path, machine=None):
    return WorkloadContext(guest=g, outdir=tmp_path / "wl", timeout=5, machine=machine)


def test_investigate_over_ssh_reports_the_deadlock(tmp_path, monkeypatch):
    monkeypatch.setattr(hang.time, "sleep", lambda s: None)
    snaps = iter(["/proc/270/status:State:\tD (disk sleep)\n"
                  "/proc/270/status:voluntary_ctxt_switches:\t1\n"] * 2)
    g = FakeGuest([("grep -H", lambda c: Result(("sh",), 0, next(snaps), "", 0))],
                  kmsg=(HUNG + SYSRQ_W).splitlines())
    case = hang.investigate(ctx_for(g, tmp_path), CommandTimeout(["dd"], 15, "tail"), 0, "shell")
    assert case.status is Status.FAILED and case.kind == "deadlock"
    assert case.message.startswith("1 task(s) stuck in D state: dd:270 in "
                                   "mnt_want_write")
    assert "ran past its 15s timeout" in case.message and "via ssh" in case.message
    assert "percpu_rwsem_wait" in case.details
    assert case.properties["blocked_tasks"] == "dd:270@mnt_want_write"
    assert "echo w > /proc/sysrq-trigger" in g.commands
    assert "echo t > /proc/sysrq-trigger" in g.commands
    assert (tmp_path / "wl" / "timeout-evidence.txt").exists()
    assert (tmp_path / "wl" / "sysrq-t.txt").exists()


def test_investigate_a_slow_workload_is_a_timeout(tmp_path, monkeypatch):
    monkeypatch.setattr(hang.time, "sleep", lambda s: None)
    g = FakeGuest(kmsg=["[ 5.0] sysrq: Show Blocked State"])
    exc = hang.tag(CommandTimeout(["sleep 100"], 3), "slow-case")
    case = hang.investigate(ctx_for(g, tmp_path), exc, 0, "shell")
    assert case.kind == "timeout" and "slow, not stuck" in case.message
    assert case.name == "slow-case"          # the workload's name for it, not "shell"


def test_investigate_through_the_serial_console_when_ssh_is_dead(tmp_path, monkeypatch):
    monkeypatch.setattr(hang.time, "sleep", lambda s: None)
    m = FakeMachine(tmp_path / "console.log")
    g = FakeGuest()
    g.up = False
    case = hang.investigate(ctx_for(g, tmp_path, m), CommandTimeout(["x"], 3), 0, "dax")
    assert m.keys[:2] == ["w", "l"] and "nmi" not in m.keys
    assert case.kind == "deadlock" and "serial console" in case.message
    assert case.details.count("dd:270") >= 1


def test_investigate_a_panicked_guest(tmp_path):
    m = FakeMachine(tmp_path / "console.log")
    m.append(PANIC)
    m.running = False
    g = FakeGuest()
    g.up = False
    case = hang.investigate(ctx_for(g, tmp_path, m), CommandTimeout(["x"], 3), 0, "fio")
    assert case.kind == "panic" and "Kernel panic" in case.details
