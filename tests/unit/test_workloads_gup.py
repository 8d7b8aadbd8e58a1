"""gup_test: command lines per variant and backing, verdicts from exit status
and output, and the skips (no CONFIG_GUP_TEST, no binary)."""


from lab.guest.fake import FakeGuest
from lab.kernel.artifact import KernelArtifact
from lab.results import Status
from lab.workloads.base import WorkloadContext
from lab.workloads.gup_test import GupTest, gup_argv, judge


def test_argv_per_variant_and_backing():
    assert gup_argv("/g", "pin-longterm", "anon", size_mb=32, repeats=2, threads=1) == [
        "/g", "-L", "-m", "32", "-r", "2", "-j", "1"]
    assert gup_argv("/g", "gup-fast", "shmem", size_mb=8, repeats=1, threads=2)[-1] == "-S"
    dump = gup_argv("/g", "dump-pages-pin", "ext4", size_mb=32, repeats=1, threads=1,
                    file="/mnt/f")
    assert dump == ["/g", "-c", "-p", "-t", "-F", "0x1", "-m", "32", "-r", "1", "-j", "1",
                    "-S", "-f", "/mnt/f", "0", "19", "0x1000"]


def test_judge():
    out = ("PIN_FAST_BENCHMARK: Time: get:1520 put:80 us\n"
           "PIN_FAST_BENCHMARK: Time: get:1490 put:85 us\n")
    c = judge("gup_test.pin-fast.anon", 0, out, "", 1.0, {})
    assert c.status is Status.PASSED
    assert (c.properties["get_us"], c.properties["put_us"], c.properties["runs"]) == \
        ("1490", "80", "2")
    c = judge("x", 4, "check if CONFIG_GUP_TEST is enabled in kernel config\n", "", 0.1, {})
    assert c.status is Status.SKIPPED and "CONFIG_GUP_TEST" in c.message
    c = judge("x", 1, "", "ioctl: Operation not supported\n", 0.1, {})
    assert c.status is Status.FAILED and "ioctl: Operation not supported" in c.message


def ctx(g, tmp_path, kernel=None):
    return WorkloadContext(guest=g, outdir=tmp_path / "out", timeout=300, kernel=kernel)


def test_skipped_without_config_gup_test(tmp_path):
    g = FakeGuest()
    g.answer(r"test -e /sys/kernel/debug/gup_test", rc=1)
    [c] = GupTest(GupTest.parse_options({}, file="j", where="w")).run(ctx(g, tmp_path))
    assert c.status is Status.SKIPPED and "CONFIG_GUP_TEST" in c.message


def artifact(tmp_path, with_binary=True):
    d = tmp_path / "art"
    d.mkdir()
    (d / "bzImage").write_bytes(b"k")
    if with_binary:
        (d / "gup_test").write_bytes(b"\x7fELF")
    return KernelArtifact(image=d / "bzImage", release="6.1.0-lab", modules_dir=None,
                          origin=str(d))


def test_skipped_without_a_binary(tmp_path):
    g = FakeGuest()
    [c] = GupTest(GupTest.parse_options({}, file="j", where="w")).run(ctx(g, tmp_path))
    assert c.status is Status.SKIPPED and "no gup_test binary" in c.message
    [c] = GupTest(GupTest.parse_options({}, file="j", where="w")).run(
        ctx(g, tmp_path, artifact(tmp_path, with_binary=False)))
    assert c.status is Status.SKIPPED and str(tmp_path / "art" / "gup_test") in c.message


def test_runs_every_variant_on_every_backing(tmp_path):
    g = FakeGuest()
    g.answer(r"/tmp/lab-wl/gup_test -u", stdout="GUP_FAST_BENCHMARK: Time: get:9 put:1 us\n")
    g.answer(r"/tmp/lab-wl/gup_test -L .* -f ", rc=1, stderr="ioctl: Operation not supported\n")
    wl = GupTest(GupTest.parse_options({"variants": ["gup-fast", "pin-longterm"]}, file="j",
                                       where="w"))
    cases = wl.run(ctx(g, tmp_path, artifact(tmp_path)))
    assert [(c.name, c.status) for c in cases] == [
        ("gup_test.gup-fast.anon", Status.PASSED), ("gup_test.pin-longterm.anon", Status.PASSED),
        ("gup_test.gup-fast.ext4", Status.PASSED), ("gup_test.pin-longterm.ext4", Status.FAILED)]
    assert g.files["/tmp/lab-wl/gup_test"] == b"\x7fELF"
    assert any("truncate -s 32M /mnt/lab-gup/gup.dat" in c for c in g.commands)
    assert (tmp_path / "out" / "gup_test.gup-fast.anon.out").read_text().startswith("GUP_FAST")


