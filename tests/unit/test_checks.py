"""The pin balance after a workload (lab/checks.py), on a clock the test
drives: judged on how much the counters grew during the workload, and only
once they have stopped moving."""

import pytest

from lab import checks
from lab.guest.fake import FakeGuest
from lab.proc import Result
from lab.results import CaseKind, Status


class Clock:
    """time.monotonic() and time.sleep() for checks: sleeping advances it."""

    def __init__(self):
        self.now = 1000.0

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(checks, "time", c)
    return c


def guest(*readings):
    """A guest whose /proc/vmstat gives these (acquired, released) readings
    in turn, then the last one for ever."""
    out = iter(readings)

    def answer(cmd):
        a, r = next(out, readings[-1])
        return Result(("sh",), 0, f"nr_foll_pin_acquired {a}\nnr_foll_pin_released {r}\n", "", 0)
    return FakeGuest([("nr_foll_pin", answer)])


def test_pins_left_over_from_before_the_workload_are_not_its_leak(clock):
    """The counters count since boot: an imbalance that was already there
    (an earlier workload's leak) is not this workload's. 64 acquired and
    64 released during it balance, whatever the totals read."""
    c = checks.pin_case(guest((564, 554)), checks.PinCounters(500, 490), "rdma")
    assert c.status is Status.PASSED
    assert (c.properties["pins_acquired"], c.properties["pins_released"]) == ("64", "64")
    assert (c.properties["before"], c.properties["after"]) == ("500/490", "564/554")


def test_totals_that_happen_to_balance_can_hide_a_leak(clock):
    """10 acquired and 20 released during the workload is not a balance,
    even when the totals since boot read equal."""
    c = checks.pin_case(guest((110, 110)), checks.PinCounters(100, 90), "rdma")
    assert c.status is Status.FAILED and c.kind is CaseKind.PIN_LEAK
    assert c.message.startswith("pin leak: 10 pins acquired, 20 released")


def test_counters_still_moving_are_waited_for_however_long_they_move(clock):
    """Releases still trickling in are not a leak: the 'stable' clock starts
    again at every change, so a slow release longer than stable_for in all
    is waited for, and the balance it reaches passes."""
    readings = [(64, r) for r in (40, 44, 48, 52, 56, 60, 64)]
    c = checks.pin_case(guest(*readings), checks.PinCounters(0, 0), "rdma", interval=1.0,
                        stable_for=2.5, timeout=60)
    assert c.status is Status.PASSED
    assert c.properties["readings"] == "7"


def test_a_leak_is_called_once_the_counters_stop_moving_for_stable_for(clock):
    """An imbalance that stops changing is a leak after stable_for seconds
    without a change (not at the first reading, not at the timeout)."""
    start = clock.now
    c = checks.pin_case(guest((64, 30), (64, 40), (64, 42)), checks.PinCounters(0, 0), "rdma",
                        interval=1.0, stable_for=3.0, timeout=60)
    assert c.status is Status.FAILED and c.kind is CaseKind.PIN_LEAK
    assert "64 pins acquired, 42 released (22 not released)" in c.message
    # the last change at t+2; stable for 3 s from then: judged at t+5
    assert clock.now - start == 5.0
    assert c.properties["readings"] == "6"
    assert "nr_foll_pin_acquired 64 nr_foll_pin_released 40" in c.details


def test_counters_that_never_settle_end_at_the_timeout(clock):
    """Counters that keep moving without balancing are judged at the timeout."""
    readings = [(64, r) for r in range(0, 60)]
    start = clock.now
    c = checks.pin_case(guest(*readings), checks.PinCounters(0, 0), "rdma", interval=1.0,
                        stable_for=5.0, timeout=10)
    assert c.status is Status.FAILED and c.kind is CaseKind.PIN_LEAK
    # read at 0..10 s, and once more after the timeout has passed
    assert clock.now - start == 11.0 and c.properties["readings"] == "12"


def test_pins_of_a_live_process_are_held_not_leaked(clock):
    """Unbalanced while a task of the workload lives: pins-held, naming the
    task; part of the workload's verdict when that already failed."""
    from lab.guest.scope import Task

    class Scope:
        available = True

        def tasks(self):
            return {7: Task(7, "pinhold", "D", 3)}
    before = checks.PinCounters(10, 10)
    c = checks.pin_case(guest((13, 11)), before, "pinhold", scope=Scope())
    assert c.status is Status.FAILED and c.kind is CaseKind.PINS_HELD
    assert c.properties["pins_held"] == "2" and c.properties["live_tasks"] == "7 pinhold (D)"
    assert "2 pin(s) still held" in c.message and "pinhold" in c.message
    quiet = checks.pin_case(guest((13, 11)), before, "pinhold", scope=Scope(),
                            workload_failed=True)
    assert quiet.status is Status.SKIPPED and quiet.kind is CaseKind.PINS_HELD
    # balanced while it lives: nothing held, the balance is judged as usual
    ok = checks.pin_case(guest((13, 13)), before, "pinhold", scope=Scope())
    assert ok.status is Status.PASSED


