"""What follows every workload (findings, pin balance) and what the
workloads share: the command log, background processes, the shell workload,
the registry's bad-input messages and the statically built helper."""

import json
import subprocess

import pytest

from lab import checks
from lab.errors import UserError
from lab.guest.fake import FakeGuest
from lab.proc import Result
from lab.results import Status
from lab.workloads import lookup
from lab.workloads.base import WorkloadContext
from lab.workloads.common import (GuestProc, LoggedGuest, fetch, has_dax_always,
                                  parse_json_tail)
from lab.workloads.helpers import build_helper, helper_key

from .conftest import need

WARNING = """\
[   50.000001] ------------[ cut here ]------------
[   50.000002] WARNING: CPU: 1 PID: 300 at mm/gup.c:123 unpin_user_pages+0x10/0x20
[   50.000003] Modules linked in: rdma_rxe
[   50.000004] CPU: 1 PID: 300 Comm: ib_write_bw Not tainted 6.1.0 #1
[   50.000005] RIP: 0010:unpin_user_pages+0x10/0x20
[   50.000006] Call Trace:
[   50.000007]  <TASK>
[   50.000008]  rxe_mr_cleanup+0x20/0x40 [rdma_rxe]
[   50.000009]  ib_dereg_mr_user+0x30/0x60
[   50.000010]  </TASK>
[   50.000011] ---[ end trace 0000000000000000 ]---
"""


def vmstat(*pairs):
    out = iter(pairs)

    def answer(cmd):
        a, r = next(out, pairs[-1])
        return Result(("sh",), 0, f"nr_foll_pin_acquired {a}\nnr_foll_pin_released {r}\n", "", 0)
    g = FakeGuest([("nr_foll_pin", answer)])
    return g


def test_pins_settle_then_balance():
    g = vmstat((64, 42), (64, 42), (64, 64))
    c = checks.pin_case(g, checks.PinCounters(0, 0), "rdma", interval=0.01)
    assert c.status is Status.PASSED and c.properties["pins_acquired"] == "64"
    assert c.properties["readings"] == "3"


def test_a_stable_imbalance_is_a_leak_with_the_numbers():
    g = vmstat((164, 40), (164, 42))
    c = checks.pin_case(g, checks.PinCounters(100, 10), "rdma", interval=0.01, stable_for=0.05)
    assert c.status is Status.FAILED and c.kind == "pin-leak"
    assert c.message.startswith("pin leak: 64 pins acquired, 32 released (32 not released)")
    assert "nr_foll_pin_acquired 164 nr_foll_pin_released 42" in c.details


def test_pins_unreadable_and_absent():
    g = FakeGuest()
    assert checks.pin_case(g, None, "x").status is Status.SKIPPED
    c = checks.pin_case(g, checks.PinCounters(1, 1), "x", timeout=0.05, interval=0.01)
    assert c.status is Status.ERROR


def test_each_distinct_finding_is_a_failed_case_named_by_its_title():
    seen = set()
    [c] = checks.findings_cases(WARNING + WARNING, "rdma", seen)
    assert c.status is Status.FAILED and c.name == "WARNING in unpin_user_pages"
    assert "rxe_mr_cleanup" in c.details and c.classname == "rdma"
    assert checks.findings_cases(WARNING, "dax", seen) == []   # already reported


def test_logged_guest_keeps_every_command(tmp_path):
    g = FakeGuest()
    g.answer("echo hi", stdout="hi\n")
    g.answer("false", rc=1, stderr="nope\n")
    lg = LoggedGuest(g, tmp_path)
    lg.run("echo hi", timeout=5)
    lg.run("false", timeout=5)
    log = (tmp_path / "commands.log").read_text()
    assert "$ echo hi\n[exit 0, 0.0s]\nhi" in log
    assert "$ false\n[exit 1, 0.0s]\n--- stderr ---\nnope" in log


def test_guest_proc_commands(tmp_path):
    g = FakeGuest()
    g.answer("setsid", stdout="4242\n")
    g.answer(r"cat /w/srv.rc", stdout="0\n")
    p = GuestProc(LoggedGuest(g, tmp_path), "srv", "ib_write_bw -d rxe0", "/w").start()
    assert p.pid == 4242
    assert "setsid sh -c 'ib_write_bw -d rxe0; echo $? > /w/srv.rc.tmp; mv /w/srv.rc.tmp " \
           "/w/srv.rc' > /w/srv.out 2> /w/srv.err < /dev/null & echo $!" in g.commands[-1]
    assert p.returncode() == 0
    p.stop()
    assert "kill -KILL -- -4242" in g.commands[-1] and "pgrep -g 4242" in g.commands[-1]


