"""rdma: option parsing, perftest command lines and output, and the
workload's verdicts over a fake guest (bandwidth, fsdax refusal, no rxe)."""

import json

import pytest

from lab.errors import UserError
from lab.guest.fake import FakeGuest
from lab.results import Status
from lab.workloads import lookup
from lab.workloads.base import WorkloadContext
from lab.workloads.rdma import (Rdma, parse_perftest, perftest_argv, refusal_problems,
                                rxe_setup_cmd)

PERFTEST = """\
---------------------------------------------------------------------------------------
 local address: LID 0000 QPN 0x0011 PSN 0x6b5664 RKey 0x0003f9 VAddr 0x007f89082b6000
 remote address: LID 0000 QPN 0x0012 PSN 0xc2bd78 RKey 0x0002fc VAddr 0x007f2bd5664000
---------------------------------------------------------------------------------------
 #bytes     #iterations    BW peak[MB/sec]    BW average[MB/sec]   MsgRate[Mpps]
 65536      1520             0.00               31.62  		   0.000506
---------------------------------------------------------------------------------------
"""
REFUSED = """Couldn't allocate MR
failed to create mr
Failed to create MR
 Couldn't create IB resources
"""
FSYNC = json.dumps({"mode": "fsync", "fsyncs": 812, "writes": 812, "max_fsync_ms": 90.5,
                    "errors": 0, "first_error": "", "ok": True})


def test_parse_perftest():
    r = parse_perftest(PERFTEST)
    assert (r.msg_bytes, r.iterations, r.bw_avg_mbs, r.msg_rate_mpps) == (65536, 1520, 31.62,
                                                                          0.000506)
    assert parse_perftest(REFUSED) is None


def test_command_lines():
    assert perftest_argv(seconds=5, size=4096, mmap="/m/f") == [
        "ib_write_bw", "-d", "rxe0", "-F", "-D", "5", "-s", "4096", "-p", "18515", "--mmap=/m/f"]
    client = perftest_argv(seconds=5, size=4096, mmap="/m/f", offset=8 << 20,
                           server="10.0.2.15")
    assert client[-2:] == [f"--mmap-offset={8 << 20}", "10.0.2.15"]
    assert "rdma link add rxe0 type rxe netdev eth0" in rxe_setup_cmd("eth0")
    assert "crc32_generic" in rxe_setup_cmd("eth0")


def test_options():
    cls = lookup("rdma")
    o = cls.parse_options({"targets": ["xfs"], "duration": 3}, file="j.yaml", where="w")
    assert o["targets"] == ("xfs",) and o["size"] == 65536 and o["fsync"] is True
    with pytest.raises(UserError, match="valid: address, duration"):
        cls.parse_options({"bogus": 1}, file="j.yaml", where="w")
    with pytest.raises(UserError, match="'dax' is not valid"):
        cls.parse_options({"targets": ["dax"]}, file="j.yaml", where="w")


def guest(client_out=PERFTEST, server_out=PERFTEST, rc="0", mount_opts="rw,relatime"):
    g = FakeGuest()
    g.answer(r"^modprobe -q crc32_generic")
    g.answer(r"grep -q 'state ACTIVE'")
    g.answer(r"' /mnt/lab-rdma ' /proc/mounts",
             stdout=f"/dev/x /mnt/lab-rdma ext4 {mount_opts} 0 0\n")
    g.answer(r"setsid sh -c", stdout="321\n")
    g.answer(r"cat \S+/client.out$", stdout=client_out)
    g.answer(r"cat \S+/server.out$", stdout=server_out)
    g.answer(r"cat \S+/fsync.out$", stdout=FSYNC + "\n")
    g.answer(r"cat \S+\.rc 2>/dev/null", stdout=rc + "\n")
    g.answer(r"ls /sys/bus/nd/devices", stdout="namespace0.0 region0\n")
    g.answer(r"ndctl list -n", stdout='[{"dev":"namespace0.0","mode":"fsdax"}]')
    return g


def ctx(g, tmp_path):
    helpers = tmp_path / "helpers"
    helpers.mkdir()
    (helpers / "pinstress").write_bytes(b"\x7fELF")
    return WorkloadContext(guest=g, outdir=tmp_path / "out", timeout=120, helpers_dir=helpers)


