"""fio: command lines (io_uring fixed buffers, fsync on file targets) and
verdicts over a fake guest, with IOPS and bandwidth in the properties."""

import json

from lab.guest.fake import FakeGuest
from lab.results import Status
from lab.workloads.base import WorkloadContext
from lab.workloads.fio import Fio, FioRun, fio_argv


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
