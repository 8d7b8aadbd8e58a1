"""dax: the helper's command line, its JSON summary -> verdicts (pass, lost
wakeup, stuck truncate, corruption), and the workload over a fake guest."""

import copy
import json

from lab.guest.fake import FakeGuest
from lab.results import Status
from lab.workloads.base import WorkloadContext
from lab.workloads.dax import Dax, judge, pinstress_argv

STATS = {"reads": 900, "bytes": 900 * 65536, "writes": 0, "verified": 700, "raced": 150,
         "efault": 40, "sigbus": 10, "mismatches": 0, "first_bad_offset": -1, "errors": 0,
         "first_error": ""}
GOOD = {"mode": "dax", "file": "/mnt/lab-dax/pin.dat", "size": 8 << 20, "chunk": 65536,
        "seconds": 5.1, "statx_dax": True, "direct": STATS, "uring_mapping": "refused:EOPNOTSUPP",
        "uring": dict(STATS, reads=300, writes=300, verified=250),
        "truncate": {"truncates": 400, "punches": 399, "max_truncate_ms": 12.5,
                     "max_punch_ms": 3.1, "stuck": False, "longest_op_s": 0.0,
                     "blocked_by_registered_mapping_s": 0.0, "kicks": 0, "lost_wakeups": 0,
                     "slow_op_stack": ""},
        "final": {"done": True, "first_bad_offset": -1, "punch_ok": True}, "ok": True}
STACK = ("[<0>] ext4_break_layouts+0x8f/0x120 [ext4]\n[<0>] ext4_setattr+0x4f1/0xbe0 [ext4]\n"
         "[<0>] do_truncate+0x94/0xe0\n")


def variant(**changes):
    res = copy.deepcopy(GOOD)
    for path, value in changes.items():
        d = res
        *head, last = path.split("__")
        for k in head:
            d = d[k]
        d[last] = value
    return res


def test_argv():
    argv = pinstress_argv("/h", file="/m/f", dev="/dev/nvme0n1", size_mb=8, seconds=5,
                          chunk_kb=64, uring=True, stuck_after=20, kick_after=2)
    assert argv == ["/h", "dax", "--file", "/m/f", "--dev", "/dev/nvme0n1", "--size-mb", "8",
                    "--seconds", "5", "--chunk-kb", "64", "--stuck-after", "20",
                    "--kick-after", "2", "--uring"]


def test_a_clean_run_passes_with_figures():
    [c] = judge("dax.ext4.pin-truncate", GOOD, rc=0, duration=6)
    assert c.status is Status.PASSED
    assert c.properties["direct_verified"] == "700" and c.properties["truncates"] == "400"
    assert c.properties["uring_mapping"] == "refused:EOPNOTSUPP"
    assert "refused a long-term pin of the mapping (EOPNOTSUPP): expected" in c.output


def test_lost_wakeup_is_a_failure_with_the_stack():
    res = variant(truncate__lost_wakeups=1, truncate__kicks=1, truncate__slow_op_stack=STACK,
                  truncate__longest_op_s=6.9, ok=False)
    [c] = judge("dax.ext4.pin-truncate", res, rc=1, duration=8)
    assert c.status is Status.FAILED and c.kind == "lost-wakeup"
    assert "blocked in ext4_break_layouts for 6.9s" in c.message
    assert STACK in c.details and c.properties["wait_site"] == "ext4_break_layouts"


def test_stuck_truncate_is_a_deadlock():
    res = variant(truncate__stuck=True, truncate__longest_op_s=20.1, ok=False)
    [c] = judge("dax.xfs.pin-truncate", res, rc=None, duration=21)
    assert c.kind == "deadlock" and "did not complete in 20.1s" in c.message


def test_truncate_behind_a_registered_mapping_is_a_stall():
    """It completed once the buffers were unregistered: blocked for as long
    as the pin lived, then recovered (a stall), not a deadlock."""
    res = variant(uring_mapping="ok", truncate__blocked_by_registered_mapping_s=20.3)
    [c] = judge("dax.xfs.pin-truncate", res, rc=1, duration=30)
    assert c.status.value == "failed"
    assert c.kind == "stall" and "io_uring registration" in c.message
    assert "accepted the mapping" in c.output


def test_mismatch_is_corruption():
    res = variant(direct__mismatches=2, direct__first_bad_offset=4096, ok=False)
    [c] = judge("dax.ext4.pin-truncate", res, rc=1, duration=6)
    assert c.kind == "corruption" and "first bad offset 4096" in c.message
    [c] = judge("n", variant(final__punch_ok=False), rc=1, duration=1)
    assert c.kind == "corruption"


