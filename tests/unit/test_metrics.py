"""A cell's latencies and bandwidth/IOPS against its baseline cell's: the
median over repeats, the noise measured under TCG never reported, a real
regression reported, nothing without a baseline."""

from lab.metrics import DEFAULT, compare, figures, regressions
from lab.results import CaseResult, Status, SuiteResult

MR = "/mnt/lab-rdma/mr.dat"


def rdma(fsync_ms, bw="20.00", status=Status.PASSED):
    return CaseResult("rdma.ext4", status, classname="rdma", properties={
        "file": MR, "max_fsync_ms": str(fsync_ms), "bw_avg_mbs": bw, "fsyncs": "40"})


def fio(iops, clat_ms="20.0"):
    return CaseResult("fio.nvme.libaio", Status.PASSED, classname="fio", properties={
        "file": "/dev/nvme0n1", "write_iops": str(iops), "write_bw_kib": str(iops * 4),
        "max_write_clat_ms": clat_ms, "verified_bytes": "33554432"})


def repeats(*cases_per_repeat):
    return [SuiteResult(f"c#{i}", {}, list(cs)).to_dict()
            for i, cs in enumerate(cases_per_repeat, 1)]


def got(series, base, stalls=()):
    return {(c.case, c.prop): c for c in compare(series, base, stalls)}


def test_figures_are_medians_over_the_repeats_in_which_the_case_passed():
    series = repeats([rdma(40)], [rdma(900)], [rdma(1000)], [rdma(5, status=Status.FAILED)])
    base = repeats([rdma(30)], [rdma(50)])
    c = got(series, base)[("rdma.ext4", "max_fsync_ms")]
    assert (c.value, c.baseline, c.samples, c.baseline_samples) == (900, 40, 3, 2)
    assert c.regressed and c.kind == "stall" and c.what == f"fsync of {MR}"
    assert c.message("base.d.a") == (
        f"max_fsync_ms of rdma.ext4 (fsync of {MR}): 900 ms over 3 repeats vs 40 ms on "
        "baseline base.d.a (22.50x; a regression when above 3x and 500 ms)")


def test_one_slow_repeat_is_not_a_regression_of_the_median():
    series = repeats([rdma(40)], [rdma(45)], [rdma(1500)])
    assert not got(series, repeats([rdma(40)]))[("rdma.ext4", "max_fsync_ms")].regressed


def test_the_noise_measured_under_tcg_is_not_a_regression():
    """One healthy 6.1 kernel, run against itself on the shared 2-core
    host: fio IOPS 2100 vs 7400, rdma 14 vs 30 MB/s, the MR file's worst
    fsync 69 vs 22 ms, fio's worst completion 39 vs 10 ms."""
    series = repeats([rdma(69, bw="14.00"), fio(2100, clat_ms="39.0")])
    base = repeats([rdma(22, bw="30.00"), fio(7400, clat_ms="10.0")])
    comparisons = compare(series, base)
    assert len(comparisons) == 5 and regressions(comparisons) == ()


def test_a_real_regression_is_reported_with_its_kind():
    series = repeats([rdma(812, bw="2.00"), fio(1000)], [rdma(790, bw="2.50"), fio(1200)])
    base = repeats([rdma(40), fio(7400)], [rdma(60), fio(6000)])
    bad = {(c.case, c.prop): c.kind for c in regressions(compare(series, base))}
    assert bad == {("rdma.ext4", "max_fsync_ms"): "stall",
                   ("rdma.ext4", "bw_avg_mbs"): "perf-regression",
                   ("fio.nvme.libaio", "write_iops"): "perf-regression",
                   ("fio.nvme.libaio", "write_bw_kib"): "perf-regression"}
    perf = got(series, base)[("fio.nvme.libaio", "write_iops")]
    assert perf.name == "fio.nvme.libaio.write_iops-regression"
    assert perf.threshold == f"below {DEFAULT.throughput_ratio:g}x"