# gup_test of selftests/mm in later kernels (kselftest.h): a plan of one result
# per thread, the timings as diagnostics
KTAP_2_THREADS = """TAP version 13
1..2
# PIN_FAST_BENCHMARK: Time: get:1520 put:80 us
ok 1 ioctl status 0
# PIN_FAST_BENCHMARK: Time: get:1490 put:85 us
ok 2 ioctl status 0
# Totals: pass:2 fail:0 xfail:0 xpass:0 skip:0 error:0
"""


def test_ktap_output_makes_a_case_per_thread():
    from lab.workloads.gup_test import judge_all
    cases = judge_all("gup_test.pin-fast.anon", 0, KTAP_2_THREADS, "", 1.0, {})
    assert [(c.name, c.status) for c in cases] == [
        ("gup_test.pin-fast.anon", Status.PASSED),
        ("gup_test.pin-fast.anon.thread-1", Status.PASSED),
        ("gup_test.pin-fast.anon.thread-2", Status.PASSED)]
    assert (cases[0].properties["get_us"], cases[0].properties["runs"]) == ("1490", "2")
    assert cases[1].properties["ktap_description"] == "ioctl status 0"
    failed = KTAP_2_THREADS.replace("ok 2 ioctl status 0", "not ok 2 ioctl status -14")
    run, one, two = judge_all("g", 1, failed, "", 1.0, {})
    assert (run.status, one.status, two.status) == (Status.PASSED, Status.PASSED,
                                                    Status.FAILED)
    assert two.message == "fail: PIN_FAST_BENCHMARK: Time: get:1490 put:85 us"
    assert run.message == "1 of 2 subtests failed"
    # no debugfs file: a skipped result, then ksft_exit_pass
    skip = ("TAP version 13\n1..1\n# check if CONFIG_GUP_TEST is enabled in kernel config\n"
            "ok 1 # SKIP Please run this test as root\n")
    run, sub = judge_all("g", 0, skip, "", 0.1, {})
    assert sub.status is Status.SKIPPED and "run this test as root" in sub.message
    # ksft_exit_fail_msg after the plan: the thread's result is missing, and says why
    run, sub = judge_all("g", 1, "TAP version 13\n1..1\nBail out! mmap: Cannot allocate "
                         "memory\n", "", 0.1, {})
    assert sub.status is Status.FAILED
    assert sub.message == "missing: bailed out: mmap: Cannot allocate memory"
    # ... before the plan (getopt's "Wrong argument"): the run fails, naming it
    [run] = judge_all("g", 1, "TAP version 13\nBail out! Wrong argument\n", "", 0.1, {})
    assert (run.status, run.message) == (Status.FAILED, "Bail out! Wrong argument")


def test_6_1_output_keeps_one_case():
    from lab.workloads.gup_test import judge_all
    [c] = judge_all("gup_test.pin-fast.anon", 0,
                    "PIN_FAST_BENCHMARK: Time: get:1520 put:80 us\n", "", 1.0, {})
    assert c.status is Status.PASSED and c.properties["get_us"] == "1520"


def test_a_ktap_gup_test_in_the_guest(tmp_path):
    g = FakeGuest()
    g.answer(r"/tmp/lab-wl/gup_test -a", stdout=KTAP_2_THREADS)
    wl = GupTest(GupTest.parse_options({"variants": ["pin-fast"], "backings": ["anon"],
                                        "threads": 2}, file="j", where="w"))
    cases = wl.run(ctx(g, tmp_path, artifact(tmp_path)))
    assert [c.name for c in cases] == ["gup_test.pin-fast.anon", "gup_test.pin-fast.anon.thread-1",
                                       "gup_test.pin-fast.anon.thread-2"]