def test_every_problem_is_reported_the_first_by_precedence():
    """A lost wakeup (6.1 always shows one) with 3 mismatching chunks, a bad
    final read-back and IO errors: the case says the lost wakeup and lists
    the rest, and each of the rest is a failed case of its own, so the
    report tells the corruption apart from the baseline's lost wakeup."""
    res = variant(truncate__lost_wakeups=1, truncate__slow_op_stack=STACK,
                  truncate__longest_op_s=6.9, direct__mismatches=3,
                  direct__first_bad_offset=65536, final__first_bad_offset=131072,
                  uring__errors=2, uring__first_error="pread: EIO", ok=False)
    cases = judge("dax.ext4.pin-truncate", res, rc=1, duration=8)
    assert [(c.name, c.status, c.kind) for c in cases] == [
        ("dax.ext4.pin-truncate", Status.FAILED, "lost-wakeup"),
        ("dax.ext4.pin-truncate.corruption", Status.FAILED, "corruption"),
        ("dax.ext4.pin-truncate.io-errors", Status.FAILED, "")]
    main, corruption, io = cases
    assert main.message.endswith("(also: data corruption, IO errors; each its own case "
                                 "dax.ext4.pin-truncate.<problem>)")
    assert main.properties["problems"] == "lost-wakeup,corruption,io-errors"
    assert "3 mismatching chunk(s)" in corruption.message
    assert "first bad offset 65536" in corruption.message
    assert io.message == "IO errors: pread: EIO"
    # the figures stay on the case itself, never on the extra ones (so a
    # latency is judged once)
    assert "max_truncate_ms" in main.properties
    assert corruption.properties == {"found_by": "dax.ext4.pin-truncate"}


def test_the_order_of_problems():
    """Blocking first (stuck, lost wakeup, blocked by a registration), then
    corruption, IO errors, nothing verified."""
    res = variant(truncate__stuck=True, truncate__longest_op_s=20.1, truncate__lost_wakeups=1,
                  truncate__blocked_by_registered_mapping_s=3.0, final__punch_ok=False,
                  direct__errors=1, direct__first_error="EFAULT", direct__verified=0, ok=False)
    cases = judge("n", res, rc=1, duration=30)
    assert [c.name for c in cases] == ["n", "n.lost-wakeup", "n.registration-block",
                                       "n.corruption", "n.io-errors", "n.unverified"]
    assert cases[0].kind == "deadlock" and "did not complete in 20.1s" in cases[0].message
    assert cases[2].kind == "stall"
    assert cases[5].message == "no read could be verified (every read raced a truncate)"
    # inconclusive, not a failure: the data check could not run
    assert cases[5].status is Status.SKIPPED


def test_an_exit_status_is_a_problem_only_when_nothing_explains_it():
    """pinstress exits 1 when it found a problem: that status adds nothing.
    A non-zero exit after a clean summary is a problem of its own."""
    [c] = judge("n", variant(direct__mismatches=1, ok=False), rc=1, duration=1)
    assert c.kind == "corruption" and c.properties["problems"] == "corruption"
    [c] = judge("n", GOOD, rc=3, duration=1, stderr="boom")
    assert c.status is Status.FAILED and c.message == "pinstress exited 3"
    assert c.details == "boom"
    assert judge("n", GOOD, rc=None, duration=1)[0].status is Status.PASSED


def test_io_errors_alone_and_no_verified_read_alone():
    [c] = judge("n", variant(uring__errors=1, uring__first_error="EIO"), rc=1, duration=1)
    assert c.status is Status.FAILED and c.message == "IO errors: EIO"
    main, unverified = judge("n", variant(direct__verified=0), rc=0, duration=1)
    # nothing went wrong, but the data could not be checked: passed, and the
    # check a skipped case saying why (a loaded host can race every read)
    assert main.status is Status.PASSED
    assert unverified.status is Status.SKIPPED and unverified.name == "n.unverified"
    assert "no read could be verified" in unverified.message


def test_no_summary_and_fatal():
    [c] = judge("n", None, rc=139, duration=1, stderr="Segmentation fault")
    assert c.status is Status.FAILED and "printed no summary (exit 139)" in c.message
    assert c.details == "Segmentation fault"
    [c] = judge("n", {"ok": False, "fatal": "open /dev/nvme0n1 O_DIRECT: No such file"}, rc=2,
                duration=1)
    assert c.status is Status.ERROR and "No such file" in c.message


def fake(mounts="/dev/pmem0 /mnt/lab-dax ext4 rw,relatime,dax=always 0 0\n", result=GOOD):
    g = FakeGuest()
    g.answer(r"ls /sys/bus/nd/devices", stdout="namespace0.0 region0\n")
    g.answer(r"ndctl list -n", stdout='{"dev":"namespace0.0","mode":"raw"}')
    g.answer(r"' /mnt/lab-dax ' /proc/mounts", stdout=mounts)
    g.answer(r"setsid sh -c", stdout="55\n")
    g.answer(r"cat \S+/pinstress.out", stdout="noise\n" + json.dumps(result) + "\n")
    g.answer(r"cat \S+/pinstress.rc", stdout="0\n")
    return g


def ctx(g, tmp_path):
    helpers = tmp_path / "helpers"
    helpers.mkdir(exist_ok=True)
    (helpers / "pinstress").write_bytes(b"\x7fELF")
    return WorkloadContext(guest=g, outdir=tmp_path / "out", timeout=300, helpers_dir=helpers)