def test_ext4_reports_bandwidth_and_fsyncs(tmp_path):
    g = guest()
    wl = Rdma(Rdma.parse_options({"targets": ["ext4"]}, file="j", where="w"))
    [case] = wl.run(ctx(g, tmp_path))
    assert case.name == "rdma.ext4" and case.status is Status.PASSED, case.message
    assert case.properties["bw_avg_mbs"] == "31.62"
    assert case.properties["fsyncs"] == "812"
    assert case.properties["max_fsync_ms"] == "90.5"
    assert case.properties["file"] == "/mnt/lab-rdma/mr.dat"   # what was fsynced
    assert "31.62 MB/s" in case.output
    cmds = "\n".join(g.commands)
    assert "--mmap=/mnt/lab-rdma/mr.dat" in cmds and "--mmap-offset=8388608" in cmds
    assert "pinstress fsync --file /mnt/lab-rdma/mr.dat --write" in cmds
    assert cmds.rstrip().endswith("rdma link delete rxe0 2>/dev/null; true")
    log = (tmp_path / "out" / "commands.log").read_text()
    assert "[exit 0," in log and "ib_write_bw" in log


def test_fsdax_refusal_is_the_expected_outcome(tmp_path):
    g = guest(client_out=REFUSED, server_out=REFUSED, rc="1",
              mount_opts="rw,relatime,dax=always")
    g.answer(r"grep -q 'remote address:'", rc=1)
    wl = Rdma(Rdma.parse_options({"targets": ["dax-ext4"]}, file="j", where="w"))
    [case] = wl.run(ctx(g, tmp_path))
    assert case.status is Status.PASSED and case.properties["registration"] == "refused"
    assert "expected" in case.output
    assert any("ndctl" in c or "nd/devices" in c for c in g.commands)


def refused_guest(**kw):
    """6.1 on fsdax: both sides print the refusal on stderr and exit 1 (as
    seen in a real run), and the client never connects."""
    g = guest(client_out="allocated mmap buffer\n", server_out="Waiting for client\n", rc="1",
              mount_opts="rw,relatime,dax=always", **kw)
    g.answer(r"grep -q 'remote address:'", rc=1)
    g.answer(r"tail -c 4000 \S+/client.err", stdout=REFUSED)
    g.answer(r"tail -c 4000 \S+/server.err", stdout=REFUSED)
    g.answer(r"cat \S+/fsync.rc 2>/dev/null", stdout="0\n")
    return g


def run_dax(g, tmp_path):
    [case] = Rdma(Rdma.parse_options({"targets": ["dax-ext4"]}, file="j", where="w")).run(
        ctx(g, tmp_path))
    return case


def test_a_refusal_on_stderr_of_both_sides_is_the_expected_outcome(tmp_path):
    case = run_dax(refused_guest(), tmp_path)
    assert case.status is Status.PASSED, case.message
    assert case.properties["registration"] == "refused"
    assert (case.properties["client_exit"], case.properties["server_exit"]) == ("1", "1")


def test_a_refusal_passes_only_when_nothing_else_went_wrong(tmp_path):
    """A side that crashed, or failed for another reason, or an fsync loop
    that failed: the refusal is still said, and so is each of those."""
    g = refused_guest()
    g.answer(r"cat \S+/server.rc 2>/dev/null", stdout="139\n")
    g.answer(r"tail -c 4000 \S+/server.err", stdout="Segmentation fault\n")
    g.answer(r"cat \S+/fsync.out$", stdout=json.dumps(
        {"fsyncs": 3, "ok": False, "first_error": "fsync: Input/output error"}) + "\n")
    case = run_dax(g, tmp_path)
    assert case.status is Status.FAILED and case.kind == ""
    assert case.message == (
        "the kernel refused to register an MR on the fsdax file (the expected outcome), "
        "but: the server exited 139; fsync of the MR file failed: fsync: Input/output error")
    assert case.properties["registration"] == "refused"
    assert "Segmentation fault" in case.details


def test_a_refusal_with_a_side_that_never_finished_is_a_timeout(tmp_path):
    g = refused_guest()
    g.answer(r"until \[ -e", rc=1)              # the processes never finish
    g.answer(r"cat \S+/(client|server).rc 2>/dev/null", stdout="")
    case = run_dax(g, tmp_path)
    assert case.status is Status.FAILED and case.kind == "timeout"
    assert "but: ib_write_bw did not finish within 95s" in case.message