def test_a_latency_under_the_floor_is_not_a_regression_however_large_the_ratio():
    c = got(repeats([rdma(450)]), repeats([rdma(5)]))[("rdma.ext4", "max_fsync_ms")]
    assert c.ratio == 90 and not c.regressed


def test_no_baseline_figures_no_comparison():
    series = repeats([rdma(900), fio(100)])
    assert compare(series, []) == ()
    assert compare(series, repeats([CaseResult("rdma.xfs", Status.PASSED, classname="rdma",
                                               properties={"max_fsync_ms": "1"})])) == ()
    # the baseline's case failed: its figures say how it failed, not how fast it is
    assert compare(series, repeats([rdma(1, status=Status.FAILED)])) == ()
    # a figure that is not a number on either side is not compared
    unreported = got(repeats([rdma("None")]), repeats([rdma(40)]))
    assert ("rdma.ext4", "max_fsync_ms") not in unreported
    assert ("rdma.ext4", "bw_avg_mbs") in unreported


def test_a_latency_already_reported_as_a_stall_is_not_a_regression_too():
    series, base = repeats([rdma(1900)]), repeats([rdma(40)])
    assert got(series, base)[("rdma.ext4", "max_fsync_ms")].regressed
    stalled = got(series, base, stalls={"rdma/rdma.ext4.fsync-latency"})
    assert not stalled[("rdma.ext4", "max_fsync_ms")].regressed


def test_cases_the_report_added_are_not_figures():
    added = CaseResult("rdma.ext4.max_fsync_ms-regression", Status.PASSED, classname="rdma",
                       properties={"origin": "baseline-comparison", "max_fsync_ms": "1"})
    assert figures(repeats([added])) == {}


def test_the_thresholds_are_strict():
    """Exactly 3x (and over 500 ms), exactly 500 ms, exactly 0.2x: not yet
    regressions; just past them: regressions."""
    def regressed(series, base):
        return {(c.case, c.prop): c.regressed for c in compare(series, base)}
    at = regressed(repeats([rdma(1500, bw="4.00")]), repeats([rdma(500, bw="20.00")]))
    assert at == {("rdma.ext4", "max_fsync_ms"): False, ("rdma.ext4", "bw_avg_mbs"): False}
    past = regressed(repeats([rdma(1501, bw="3.99")]), repeats([rdma(500, bw="20.00")]))
    assert past == {("rdma.ext4", "max_fsync_ms"): True, ("rdma.ext4", "bw_avg_mbs"): True}
    floor = regressed(repeats([rdma(500)]), repeats([rdma(100)]))
    assert floor[("rdma.ext4", "max_fsync_ms")] is False
    assert regressed(repeats([rdma(501)]), repeats([rdma(100)]))[("rdma.ext4", "max_fsync_ms")]
    # a baseline that moved nothing (0): no ratio, no regression; and a
    # small one is still compared (0.5 MB/s -> 0.05 MB/s)
    assert regressed(repeats([rdma(10, bw="0")]), repeats([rdma(10, bw="0")]))[
        ("rdma.ext4", "bw_avg_mbs")] is False
    assert regressed(repeats([rdma(10, bw="0.05")]), repeats([rdma(10, bw="0.5")]))[
        ("rdma.ext4", "bw_avg_mbs")] is True


def test_a_regression_case_carries_every_figure():
    from lab.metrics import ORIGIN, case_properties
    [c] = [c for c in compare(repeats([rdma(900)], [rdma(1000)]), repeats([rdma(40)]))
           if c.prop == "max_fsync_ms"]
    assert (c.classname, c.unit) == ("rdma", "ms")
    assert case_properties(c, "base.d.a") == {
        "origin": ORIGIN, "property": "max_fsync_ms", "measured_in": "rdma.ext4",
        "value": "950.000", "baseline_value": "40.000", "unit": "ms", "samples": "2",
        "baseline_samples": "1", "threshold": c.threshold, "compared_with": "base.d.a"}
    [bw] = [c for c in compare(repeats([rdma(9, bw="1.5")]), repeats([rdma(9, bw="20")]))
            if c.prop == "bw_avg_mbs"]
    assert bw.unit == "MB/s" and bw.what == "" and bw.message("b") == (
        "bw_avg_mbs of rdma.ext4: 1.5 MB/s vs 20 MB/s on baseline b (0.07x; a regression "
        "when below 0.2x)")
    big = [c for c in compare(repeats([fio(100)]), repeats([fio(7400)]))
           if c.prop == "write_iops"][0]
    assert "100 IOPS" in big.message("b") and "7400 IOPS" in big.message("b")


