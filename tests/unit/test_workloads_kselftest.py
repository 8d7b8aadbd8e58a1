"""The kselftest workload: KTAP -> testcases, the program's own case, the
options in a job file, the distro-kernel skip, and a run in a FakeGuest."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.errors import UserError
from lab.guest.fake import FakeGuest
from lab.job import load_job
from lab.kernel import selftest
from lab.kernel.artifact import KernelArtifact
from lab.results import Status
from lab.workloads.base import WorkloadContext
from lab.workloads.kselftest import Kselftest, judge_program

from .kerneltree import git as sh

DATA = Path(__file__).parent / "data" / "ktap"
BASE = "kselftest.vm.madv_populate"


def statuses(cases):
    return [(c.name, c.status) for c in cases]


def test_every_subtest_is_a_case():
    out = (DATA / "madv_populate-host.txt").read_text()
    run, *subs = judge_program(BASE, 0, out, "", 0.4, {"command": "./madv_populate"})
    assert (run.name, run.status, run.message) == (BASE, Status.PASSED, "")
    assert run.properties["ktap_counts"] == "pass:16" and run.properties["ktap_plan"] == "16"
    assert len(subs) == 16 and all(c.status is Status.PASSED for c in subs)
    assert subs[0].name == f"{BASE}.MADV_POPULATE_READ with PROT_READ"
    assert subs[0].output == "[RUN] test_prot_read"
    assert [c.name for c in subs[12:]] == [f"{BASE}.range is populated",
                                           f"{BASE}.range initially not populated (2)",
                                           f"{BASE}.MADV_POPULATE_WRITE",
                                           f"{BASE}.range is populated (2)"]


FAILING = """TAP version 13
1..5
# [RUN] test_populate_read
ok 1 range initially not populated
ok 2 MADV_POPULATE_READ
# pagemap: 0x0 at page 3
not ok 3 range is populated
ok 4 # SKIP Test test_hugepage huge page allocation
ok 5 # XFAIL MADV_POPULATE_WRITE on a shared zero page
Bail out! 1 out of 5 tests failed
# Totals: pass:2 fail:1 xfail:1 xpass:0 skip:1 error:0
"""


def test_statuses_of_subtests():
    run, *subs = judge_program(BASE, 1, FAILING, "", 0.4, {})
    assert statuses(subs) == [
        (f"{BASE}.range initially not populated", Status.PASSED),
        (f"{BASE}.MADV_POPULATE_READ", Status.PASSED),
        (f"{BASE}.range is populated", Status.FAILED),
        (f"{BASE}.Test test_hugepage huge page allocation", Status.SKIPPED),
        (f"{BASE}.MADV_POPULATE_WRITE on a shared zero page", Status.SKIPPED)]
    failed = subs[2]
    assert failed.message == "fail: pagemap: 0x0 at page 3"
    assert failed.details == "pagemap: 0x0 at page 3"
    assert subs[4].message.startswith("xfail (expected failure)")
    # exit 1 is explained by the failed subtest: the run itself passes, saying so
    assert (run.status, run.message) == (Status.PASSED, "1 of 5 subtests failed")


def test_the_run_fails_when_its_exit_status_is_unexplained():
    ok = (DATA / "madv_populate-host.txt").read_text()
    run, *_ = judge_program(BASE, 139, ok, "", 0.4, {})
    assert run.status is Status.FAILED
    assert run.message.startswith("exit 139 with no failed subtest")
    [run] = judge_program(BASE, 2, "", "./x: not found\n", 0.0, {})
    assert (run.status, run.message) == (Status.FAILED, "exit 2: ./x: not found")
    [run] = judge_program(BASE, 0, "no ktap here\n", "", 0.0, {})
    assert run.status is Status.PASSED


def test_a_program_that_skips_everything_is_one_skipped_case():
    [run] = judge_program("kselftest.vm.soft-dirty", 4,
                          "TAP version 13\n1..0 # SKIP soft-dirty is not support\n", "", 0, {})
    assert (run.status, run.message) == (Status.SKIPPED, "skipped: soft-dirty is not support")


def test_missing_results_are_failed_cases():
    cut = "TAP version 13\n1..3\nok 1 a\n"
    run, *subs = judge_program(BASE, 137, cut, "", 1.0, {})
    assert statuses(subs) == [(f"{BASE}.a", Status.PASSED), (f"{BASE}.test 2", Status.FAILED),
                              (f"{BASE}.test 3", Status.FAILED)]
    assert subs[1].message == "missing: no result line (plan 1..3)"
    # killed (exit 137): not what a failed subtest exits with, so the run fails too
    assert (run.status, run.message) == (Status.FAILED, "exit 137: ok 1 a")
    run, *_ = judge_program(BASE, 1, cut, "", 1.0, {})
    assert (run.status, run.message) == (Status.PASSED, "2 of 3 subtests failed")


def test_runner_output_names_subtests_by_their_program():
    text = (DATA / "runner-host.txt").read_text()
    run, *subs = judge_program("kselftest.vm", 1, text, "", 1.0, {})
    names = [c.name for c in subs]
    assert names[0] == "kselftest.vm.selftests: vm: soft-dirty"
    assert subs[0].message == "skipped: soft-dirty is not support"
    assert "kselftest.vm.selftests: vm: madv_populate.MADV_POPULATE_READ" in names
    assert "kselftest.vm.selftests: vm: madv_populate" not in names   # passed: its subtests say it
    assert subs[-1].status is Status.FAILED and subs[-1].name.endswith("nonexistent")


# --- options ---------------------------------------------------------------

def job(tmp_path, entry) -> Path:
    import yaml
    p = tmp_path / "job.yaml"
    p.write_text(yaml.safe_dump({"name": "k", "kernel": "distro", "image": "debian-bookworm",
                                 "workloads": [entry]}))
    return p


def test_options_in_a_job_file(tmp_path):
    j = load_job(job(tmp_path, {"kselftest": {"target": "vm", "test": "mlock2-tests"}}))
    assert j.workloads[0].options == {"target": "vm", "test": "mlock2-tests", "binary": ""}
    assert load_job(job(tmp_path, {"kselftest": None})).workloads[0].options["test"] == \
        "madv_populate"
    for bad, field in (({"target": "../etc"}, "target"), ({"test": "a b"}, "test"),
                       ({"test": 3}, "test"), ({"tests": "x"}, "tests")):
        with pytest.raises(UserError) as e:
            load_job(job(tmp_path, {"kselftest": bad}))
        assert e.value.file.endswith("job.yaml")
        assert e.value.field == f"workloads[0].kselftest.{field}", str(e.value)


# --- a run in a guest ----------------------------------------------------------

def ctx(g, tmp_path, kernel=None):
    return WorkloadContext(guest=g, outdir=tmp_path / "out", timeout=300, kernel=kernel,
                           log=lambda s: None)


def distro():
    return KernelArtifact(image=Path("/boot/vmlinuz"), release="6.1.0-57-amd64",
                          modules_dir=None, origin="distro")


def test_a_distro_kernel_is_one_skipped_case(tmp_path):
    wl = Kselftest(Kselftest.parse_options({}, file="j", where="w"))
    [c] = wl.run(ctx(FakeGuest(), tmp_path, distro()))
    assert c.status is Status.SKIPPED and "needs a kernel built by lab" in c.message


def test_runs_the_built_program_in_its_directory(tmp_path, monkeypatch):
    binary = tmp_path / "madv_populate"
    binary.write_bytes(b"\x7fELF")
    src = selftest.SelftestSource(tmp_path, "c0ffee" * 6 + "1234", "linux-x")
    monkeypatch.setattr(selftest, "source_of", lambda k: src)
    monkeypatch.setattr(selftest, "build_selftest",
                        lambda s, t, n: selftest.SelftestBuild(binary))
    g = FakeGuest()
    g.answer(r"cd /tmp/lab-wl/kselftest/vm && ./madv_populate",
             stdout=(DATA / "madv_populate-host.txt").read_text())
    wl = Kselftest(Kselftest.parse_options({}, file="j", where="w"))
    cases = wl.run(ctx(g, tmp_path, distro()))
    assert len(cases) == 17 and all(c.status is Status.PASSED for c in cases)
    [(tmp, data)] = g.files.items()            # uploaded under a new name, renamed over
    assert tmp.startswith("/tmp/lab-wl/kselftest/vm/.madv_populate.") and data == b"\x7fELF"
    assert f"mv -f {tmp} /tmp/lab-wl/kselftest/vm/madv_populate" in g.commands
    assert (tmp_path / "out" / f"{BASE}.out").read_text().startswith("TAP version 13")


def test_a_build_failure_is_an_error_case(tmp_path, monkeypatch):
    monkeypatch.setattr(selftest, "source_of", lambda k: selftest.SelftestSource(
        tmp_path, "0" * 40, "linux-x"))
    monkeypatch.setattr(selftest, "build_selftest", lambda s, t, n: selftest.SelftestBuild(
        None, "building vm/nosuch from linux-x at 000000000000 failed (exit 2)",
        "make: *** No rule to make target"))
    wl = Kselftest(Kselftest.parse_options({"test": "nosuch"}, file="j", where="w"))
    [c] = wl.run(ctx(FakeGuest(), tmp_path, distro()))
    assert (c.name, c.status) == ("kselftest.vm.nosuch", Status.ERROR)
    assert "No rule to make target" in c.details


def test_source_of_a_kernel(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / "cache"))
    assert "needs a kernel built by lab" in selftest.source_of(distro())
    d = tmp_path / "art"
    d.mkdir()
    (d / "metadata.json").write_text('{"release": "6.1"}')
    k = KernelArtifact(image=d / "bzImage", release="6.1", modules_dir=None, origin=str(d))
    assert "names no source tree" in selftest.source_of(k)
    (d / "metadata.json").write_text('{"source": {"tree_id": "linux-x"}, "tree_commit": "ab"}')
    assert "repository of linux-x is gone" in selftest.source_of(k)


def test_commits_that_change_only_kernel_code_share_a_build(tree):
    """The `tree` fixture: a git repository of the fake kernel tree."""
    def at(rev):
        src = selftest.SelftestSource(tree, sh(tree, "rev-parse", rev).strip(), "fake")
        return selftest.build_keys(src, "vm", "gup_test", "gcc 12")
    base = at("HEAD")
    (tree / "mm" / "gup.c").write_text("/* a patch to gup */\n")
    sh(tree, "commit", "-qam", "mm/gup: a patch")
    assert at("HEAD") == base
    (tree / "tools/testing/selftests/vm/gup_test.c").write_text("int main(void){return 4;}\n")
    sh(tree, "commit", "-qam", "selftests: a patch")
    changed = at("HEAD")
    assert changed[0] != base[0] and changed[1] == base[1]   # headers unchanged
    src = selftest.SelftestSource(tree, sh(tree, "rev-parse", "HEAD").strip(), "fake")
    assert selftest.build_selftest(src, "nope", "x").error == \
        f"fake at {src.commit[:12]} has no tools/testing/selftests/nope"
