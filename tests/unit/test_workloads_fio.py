"""fio: command lines (io_uring fixed buffers, fsync on file targets) and
verdicts over a fake guest, with IOPS and bandwidth in the properties."""

import json
from pathlib import Path

from lab.guest.fake import FakeGuest
from lab.results import Status
from lab.workloads.base import WorkloadContext
from lab.workloads.fio import Fio, FioRun, fio_argv
from lab.workloads.fio_parse import parse_fio_json

REAL = Path(__file__).parent / "data" / "fio" / "ext4-io_uring-6.1-tcg.json"


def report(verified=32 << 20, error=0):
    return json.dumps({"jobs": [{"error": error, "write": {"iops": 2500.0, "bw": 10000},
                                 "read": {"iops": 3000.0, "bw": 12000, "io_bytes": verified}}]})


def test_argv():
    a = fio_argv(FioRun("ext4", "io_uring"), size_mb=32, bs="4k", iodepth=8, fsync=16)
    assert "--fixedbufs=1" in a and "--registerfiles=1" in a and "--direct=1" in a
    assert "--filename=/mnt/lab-fio/fio.dat" in a and "--fsync=16" in a
    assert "--verify=crc32c" in a and "--do_verify=1" in a
    n = fio_argv(FioRun("nvme", "libaio"), size_mb=32, bs="4k", iodepth=8, fsync=16)
    assert "--filename=/dev/nvme0n1" in n and not any(x.startswith("--fsync") for x in n)


def run(g, tmp_path, **opts):
    wl = Fio(Fio.parse_options(opts, file="j", where="w"))
    return wl.run(WorkloadContext(guest=g, outdir=tmp_path, timeout=600))


def test_file_targets_pass_with_figures(tmp_path):
    g = FakeGuest()
    g.answer(r"^fio ", stdout=report())
    cases = run(g, tmp_path, targets=["ext4", "xfs"], engines=["io_uring"], size_mb=32)
    assert [(c.name, c.status) for c in cases] == [("fio.ext4.io_uring", Status.PASSED),
                                                   ("fio.xfs.io_uring", Status.PASSED)]
    assert cases[0].properties["write_iops"] == "2500" and cases[0].properties["verify"] == \
        "passed"
    assert "2500 IOPS 9.8 MiB/s" in cases[0].output
    cmds = "\n".join(g.commands)
    assert "mkfs.xfs -q -f /dev/nvme0n1" in cmds and "modprobe -q xfs" in cmds
    assert (tmp_path / "commands.log").exists() and (tmp_path / "fio.xfs.io_uring.json").exists()


def test_short_verify_and_errors_fail(tmp_path):
    g = FakeGuest()
    g.answer(r"^fio ", stdout=report(verified=4096))
    [c] = run(g, tmp_path, size_mb=32)
    assert c.status is Status.FAILED and "read back 4096" in c.message
    g.answer(r"^fio ", stdout=report(error=5), stderr="verify: bad header", rc=1)
    [c] = run(g, tmp_path, size_mb=32)
    assert c.status is Status.FAILED and "exit 1" in c.message


def test_no_nvme_is_skipped(tmp_path):
    g = FakeGuest()
    g.answer(r"test -b /dev/nvme0n1", rc=1)
    [c] = run(g, tmp_path)
    assert c.status is Status.SKIPPED


def test_worst_completion_latencies_come_from_fios_json():
    """fio 3.33 on a 6.1 guest under TCG (ext4, io_uring, fsync every 32
    writes): the worst write and read completion (clat max, in ns in the
    JSON) and the worst fsync (the `sync` section), in ms; the figures the
    stall bound and the baseline comparison judge."""
    f = parse_fio_json(REAL.read_text())
    assert (round(f.max_write_clat_ms, 3), round(f.max_read_clat_ms, 3)) == (14.408, 6.597)
    assert round(f.max_fsync_ms, 3) == 15.723
    props = f.properties()
    assert (props["max_write_clat_ms"], props["max_read_clat_ms"], props["max_fsync_ms"]) == (
        "14.4", "6.6", "15.7")
    assert props["write_iops"] == "2932"       # the existing figures keep their names


def test_latencies_absent_or_idle_are_not_reported():
    """An older fio (clat in microseconds) still gives its max; a direction
    or fsync that did no IO, or no latency section at all, gives none."""
    old = {"jobs": [{"error": 0, "write": {"iops": 10, "bw": 40, "total_ios": 5,
                                           "clat": {"max": 2500.0}},
                     "read": {"iops": 0, "bw": 0, "io_bytes": 0, "total_ios": 0,
                              "clat": {"max": 0}},
                     "sync": {"total_ios": 0, "lat_ns": {"max": 0}}}]}
    f = parse_fio_json(json.dumps(old))
    assert (f.max_write_clat_ms, f.max_read_clat_ms, f.max_fsync_ms) == (2.5, None, None)
    assert "max_read_clat_ms" not in f.properties() and "max_fsync_ms" not in f.properties()
    assert parse_fio_json(report()).max_write_clat_ms is None


def test_each_case_names_the_file_its_latencies_are_on(tmp_path):
    g = FakeGuest()
    g.answer(r"^fio ", stdout=REAL.read_text())
    nvme, ext4 = run(g, tmp_path, targets=["nvme", "ext4"], engines=["io_uring"], size_mb=16)
    assert nvme.properties["file"] == "/dev/nvme0n1"
    assert ext4.properties["file"] == "/mnt/lab-fio/fio.dat"
    assert ext4.properties["max_write_clat_ms"] == "14.4"