def test_parse_vmstat_needs_both_counters():
    assert checks.parse_vmstat("nr_foll_pin_acquired 5\nnr_foll_pin_released 3\n") == \
        checks.PinCounters(5, 3)
    assert checks.parse_vmstat("nr_foll_pin_acquired 5\n") is None
    assert checks.parse_vmstat("xnr_foll_pin_acquired 5\nnr_foll_pin_released 3\n") is None


# --- the cases themselves, whole ------------------------------------------------

def test_the_pin_cases_in_full(clock):
    """Name, classname, kind, message, output, properties and duration of
    each outcome, as JUnit and summary.json get them."""
    from lab.results import CaseResult
    assert checks.pin_case(guest((1, 1)), None, "fio") == CaseResult(
        "pin-balance", Status.SKIPPED, classname="fio",
        message="kernel has no nr_foll_pin_* counters in /proc/vmstat")
    ok = checks.pin_case(guest((64, 40), (64, 64)), checks.PinCounters(0, 0), "rdma")
    assert ok == CaseResult(
        "pin-balance", Status.PASSED, 0.5, classname="rdma",
        output="FOLL_PIN pins acquired 64, released 64",
        properties={"pins_acquired": "64", "pins_released": "64", "before": "0/0",
                    "after": "64/64", "readings": "2"})

    class NoCgroup:
        available = False

        def tasks(self):
            raise AssertionError("a scope without cgroup v2 is not asked for tasks")
    leak = checks.pin_case(guest((70, 10)), checks.PinCounters(6, 6), "rdma", scope=NoCgroup())
    assert leak == CaseResult(
        "pin-balance", Status.FAILED, 5.0, classname="rdma", kind=CaseKind.PIN_LEAK,
        message="pin leak: 64 pins acquired, 4 released (60 not released) after the "
                "workload's processes exited (not checked: no cgroup v2 in the guest)",
        details="before: 6/6\nreadings after the workload (acquired/released):\n"
                + "\n".join(["nr_foll_pin_acquired 70 nr_foll_pin_released 10"] * 11),
        properties={"pins_acquired": "64", "pins_released": "4", "before": "6/6",
                    "after": "70/10", "readings": "11"})


def test_the_defaults_judge_a_leak_after_5_s_and_give_up_after_20_s(clock):
    """Readings every 0.5 s; stable for 5 s is a leak; still moving at 20 s,
    judged then."""
    start = clock.now
    c = checks.pin_case(guest((64, 42)), checks.PinCounters(0, 0), "rdma")
    assert clock.now - start == 5.0 and c.properties["readings"] == "11"
    start = clock.now
    moving = [(64, r) for r in range(100)]
    c = checks.pin_case(guest(*moving), checks.PinCounters(0, 0), "rdma")
    assert 20.0 < clock.now - start <= 20.5 and c.kind is CaseKind.PIN_LEAK


def test_only_the_last_20_readings_are_in_the_details(clock):
    readings = [(64, r) for r in range(30)]
    c = checks.pin_case(guest(*readings), checks.PinCounters(0, 0), "rdma", interval=1.0,
                        stable_for=5.0, timeout=29)
    lines = c.details.splitlines()[2:]
    assert len(lines) == 20 and lines[-1].endswith("released 29") and \
        lines[0].endswith("released 11")


def test_held_pins_name_every_live_task_by_pid(clock):
    from lab.guest.scope import Task

    class Scope:
        available = True

        def tasks(self):
            return {9: Task(9, "b", "D", 1), 3: Task(3, "a", "S", 1)}
    c = checks.pin_case(guest((5, 1)), checks.PinCounters(0, 0), "pinhold", scope=Scope())
    assert c.name == "pin-balance" and c.classname == "pinhold" and c.duration == 0.0
    assert c.properties == {"pins_acquired": "5", "pins_released": "1", "pins_held": "4",
                            "live_tasks": "3 a (S), 9 b (D)"}
    assert c.message == ("not judged: 4 pin(s) still held by live process(es) of the "
                         "workload: 3 a (S), 9 b (D) (held, not leaked: the balance is judged "
                         "once they have exited)")


