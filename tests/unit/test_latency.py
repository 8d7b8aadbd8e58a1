"""Latency stalls: a worst latency a workload reported above the job's bound
is a failed `stall` case naming the operation, the file and the duration;
at or under the bound, or a figure that is not one, is nothing."""

import pytest

from lab.latency import LATENCIES, latencies, stall_cases
from lab.results import CaseResult, Status

MR = "/mnt/lab-rdma/mr.dat"


def rdma(max_fsync_ms, status=Status.PASSED, kind="", **props):
    return CaseResult("rdma.ext4", status, classname="rdma", kind=kind,
                      properties={"file": MR, "max_fsync_ms": max_fsync_ms, "fsyncs": "40",
                                  **props})


def test_a_latency_over_the_bound_is_a_failed_stall_naming_operation_file_and_duration():
    [c] = stall_cases([rdma("3412.0")], 2.0, "rdma")
    assert (c.name, c.classname, c.status, c.kind) == (
        "rdma.ext4.fsync-latency", "rdma", Status.FAILED, "stall")
    assert c.message == "fsync of /mnt/lab-rdma/mr.dat took 3412 ms (bound 2000 ms)"
    assert c.properties == {"operation": "fsync", "file": MR, "latency_ms": "3412.0",
                            "bound_ms": "2000", "measured_in": "rdma.ext4",
                            "property": "max_fsync_ms"}


@pytest.mark.parametrize("value, stalls", [("1999.9", False), ("2000", False),
                                           ("2000.0", False), ("2000.1", True)])
def test_at_the_bound_is_within_it(value, stalls):
    assert bool(stall_cases([rdma(value)], 2.0, "rdma")) is stalls


@pytest.mark.parametrize("value", ["None", "", "nan", "inf", "-5", "fast", "0x10"])
def test_a_figure_that_is_not_a_latency_is_ignored(value):
    """rdma writes str(None) when the fsync loop did not report; none of
    these is a stall, nor an error."""
    assert stall_cases([rdma(value)], 0.001, "rdma") == []
    assert latencies({"max_fsync_ms": value}) == {}


def test_a_missing_property_is_ignored_and_other_properties_are_not_latencies():
    case = CaseResult("fio.nvme.libaio", Status.PASSED,
                      properties={"write_iops": "999999", "bw_avg_mbs": "5000"})
    assert stall_cases([case], 0.001, "fio") == []


def test_every_operation_the_helpers_time_is_judged_with_its_own_wording():
    """dax (truncate, punch, the pinners' IO), fio (completion latency), rdma
    on fsdax (truncate_s, in seconds)."""
    dax = CaseResult("dax.xfs.pin-truncate", Status.PASSED, properties={
        "file": "/mnt/lab-dax/pin.dat", "max_truncate_ms": "2500.4", "max_punch_ms": "16.0",
        "max_direct_read_ms": "4100", "max_uring_io_ms": "3.2"})
    fio = CaseResult("fio.ext4.io_uring", Status.PASSED, properties={
        "file": "/mnt/lab-fio/fio.dat", "max_write_clat_ms": "2600", "max_read_clat_ms": "6.6",
        "max_fsync_ms": "15.7"})
    mr = CaseResult("rdma.dax-ext4", Status.PASSED, properties={"file": MR, "truncate_s": "3.4"})
    got = {c.name: c.message for c in stall_cases([dax, fio, mr], 2, "w")}
    assert got == {
        "dax.xfs.pin-truncate.truncate-latency":
            "truncate of /mnt/lab-dax/pin.dat took 2500 ms (bound 2000 ms)",
        "dax.xfs.pin-truncate.direct-read-latency":
            "O_DIRECT read into the mapping of /mnt/lab-dax/pin.dat took 4100 ms "
            "(bound 2000 ms)",
        "fio.ext4.io_uring.write-clat-latency":
            "write to /mnt/lab-fio/fio.dat (fio completion latency) took 2600 ms "
            "(bound 2000 ms)",
        "rdma.dax-ext4.mr-truncate-latency":
            f"truncate of {MR} while an RDMA MR is registered on it took 3400 ms "
            "(bound 2000 ms)"}
    assert len({m.prop for m in LATENCIES}) == len({m.slug for m in LATENCIES}) == len(LATENCIES)


