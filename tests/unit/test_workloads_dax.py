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
    c = judge("dax.ext4.pin-truncate", GOOD, rc=0, duration=6)
    assert c.status is Status.PASSED
    assert c.properties["direct_verified"] == "700" and c.properties["truncates"] == "400"
    assert c.properties["uring_mapping"] == "refused:EOPNOTSUPP"
    assert "refused a long-term pin of the mapping (EOPNOTSUPP): expected" in c.output


def test_lost_wakeup_is_a_failure_with_the_stack():
    res = variant(truncate__lost_wakeups=1, truncate__kicks=1, truncate__slow_op_stack=STACK,
                  truncate__longest_op_s=6.9, ok=False)
    c = judge("dax.ext4.pin-truncate", res, rc=1, duration=8)
    assert c.status is Status.FAILED and c.kind == "lost-wakeup"
    assert "blocked in ext4_break_layouts for 6.9s" in c.message
    assert STACK in c.details and c.properties["wait_site"] == "ext4_break_layouts"


def test_stuck_truncate_is_a_deadlock():
    res = variant(truncate__stuck=True, truncate__longest_op_s=20.1, ok=False)
    c = judge("dax.xfs.pin-truncate", res, rc=None, duration=21)
    assert c.kind == "deadlock" and "did not complete in 20.1s" in c.message


def test_truncate_behind_a_registered_mapping_is_a_stall():
    """It completed once the buffers were unregistered: blocked for as long
    as the pin lived, then recovered (a stall), not a deadlock."""
    res = variant(uring_mapping="ok", truncate__blocked_by_registered_mapping_s=20.3)
    c = judge("dax.xfs.pin-truncate", res, rc=1, duration=30)
    assert c.status.value == "failed"
    assert c.kind == "stall" and "io_uring registration" in c.message
    assert "accepted the mapping" in c.output


def test_mismatch_is_corruption():
    res = variant(direct__mismatches=2, direct__first_bad_offset=4096, ok=False)
    c = judge("dax.ext4.pin-truncate", res, rc=1, duration=6)
    assert c.kind == "corruption" and "first bad offset 4096" in c.message
    c = judge("n", variant(final__punch_ok=False), rc=1, duration=1)
    assert c.kind == "corruption"


def test_no_summary_and_fatal():
    assert judge("n", None, rc=139, duration=1, stderr="Segmentation fault").status \
        is Status.FAILED
    c = judge("n", {"ok": False, "fatal": "open /dev/nvme0n1 O_DIRECT: No such file"}, rc=2,
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
    c = judge("dax.ext4.pin-truncate", res, rc=0, duration=6)
    p = c.properties
    assert (p["max_truncate_ms"], p["max_punch_ms"]) == ("12.5", "3.1")
    assert (p["max_direct_read_ms"], p["max_uring_io_ms"]) == ("7.5", "3.25")
    assert p["file"] == "/mnt/lab-dax/pin.dat"
    idle = variant(uring_mapping="off", uring=dict(STATS, reads=0, writes=0, max_io_ms=0.0))
    assert "max_uring_io_ms" not in judge("n", idle, rc=0, duration=6).properties