def test_figures_of_a_damaged_summary_are_skipped_not_a_crash():
    """summary.json of a crashed or hand-edited run: suites that are not
    objects, cases without a list, properties that are not a mapping, cases
    without classname or name, and the report's own regression cases."""
    good = repeats([rdma(40)])[0]
    junk = [None, "x", {"cases": "nope"}, {"cases": [None, 3, {"status": "passed",
                                                              "properties": "bad"}]},
            {"cases": [{"status": "passed", "properties": {"max_fsync_ms": "7"}},
                       {"name": "r", "classname": "rdma", "status": "failed",
                        "properties": {"original_status": "passed", "max_fsync_ms": "8"}},
                       {"name": "x", "classname": "rdma", "status": "failed",
                        "properties": {"origin": "baseline-comparison", "max_fsync_ms": "9"}}]}]
    f = figures([good, *junk])
    assert f == {("rdma", "rdma.ext4"): {"max_fsync_ms": [40.0], "bw_avg_mbs": [20.0]},
                 ("", ""): {"max_fsync_ms": [7.0]},
                 ("rdma", "r"): {"max_fsync_ms": [8.0]}}


def test_a_comparison_as_the_report_json_gives_it():
    [c] = [c for c in compare(repeats([rdma(900)], [rdma(1000)]), repeats([rdma(40)]))
           if c.prop == "max_fsync_ms"]
    assert c.to_dict() == {
        "case": "rdma.ext4", "classname": "rdma", "property": "max_fsync_ms", "unit": "ms",
        "latency": True, "value": 950.0, "baseline": 40.0, "ratio": 23.75, "samples": 2,
        "baseline_samples": 1, "regressed": True, "threshold": c.threshold,
        "what": f"fsync of {MR}", "kind": "stall", "name": "rdma.ext4.max_fsync_ms-regression"}
    [z] = [c for c in compare(repeats([rdma(9, bw="1.23456")]), repeats([rdma(9, bw="0")]))
           if c.prop == "bw_avg_mbs"]
    assert z.to_dict()["ratio"] is None and z.to_dict()["value"] == 1.235
    assert "(n/a;" in z.message("b")


def test_every_case_and_figure_is_compared_whatever_comes_first():
    """A case or a figure the baseline lacks, a failed case, a figure that
    is not a number: each is passed over, never the end of the comparison."""
    series = repeats([fio(100), CaseResult("x", Status.FAILED, classname="fio",
                                          properties={"write_iops": "5"}),
                      rdma(40, bw="nan")])
    base = repeats([rdma(40, bw="20")])
    series[0]["cases"].insert(0, {"name": "gone", "classname": "fio", "status": "passed",
                                  "properties": {"write_iops": "9"}})
    got_ = {(c.case, c.prop) for c in compare(series, base + [None, "junk"])}
    assert got_ == {("rdma.ext4", "max_fsync_ms")}
    only_second = repeats([rdma(40, bw="20")])
    only_second[0]["cases"][0]["properties"] = {"bw_avg_mbs": "20", "max_fsync_ms": "40"}
    base2 = repeats([rdma(40)])
    base2[0]["cases"][0]["properties"] = {"max_fsync_ms": "40"}
    assert [c.prop for c in compare(only_second, base2)] == ["max_fsync_ms"]