def test_workload_mounts_checks_dax_and_runs_the_helper(tmp_path):
    g = fake()
    cases = Dax(Dax.parse_options({"filesystems": ["ext4"]}, file="j", where="w")).run(
        ctx(g, tmp_path))
    assert [(c.name, c.status) for c in cases] == [
        ("dax.ext4.mount", Status.PASSED), ("dax.ext4.pin-truncate", Status.PASSED)]
    assert cases[0].properties["mount_options"] == "rw,relatime,dax=always"
    cmds = "\n".join(g.commands)
    assert "ndctl create-namespace -f -e namespace0.0 -m fsdax" in cmds
    assert "mkfs.ext4 -q -F -b 4096 /dev/pmem0 && mount -o dax /dev/pmem0 /mnt/lab-dax" in cmds
    # uploaded under a new name, then renamed over the helper: a copy still
    # running (stuck in D state) never makes the upload fail
    [(tmp, data)] = [(k, v) for k, v in g.files.items() if k.startswith("/tmp/lab-wl/.pinstress.")]
    assert data == b"\x7fELF"
    assert f"mv -f {tmp} /tmp/lab-wl/pinstress" in cmds


def test_workload_fails_when_dax_does_not_take_effect(tmp_path):
    g = fake(mounts="/dev/pmem0 /mnt/lab-dax ext4 rw,relatime 0 0\n")
    [case] = Dax(Dax.parse_options({"filesystems": ["ext4"]}, file="j", where="w")).run(
        ctx(g, tmp_path))
    assert case.status is Status.FAILED and "did not take effect" in case.message


def test_statx_disagreeing_fails_the_mount_case(tmp_path):
    g = fake(result=variant(statx_dax=False))
    cases = Dax(Dax.parse_options({"filesystems": ["xfs"]}, file="j", where="w")).run(
        ctx(g, tmp_path))
    assert cases[0].status is Status.FAILED and "STATX_ATTR_DAX" in cases[0].message


def test_no_pmem_is_skipped(tmp_path):
    g = FakeGuest()
    g.answer(r"ls /sys/bus/nd/devices", stdout="")
    [case] = Dax(Dax.parse_options({}, file="j", where="w")).run(ctx(g, tmp_path))
    assert case.status is Status.SKIPPED and "machine.pmem_mb" in case.message
    g.answer(r"test -d /sys/bus/nd", rc=1)
    [case] = Dax(Dax.parse_options({}, file="j", where="w")).run(ctx(g, tmp_path))
    assert case.status is Status.SKIPPED and "CONFIG_ACPI_NFIT" in case.message


def test_a_namespace_too_small_for_xfs_is_skipped_with_mkfs_first_line(tmp_path):
    g = fake()
    g.answer(r"mkfs.xfs", rc=1, stderr="Filesystem must be larger than 300MB.\nUsage: mkfs.xfs\n")
    [case] = Dax(Dax.parse_options({"filesystems": ["xfs"]}, file="j", where="w")).run(
        ctx(g, tmp_path))
    assert case.status is Status.SKIPPED
    assert case.message.endswith("failed: Filesystem must be larger than 300MB.")


def test_worst_latencies_are_properties_with_their_file():
    """The helper's worst truncate, hole punch, O_DIRECT read into the
    mapping and io_uring IO reach the case (lab.latency judges them), named
    as before where they existed, with the file they were on."""
    res = variant(direct__max_io_ms=7.5, uring__max_io_ms=3.25)
    [c] = judge("dax.ext4.pin-truncate", res, rc=0, duration=6)
    p = c.properties
    assert (p["max_truncate_ms"], p["max_punch_ms"]) == ("12.5", "3.1")
    assert (p["max_direct_read_ms"], p["max_uring_io_ms"]) == ("7.5", "3.25")
    assert p["file"] == "/mnt/lab-dax/pin.dat"
    idle = variant(uring_mapping="off", uring=dict(STATS, reads=0, writes=0, max_io_ms=0.0))
    assert "max_uring_io_ms" not in judge("n", idle, rc=0, duration=6)[0].properties


def test_the_workload_reports_every_problem_of_a_run(tmp_path):
    res = variant(truncate__lost_wakeups=1, truncate__slow_op_stack=STACK,
                  direct__mismatches=3, ok=False)
    g = fake(result=res)
    g.answer(r"cat \S+/pinstress.rc", stdout="1\n")
    cases = Dax(Dax.parse_options({"filesystems": ["ext4"]}, file="j", where="w")).run(
        ctx(g, tmp_path))
    assert [(c.name, c.status, c.kind) for c in cases] == [
        ("dax.ext4.mount", Status.PASSED, ""),
        ("dax.ext4.pin-truncate", Status.FAILED, "lost-wakeup"),
        ("dax.ext4.pin-truncate.corruption", Status.FAILED, "corruption")]
    assert cases[1].properties["command"].startswith("/tmp/lab-wl/pinstress dax")
