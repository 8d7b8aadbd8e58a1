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
    assert 10 <= clock.now - start <= 11


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