def test_a_case_that_already_failed_for_blocking_is_not_reported_twice():
    """6.1's lost wakeup makes a truncate take ~5 s: the lost-wakeup case
    says so; a skipped case measured nothing. A case that failed for
    another reason (corruption) still has its slow fsync reported."""
    lost = rdma("5161.4", Status.FAILED, kind="lost-wakeup")
    dead = rdma("60000", Status.FAILED, kind="deadlock")
    skipped = rdma("9000", Status.SKIPPED)
    corrupt = rdma("3000", Status.FAILED, kind="corruption")
    assert [c.name for c in stall_cases([lost, dead, skipped, corrupt], 2, "rdma")] == [
        "rdma.ext4.fsync-latency"]


def test_a_bound_of_zero_is_off_and_a_missing_file_is_said_so():
    assert stall_cases([rdma("99999")], 0, "rdma") == []
    case = CaseResult("rdma.ext4", Status.PASSED, properties={"max_fsync_ms": "2500"})
    [c] = stall_cases([case], 0.5, "rdma")
    assert c.message == "fsync of (file not reported) took 2500 ms (bound 500 ms)"


def test_a_truncate_waiting_for_a_held_pin_longer_than_the_bound_is_a_stall():
    """pinhold (hold 3 s): the truncate and the writer behind it complete
    once the pin goes away; the case passes, the wait is the finding."""
    case = CaseResult("pinhold.ext4", Status.PASSED, classname="pinhold", properties={
        "file": "/mnt/lab-pinhold/held.dat", "hold_s": "3", "truncate_ms": "3012",
        "write_ms": "2890", "held_ms": "3001"})
    assert [c.message for c in stall_cases([case], 2, "pinhold")] == [
        "truncate of /mnt/lab-pinhold/held.dat while a page of it was pinned took 3012 ms "
        "(bound 2000 ms)",
        "write to /mnt/lab-pinhold/held.dat behind the truncate took 2890 ms (bound 2000 ms)"]
    short = CaseResult("pinhold.ext4", Status.PASSED, properties={"truncate_ms": "1004",
                                                                  "write_ms": "None"})
    assert stall_cases([short], 2, "pinhold") == []      # the default hold, 1 s


def test_a_figure_is_a_finite_number_of_zero_or_more():
    """metrics compares these figures too: zero is a figure (a bandwidth of
    0 is a regression), a fraction of a millisecond is one, a boolean is
    not."""
    from lab.latency import number
    assert number("0") == 0.0 and number(0) == 0.0
    assert number("0.5") == 0.5
    assert number(True) is None and number(False) is None and number(None) is None
    assert number("-0.1") is None


def test_a_stall_message_rounds_its_milliseconds_sensibly():
    """Whole milliseconds from 10 ms up, three significant digits below."""
    def message(ms, bound):
        [c] = stall_cases([rdma(ms)], bound, "rdma")
        return c.message
    assert message("10", 0.0025).endswith("took 10 ms (bound 2.5 ms)")
    assert message("10.4", 0.001).endswith("took 10 ms (bound 1 ms)")
    assert message("9.87", 0.001).endswith("took 9.87 ms (bound 1 ms)")


def test_the_stall_case_says_what_was_measured_and_that_it_completed():
    [c] = stall_cases([rdma("3412.0")], 2.0, "rdma")
    assert c.details == ("rdma.ext4 reported max_fsync_ms = 3412.0 (fsync of "
                         "/mnt/lab-rdma/mr.dat); the bound (stall_threshold) is 2 s. The "
                         "operation completed: slow, then done (a stall, not a deadlock).")
    # a case that did not name its file: the property is empty, the message says so
    nofile = CaseResult("fio.nvme", Status.PASSED, properties={"max_write_clat_ms": "2500"})
    [c] = stall_cases([nofile], 2.0, "fio")
    assert c.properties["file"] == ""
    assert "(file not reported)" in c.message


def test_a_bound_of_zero_or_below_is_off():
    assert stall_cases([rdma("99999")], 0, "rdma") == []
    assert stall_cases([rdma("99999")], -1, "rdma") == []