WARN = """\
[   50.000002] WARNING: CPU: 1 PID: 300 at mm/gup.c:123 unpin_user_pages+0x10/0x20
[   50.000005] RIP: 0010:unpin_user_pages+0x10/0x20
[   50.000006] Call Trace:
[   50.000007]  <TASK>
[   50.000008]  rxe_mr_cleanup+0x20/0x40 [rdma_rxe]
[   50.000009]  ib_dereg_mr_user+0x30/0x60
[   50.000010]  </TASK>
[   50.000011] ---[ end trace 0000000000000000 ]---
"""
HUNG = """\
[  102.874024] INFO: task dd:270 blocked for more than 10 seconds.
[  102.874400]       Not tainted 6.1.0-56-amd64 #1 Debian 6.1.158-1
[  102.874612] "echo 0 > /proc/sys/kernel/hung_task_timeout_secs" disables this message.
[  109.035437] task:dd              state:D stack:0     pid:270   ppid:1      flags:0x00000002
[  109.035730] Call Trace:
[  109.035801]  <TASK>
[  109.035877]  __schedule+0x34d/0xa00
[  109.036005]  schedule+0x5a/0xd0
[  109.036170]  mnt_want_write+0x8b/0xc0
[  109.036457]  path_openat+0xb00/0x1260
[  109.046415]  </TASK>
"""


def test_a_finding_case_in_full():
    [c] = checks.findings_cases(WARN, "rdma")
    assert (c.name, c.status, c.classname, c.kind) == (
        "WARNING in unpin_user_pages", Status.FAILED, "rdma", "warning")
    assert c.message == "WARNING in unpin_user_pages at mm/gup.c:123"
    assert c.properties == {"signature": "WARNING in unpin_user_pages @ mm/gup.c",
                            "kind": "warning"}
    assert c.details.startswith("WARNING: CPU: 1 PID: 300 at mm/gup.c:123")


def test_a_finding_says_how_often_and_whether_its_report_is_whole():
    """A repeat of the same report is counted in its message; a report
    without a location says nothing of one; a cut report says so."""
    [c] = checks.findings_cases(HUNG + HUNG, "fio")
    assert c.message == "INFO: task hung in mnt_want_write (x2)"
    cut = WARN.replace("[   50.000009]  ib_dereg_mr_user+0x30/0x60\n", "").split(
        "[   50.000007]")[0]
    [c] = checks.findings_cases(cut, "fio")
    assert c.message == "WARNING in unpin_user_pages at mm/gup.c:123 [report corrupted]"


def test_a_finding_seen_before_is_skipped_and_the_next_still_reported():
    seen = set()
    checks.findings_cases(WARN, "rdma", seen)
    [c] = checks.findings_cases(WARN + HUNG, "dax", seen)
    assert c.name == "INFO: task hung in mnt_want_write"
    assert seen == {"WARNING in unpin_user_pages @ mm/gup.c", c.properties["signature"]}


def test_the_counters_are_read_with_one_bounded_command():
    seen = []

    class Guest:
        def run(self, cmd, *, timeout):
            seen.append((cmd, timeout))
            return Result(("sh",), 0, "nr_foll_pin_acquired 3\nnr_foll_pin_released 2\n", "", 0)
    assert checks.read_pins(Guest()) == checks.PinCounters(3, 2)
    assert seen == [("grep ^nr_foll_pin_ /proc/vmstat", 30)]


def test_unreadable_counters_after_the_workload_are_an_error_case(clock):
    from lab.results import CaseResult
    g = FakeGuest([("nr_foll_pin", Result(("sh",), 1, "", "", 0))])
    c = checks.pin_case(g, checks.PinCounters(1, 1), "fio", timeout=2, interval=1)
    assert c == CaseResult("pin-balance", Status.ERROR, 3.0, classname="fio",
                           message="could not read /proc/vmstat after the workload")


def test_a_leak_judged_through_the_cgroup_says_nothing_more(clock):
    """With cgroup v2 the balance was judged once the processes had exited:
    the message has no caveat; the time spent reading the tasks counts."""
    class Empty:
        available = True

        def tasks(self):
            clock.sleep(0.25)
            return {}
    c = checks.pin_case(guest((9, 1)), checks.PinCounters(0, 0), "rdma", scope=Empty(),
                        stable_for=1, interval=1)
    assert c.message == ("pin leak: 9 pins acquired, 1 released (8 not released) after the "
                         "workload's processes exited")
    assert c.duration == 1.25


def test_the_time_to_find_held_pins_is_the_cases(clock):
    from lab.guest.scope import Task

    class Live:
        available = True

        def tasks(self):
            clock.sleep(0.5)
            return {3: Task(3, "a", "D", 1)}
    c = checks.pin_case(guest((5, 1)), checks.PinCounters(0, 0), "pinhold", scope=Live())
    assert c.kind is CaseKind.PINS_HELD and c.duration == 0.5