def test_refusal_problems():
    ok = {"client": (1, REFUSED), "server": (1, REFUSED)}
    assert refusal_problems(ok, done=True, bandwidth=False) == []
    assert refusal_problems({"client": (0, ""), "server": (1, REFUSED)}, done=True,
                            bandwidth=False) == []
    assert refusal_problems({"client": (1, "Couldn't connect to 10.0.2.15:18515\n"),
                             "server": (1, REFUSED)}, done=True, bandwidth=False) == [
        "the client failed without a refusal of its own: Couldn't connect to 10.0.2.15:18515"]
    assert refusal_problems({"client": (1, ""), "server": (None, REFUSED)}, done=True,
                            bandwidth=True) == [
        "the client failed without a refusal of its own: no output",
        "the server left no exit status",
        "a bandwidth was reported although a registration was refused"]
    # not finished: a missing status is that, said once by the caller
    assert refusal_problems({"client": (None, ""), "server": (None, REFUSED)}, done=False,
                            bandwidth=False) == []
    assert refusal_problems({"client": (-9, REFUSED), "server": (1, REFUSED)}, done=True,
                            bandwidth=False) == ["the client exited -9"]


def test_every_problem_of_a_failed_transfer_is_named(tmp_path):
    """ib_write_bw failing does not hide a failed fsync of the MR file."""
    g = guest(client_out="Couldn't connect to 10.0.2.15:18515\n", server_out="", rc="1")
    g.answer(r"cat \S+/fsync.out$", stdout=json.dumps(
        {"fsyncs": 3, "ok": False, "first_error": "EIO"}) + "\n")
    [case] = Rdma(Rdma.parse_options({"targets": ["ext4"]}, file="j", where="w")).run(
        ctx(g, tmp_path))
    assert case.message == ("ib_write_bw failed (client exit 1, server exit 1); "
                            "fsync of the MR file failed: EIO")


def test_fsdax_registration_must_let_truncate_complete(tmp_path, monkeypatch):
    import lab.hang
    monkeypatch.setattr(lab.hang.time, "sleep", lambda s: None)
    g = guest(mount_opts="rw,dax=always")
    g.answer(r"until \[ -e \S+/truncate.rc \]", rc=1)      # the truncate never finishes
    wl = Rdma(Rdma.parse_options({"targets": ["dax-ext4"], "truncate_timeout": 2},
                                 file="j", where="w"))
    [case] = wl.run(ctx(g, tmp_path))
    assert case.status is Status.FAILED and case.kind == "deadlock"
    assert "did not complete within 2s" in case.message
    assert "after the MR holders were ended: a deadlock" in case.message


def test_a_truncate_that_completes_once_the_mr_holders_end_is_a_stall(tmp_path, monkeypatch):
    import lab.hang
    from lab.proc import Result
    monkeypatch.setattr(lab.hang.time, "sleep", lambda s: None)
    g = guest(mount_opts="rw,dax=always")
    waits = []

    def truncate_done(cmd):           # still blocked while the MRs exist, done after
        waits.append(cmd)
        return Result(("sh",), 0 if len(waits) > 1 else 1, "", "", 0.0)
    g.answers.append((__import__("re").compile(r"until \[ -e \S+/truncate.rc \]"),
                      truncate_done))
    wl = Rdma(Rdma.parse_options({"targets": ["dax-ext4"], "truncate_timeout": 2},
                                 file="j", where="w"))
    [case] = wl.run(ctx(g, tmp_path))
    assert case.status is Status.FAILED and case.kind == "stall"
    assert "completed" in case.message and "after the MR holders were ended: a stall" \
        in case.message
    assert len(waits) == 2


def test_a_failed_client_fails(tmp_path):
    g = guest(client_out="Couldn't connect to 10.0.2.15:18515\n", server_out="", rc="1")
    [case] = Rdma(Rdma.parse_options({"targets": ["ext4"]}, file="j", where="w")).run(
        ctx(g, tmp_path))
    assert case.status is Status.FAILED and "client exit 1" in case.message


def test_no_rxe_is_skipped_with_the_reason(tmp_path):
    g = FakeGuest()
    g.answer(r"^modprobe -q crc32_generic", rc=1,
             stdout="modprobe: FATAL: Module rdma_rxe not found\n")
    g.answer(r"test -d /sys/module/rdma_rxe", rc=1)
    [case] = Rdma(Rdma.parse_options({}, file="j", where="w")).run(ctx(g, tmp_path))
    assert case.status is Status.SKIPPED and "lacks rxe" in case.message
    assert "Module rdma_rxe not found" in case.message


def test_no_pmem_skips_only_the_dax_target(tmp_path):
    g = guest()
    g.answer(r"ls /sys/bus/nd/devices", stdout="")
    g.answer(r"test -d /sys/bus/nd", rc=1)
    cases = Rdma(Rdma.parse_options({}, file="j", where="w")).run(ctx(g, tmp_path))
    assert [(c.name, c.status) for c in cases] == [("rdma.ext4", Status.PASSED),
                                                   ("rdma.dax-ext4", Status.SKIPPED)]
    assert "NVDIMM" in cases[1].message
