"""What lab/hang.py tells a user, word for word: the verdict's reason and
details after a stuck workload was resolved (stall or deadlock), how lab
ended its processes, and the evidence it parsed (reports, dumps, /proc)."""

from lab import hang
from lab.guest.scope import Task
from lab.resolve import Ended, Resolution
from lab.results import CaseKind

STACK = """\
[  109.035437] task:dd              state:D stack:0     pid:270   ppid:1      flags:0x00000002
[  109.035730] Call Trace:
[  109.035801]  <TASK>
[  109.035877]  __schedule+0x34d/0xa00
[  109.036005]  schedule+0x5a/0xd0
[  109.036170]  ext4_break_layouts+0x8f/0x120
[  109.036457]  do_truncate+0x94/0xe0
[  109.046415]  </TASK>
[  109.046416] task:kworker/0:1     state:I stack:0     pid:12    ppid:2      flags:0x00004000
"""
DUMP = "[  110.000000] sysrq: Show Blocked State\n" + STACK
HUNG = ("[  102.874024] INFO: task dd:270 blocked for more than 10 seconds.\n"
        "[  102.874400]       Not tainted 6.1.0-56-amd64 #1\n")
TEXT = HUNG + DUMP + ("[  115.500000] INFO: task dd:270 blocked for more than 12 seconds.\n"
                      + DUMP.replace("110.000000", "116.000000"))
PLAIN_STACK = "\n".join(line.split("] ", 1)[1] for line in STACK.splitlines()[:8])
RESOLVING = ("Ending the workload's processes (holders first, then the blocked ones; blocked "
             "tasks watched for 30s):")
DD, HOLDER = Task(270, "dd", "D", 3), Task(41, "pinhold", "S", 7)


def test_reports_and_dumps_are_counted_per_task():
    tasks = hang.blocked_tasks(TEXT)
    assert list(tasks) == [270]          # the kworker is idle (I), not blocked
    t = tasks[270]
    assert (t.name, t.hung_reports, t.dumps, t.wait_site) == ("dd", 2, 2, "ext4_break_layouts")
    assert t.stack == PLAIN_STACK         # the block ends at </TASK>
    assert hang.hung_pids(TEXT) == {270}
    # a dump's blocks end at the next report: dd in one dump, then reported
    assert hang.blocked_tasks(HUNG + DUMP + HUNG)[270].dumps == 1


def test_blocked_since_is_the_earliest_report_minus_its_seconds():
    assert hang.blocked_since(TEXT) == {270: 102.874024 - 10}
    assert hang.blocked_since("[ 50.5] INFO: task a:1 blocked for more than 20 seconds.\n"
                              "[ 60.0] INFO: task b:2 blocked for more than 5 seconds.\n") \
        == {1: 30.5, 2: 55.0}


def test_a_stall_says_who_recovered_after_what_and_how_long_it_was_blocked():
    v = hang.classify(TEXT)
    res = Resolution(scoped=True, watched={270: DD}, recovered={270: 4.2},
                     ended=[Ended(HOLDER, 3.0, True, 5, [270])], uptime_at={270: 121.0},
                     bound=30)
    s = hang.settle(v, res, hang.blocked_since(TEXT))
    assert s is v and s.kind is CaseKind.STALL and s.resolution is res
    assert [t.pid for t in s.recovered] == [270] and s.stuck == []
    assert round(s.blocked_s[270], 3) == round(121.0 - 92.874024, 3)
    assert s.reason == ("stall, not a deadlock: 1 blocked task(s) recovered once the "
                        "workload's processes were ended: dd:270 in ext4_break_layouts (28s) "
                        "recovered after lab ended pinhold:41 (5 pin(s) released)")
    assert s.details("EVIDENCE") == (
        "Blocked tasks that recovered once the workload's processes were ended (a stall):\n\n"
        "== dd:270 blocked in ext4_break_layouts for 28.1s, recovered after ending "
        "pinhold:41, which released 5 pin(s)\n" + PLAIN_STACK + "\n\n" + RESOLVING + "\n"
        "  ended pinhold:41 (S) at +3.0s, 5 pin(s) released -> recovered: dd:270")


def test_a_task_that_recovered_on_its_own():
    v = hang.classify(TEXT)
    res = Resolution(scoped=True, watched={270: DD}, recovered={270: 1.0},
                     ended=[Ended(HOLDER, 3.0, True)], bound=30)
    s = hang.settle(v, res)            # no report times: no duration
    assert s.reason.endswith("dd:270 in ext4_break_layouts recovered on its own")
    assert "== dd:270 blocked in ext4_break_layouts, recovered on its own\n" in s.details()
    assert "  ended pinhold:41 (S) at +3.0s\n" not in s.details()   # last line, no freed
    assert s.details().endswith("  ended pinhold:41 (S) at +3.0s")