def test_fetch_and_json_tail(tmp_path):
    g = FakeGuest()
    g.answer("printf", stdout="=== a.out\nline1\nline2\n=== a.rc\n0\n")
    fetch(LoggedGuest(g, tmp_path), "/w", tmp_path / "x")
    assert (tmp_path / "x" / "a.out").read_text() == "line1\nline2\n"
    assert (tmp_path / "x" / "a.rc").read_text() == "0\n"
    assert parse_json_tail('noise\n{"a": 1}\n{broken\n') == {"a": 1}
    assert parse_json_tail("") is None
    assert has_dax_always("rw,relatime,dax=always") and not has_dax_always("rw,relatime")


def test_shell_workload(tmp_path):
    cls = lookup("shell")
    with pytest.raises(UserError, match="needs a command"):
        cls.parse_options({}, file="j.yaml", where="workloads[0].options")
    g = FakeGuest()
    g.answer("exit 3", rc=3, stdout="out\n")
    ctx = WorkloadContext(guest=g, outdir=tmp_path, timeout=5)
    [c] = cls(cls.parse_options({"command": "exit 3", "expect_exit": 3, "case": "three"},
                                file="j", where="w")).run(ctx)
    assert c.name == "three" and c.status is Status.PASSED
    [c] = cls(cls.parse_options({"command": "exit 3"}, file="j", where="w")).run(ctx)
    assert c.status is Status.FAILED and c.message == "exit status 3, expected 0"


def test_unknown_workload_lists_the_valid_ones():
    with pytest.raises(UserError) as ei:
        lookup("rmda", file="j.yaml", field="workloads[1].name")
    assert ei.value.exit_code == 3
    assert "valid: dax, fio, gup_test, kselftest, pinhold, rdma, shell" in str(ei.value)


def test_helper_key_depends_on_source_compiler_and_flags():
    k = helper_key(b"int main(){}", "gcc 12")
    assert k == helper_key(b"int main(){}", "gcc 12")
    assert k != helper_key(b"int main(){return 1;}", "gcc 12")
    assert k != helper_key(b"int main(){}", "gcc 13")
    assert k != helper_key(b"int main(){}", "gcc 12", ("-O0",))


def test_pinstress_builds_static_and_runs_on_the_host(tmp_path, monkeypatch):
    need("gcc", "build-essential")
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / "cache"))
    exe = build_helper("pinstress")
    assert exe == build_helper("pinstress")            # cached
    assert b"ld-linux" not in exe.read_bytes()[:4096]   # static: no interpreter
    f = tmp_path / "f"
    f.write_bytes(b"\0" * 65536)
    r = subprocess.run([exe, "fsync", "--file", f, "--seconds", "0.3", "--write"],
                       capture_output=True, text=True, timeout=60)
    res = json.loads(r.stdout)
    assert r.returncode == 0 and res["ok"] and res["fsyncs"] > 0
    assert res["file"] == str(f) and res["max_fsync_ms"] > 0
    r = subprocess.run([exe, "dax", "--bogus"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 64 and "unknown" in r.stderr


def test_a_lost_channel_on_a_dead_guest_is_unreachable(tmp_path):
    from lab.guest.base import GuestUnreachable
    g = FakeGuest()

    def crash(cmd):
        g.up = False
        return Result(("sh",), -1, "", "", 0.1)
    g.answers.append((__import__("re").compile("sysrq-trigger"), crash))
    with pytest.raises(GuestUnreachable, match="no exit status"):
        LoggedGuest(g, tmp_path).run("echo c > /proc/sysrq-trigger", timeout=5)


def test_pinstress_times_every_io_of_its_pinners(tmp_path, monkeypatch):
    """dax mode on the host (a regular file as the device, no DAX): the
    worst O_DIRECT read and io_uring IO are reported beside the worst
    truncate and punch, with the file."""
    need("gcc", "build-essential")
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / "cache"))
    exe = build_helper("pinstress")
    dev = tmp_path / "dev.img"
    dev.write_bytes(b"\0" * (4 << 20))
    r = subprocess.run([exe, "dax", "--file", tmp_path / "pin.dat", "--dev", dev, "--size-mb",
                        "2", "--seconds", "0.5", "--uring"],
                       capture_output=True, text=True, timeout=120)
    res = json.loads(r.stdout.strip().splitlines()[-1])
    if "fatal" in res:
        # CI promises no filesystem with O_DIRECT under pytest's tmp_path (tmpfs has none)
        pytest.skip(f"tmp_path's filesystem cannot run it: {res['fatal']}")
    assert res["file"] == str(tmp_path / "pin.dat")
    assert res["direct"]["reads"] > 0 and res["direct"]["max_io_ms"] > 0
    if res["uring"]["reads"]:
        assert res["uring"]["max_io_ms"] > 0
    assert res["truncate"]["max_truncate_ms"] >= 0 and "max_punch_ms" in res["truncate"]