def test_a_deadlock_says_what_lab_did_and_what_stayed():
    v = hang.classify(TEXT)
    writer = Task(271, "writer", "D", 1)
    res = Resolution(scoped=False, watched={270: DD, 271: writer}, killed_blocked={271: 31.5},
                     stuck=[DD, writer], survivors=[Task(300, "stuck", "D", 1)],
                     note="no cgroup v2: only the blocked tasks were ended", bound=30)
    s = hang.settle(v, res)
    assert s.kind is CaseKind.DEADLOCK and s.recovered == [] and [t.pid for t in s.stuck] == [270]
    assert s.reason == ("1 task(s) stuck in D state did not recover within 30s after lab "
                        "could not end the workload's processes (no cgroup v2): dd:270 in "
                        "ext4_break_layouts")
    assert s.details() == (
        "Blocked tasks (stuck in D state, not scheduled):\n\n"
        "== dd:270 blocked in ext4_break_layouts (2 hung-task report(s), in 2 sysrq-w "
        "dump(s))\n" + PLAIN_STACK + "\n\n" + RESOLVING + "\n"
        "  no cgroup v2: only the blocked tasks were ended\n"
        "  writer:271 was blocked until lab killed it at +31.5s (its operation never "
        "completed)\n"
        "  dd:270 still in D state, not scheduled, after 30s\n"
        "  survivor: 300 stuck (D) could not be ended")


def test_a_task_lab_killed_did_not_recover():
    """Leaving D state because lab killed it is not a recovery."""
    v = hang.classify(TEXT)
    res = Resolution(scoped=True, watched={270: DD}, recovered={270: 2.0},
                     killed_blocked={270: 2.0}, stuck=[DD], bound=30)
    s = hang.settle(v, res)
    assert s.kind is CaseKind.DEADLOCK
    assert "after every process of the workload was ended" in s.reason
    assert "dd:270 still in D state" not in hang.resolution_text(res)


def test_a_verdict_that_is_not_a_deadlock_is_left_as_it_is():
    v = hang.classify("", {5: ("D", 1)}, {5: ("D", 9)})
    res = Resolution(scoped=True)
    assert hang.settle(v, res).kind is CaseKind.TIMEOUT and v.resolution is res


def test_at_most_five_tasks_are_named_in_a_reason():
    text = "".join(f"[ 1.0] INFO: task t{p}:{p} blocked for more than 10 seconds.\n"
                   for p in range(1, 8))
    v = hang.classify(text)
    assert v.reason.startswith("7 task(s) stuck in D state: t1:1 in ?, t2:2 in ?")
    assert v.reason.endswith("t5:5 in ?")


def test_the_reasons_of_every_verdict():
    assert hang.classify("Kernel panic - not syncing: x").reason == "the kernel panicked"
    v = hang.classify("", dead=True)
    assert (v.kind, v.stuck, v.progressing, v.reason) == (
        "unreachable", [], [], "the guest stopped answering and showed no blocked task or panic")
    v = hang.classify("", {}, {})
    assert (v.kind, v.stuck, v.progressing, v.reason) == (
        CaseKind.TIMEOUT, [], [], "no task blocked in D state: slow, not stuck")
    v = hang.classify(DUMP, {270: ("D", 5)}, {270: ("D", 9)})
    assert v.reason == "1 task(s) in D state but still scheduled: slow, not stuck"
    assert v.details() == ("Tasks seen in D state that were still being scheduled "
                           "(progressing, not stuck): dd:270 5->9")


def test_only_snapshots_of_both_moments_count():
    """With one snapshot missing, the text alone decides (two dumps: stuck)."""
    assert hang.classify(TEXT, {270: ("D", 5)}, None).kind is CaseKind.DEADLOCK
    # a task in D in both snapshots that no dump names is stuck, as '?'
    v = hang.classify("", {9: ("D", 3)}, {9: ("D", 3), 10: ("D", 1)})
    assert [(t.name, t.pid) for t in v.stuck] == [("?", 9)]
    assert v.stuck[0].switches == (3, 3)


def test_evidence_is_shown_only_when_no_task_is_named_and_its_tail_only():
    v = hang.classify("", {}, {})
    assert v.details("x" * 30000) == "--- evidence ---\n" + "x" * 20000
    assert v.details() == ""


def test_panic_report_starts_at_the_first_oops_line():
    console = "boot\n" * 10 + "[ 5.0] Oops: 0000 [#1] SMP\n[ 5.1] Kernel panic\n"
    assert hang.panic_report(console) == "[ 5.0] Oops: 0000 [#1] SMP\n[ 5.1] Kernel panic\n"
    long = "y" * 30000
    assert hang.panic_report(long) == "y" * 20000
    assert hang.panic_report("general protection fault " + long) == "y" * 20000


def test_proc_states_without_a_state_line_and_bad_numbers():
    text = ("/proc/7/status:voluntary_ctxt_switches:\t4\n"
            "/proc/8/status:State:\tR (running)\n"
            "/proc/8/status:nonvoluntary_ctxt_switches:\tlots\n"
            "garbage\n")
    assert hang.parse_proc_states(text) == {7: ("?", 4), 8: ("R", 0)}


def test_a_task_block_at_the_very_start_of_the_text():
    [(name, pid, state, stack)] = hang._task_blocks(STACK.splitlines()[0] + "\n")
    assert (name, pid, state) == ("dd", 270, "D")


HUNG_WITH_STACK = ("[  130.000000] INFO: task dd:270 blocked for more than 20 seconds.\n"
                   + STACK.replace("109.", "130."))


def test_a_dump_ends_where_a_hung_task_report_begins():
    """The stack a hung-task report prints after a dump is not in the dump."""
    t = hang.blocked_tasks(DUMP + HUNG_WITH_STACK)[270]
    assert (t.hung_reports, t.dumps) == (1, 1)
    t = hang.blocked_tasks(DUMP + HUNG_WITH_STACK + DUMP.replace("110.", "140."))[270]
    assert (t.hung_reports, t.dumps) == (1, 2)


def test_a_dump_counts_a_task_only_in_d_state():
    sleeping = DUMP.replace("state:D", "state:S")
    assert hang.blocked_tasks(HUNG + sleeping)[270].dumps == 0


def test_task_blocks_end_at_their_own_end():
    idle = STACK.splitlines()[-1] + "\n"              # the kworker, state I, no stack
    dd = "".join(line + "\n" for line in STACK.splitlines()[:8])
    text = idle + STACK.splitlines()[0] + "\n" + idle + dd + "[  109.1] other output\n" + idle
    blocks = hang._task_blocks(text)
    assert [(n, p, s) for n, p, s, _ in blocks] == [
        ("kworker/0:1", 12, "I"), ("dd", 270, "D"), ("kworker/0:1", 12, "I"),
        ("dd", 270, "D"), ("kworker/0:1", 12, "I")]
    assert blocks[3][3] == PLAIN_STACK                 # ends at </TASK>
    assert not any("other output" in b[3] for b in blocks)
    # an idle task first does not hide the blocked one after it
    assert list(hang.blocked_tasks("[ 1.0] sysrq: Show Blocked State\n" + idle + STACK)) \
        == [270]


def test_details_of_tasks_without_stacks_or_snapshots():
    v = hang.classify(DUMP)                      # one dump, no report, no /proc view
    assert v.kind is CaseKind.TIMEOUT
    assert v.details() == ("Tasks seen in D state that were still being scheduled "
                           "(progressing, not stuck): dd:270")
    two = hang.Verdict(CaseKind.TIMEOUT, progressing=[hang.BlockedTask("a", 1),
                                                      hang.BlockedTask("b", 2, switches=(1, 5))])
    assert two.details().endswith("(progressing, not stuck): a:1, b:2 1->5")
    bare = hang.Verdict(CaseKind.DEADLOCK, stuck=[hang.BlockedTask("x", 3, hung_reports=1)])
    assert bare.details() == ("Blocked tasks (stuck in D state, not scheduled):\n\n"
                              "== x:3 blocked in ? (1 hung-task report(s))\n(no stack captured)")
    alone = hang.Verdict(CaseKind.STALL, recovered=[hang.BlockedTask("y", 4)])
    assert alone.details() == ("Blocked tasks that recovered once the workload's processes "
                               "were ended (a stall):\n\n== y:4 blocked in ?, recovered on its "
                               "own\n(no stack captured)")


def test_a_stall_names_every_recovery_and_no_pins_when_none_went():
    text = "".join(f"[ 30.0] INFO: task t{p}:{p} blocked for more than 10 seconds.\n"
                   for p in range(1, 8))
    v = hang.classify(text)
    watched = {p: Task(p, f"t{p}", "D", 1) for p in range(1, 8)}
    res = Resolution(scoped=True, watched=watched, recovered={p: 1.0 for p in range(1, 8)},
                     ended=[Ended(HOLDER, 1.0, True, 0, [1, 2])], uptime_at={1: 35.0},
                     bound=30)
    s = hang.settle(v, res, {1: 20.0, 2: 25.0})
    assert s.kind is CaseKind.STALL and s.blocked_s == {1: 15.0}
    assert s.reason == (
        "stall, not a deadlock: 7 blocked task(s) recovered once the workload's processes "
        "were ended: t1:1 in ? (15s) recovered after lab ended pinhold:41; t2:2 in ? "
        "recovered after lab ended pinhold:41; t3:3 in ? recovered on its own; t4:4 in ? "
        "recovered on its own; t5:5 in ? recovered on its own")
    assert "recovered after ending pinhold:41\n" in s.details()
    assert "  ended pinhold:41 (S) at +1.0s -> recovered: t1:1, t2:2" in s.details()


def test_a_deadlock_names_at_most_five_stuck_tasks():
    text = "".join(f"[ 30.0] INFO: task t{p}:{p} blocked for more than 10 seconds.\n"
                   for p in range(1, 8))
    s = hang.settle(hang.classify(text), Resolution(scoped=True, bound=30))
    assert s.reason.endswith("after every process of the workload was ended: t1:1 in ?, "
                             "t2:2 in ?, t3:3 in ?, t4:4 in ?, t5:5 in ?")


def test_proc_states_after_a_line_that_is_not_one():
    assert hang.parse_proc_states("garbage\n/proc/8/status:State:\tD (disk sleep)\n") == \
        {8: ("D", 0)}
