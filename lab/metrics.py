"""A cell's figures against its baseline cell's (pure): the worst latencies
(lab/latency.py) and the bandwidth/IOPS of each case, as the median over
the repeats in which the case passed, compared with the same case of the
baseline cell; a change beyond a threshold is a regression, which
lab/report.py reports as a problem of the cell (a failed testcase of kind
`stall` for a latency, `perf-regression` for a throughput).

Like 0-day's performance regressions, but for the latencies pinned pages
cause: a series whose fsync now waits 800 ms where the baseline kernel's
waits 40 ms has not crossed the stall bound (2 s) yet it changed what
writeback does with pinned pages.

Thresholds (Thresholds; the README gives the same figures). They must not
be tripped by the noise of the project's machines: TCG, 2 cores shared by
parallel guests and builds. Measured there on one healthy 6.1 kernel,
between runs: fio IOPS 2100-7400 (the lowest 0.28 of the highest), rdma
bandwidth 14-30 MB/s (0.47), the worst fsync of the MR file 22-69 ms (3.1x),
fio's worst completion 10-39 ms and fsync 12-32 ms, truncate 14-16 ms. So:

- throughput: a regression when the cell's median is below 0.2x the
  baseline's (a fifth: under the 0.28 the noise reached, with a margin);
- latency: a regression when the cell's median is above 3x the baseline's
  AND above 500 ms. The ratio alone would be tripped by noise (69/22 is
  3.1x); the floor is 7x the worst healthy latency measured, and a quarter
  of the default stall bound, so the comparison covers 0.5-2 s, the band
  the absolute bound does not.

A figure is compared only from cases that passed on both sides: a failed
case's figures say how it failed, not how fast the kernel is. A latency
already over the stall bound is reported as that stall, not a second time
as a regression. dax's read_mb_s is not compared: its reads race the
truncator by design, and no noise figures were measured for it.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .latency import BY_PROP as LATENCY
from .latency import number, stall_case_name
from .results import CaseKind

PASSED = "passed"
ORIGIN = "baseline-comparison"      # the `origin` property of a case report.apply() adds

# throughput properties the workloads write -> unit
THROUGHPUT: dict[str, str] = {
    "write_iops": "IOPS", "write_bw_kib": "KiB/s",      # fio
    "read_iops": "IOPS", "read_bw_kib": "KiB/s",        # fio's verify phase
    "bw_avg_mbs": "MB/s",                              # rdma: ib_write_bw
}


@dataclass(frozen=True)
class Thresholds:
    throughput_ratio: float = 0.2     # regressed when below this x the baseline's median
    latency_ratio: float = 3.0        # regressed when above this x the baseline's median ...
    latency_floor_ms: float = 500.0   # ... and above this

    def describe(self, latency: bool) -> str:
        if latency:
            return f"above {self.latency_ratio:g}x and {self.latency_floor_ms:g} ms"
        return f"below {self.throughput_ratio:g}x"


DEFAULT = Thresholds()


@dataclass(frozen=True)
class Comparison:
    """One figure of one case: this cell's median against the baseline's."""

    case: str
    classname: str
    prop: str
    unit: str
    latency: bool              # higher is worse (else throughput: lower is worse)
    value: float               # median over this cell's passing repeats (ms for latencies)
    baseline: float            # the same over the baseline cell's
    samples: int               # repeats of this cell that gave the figure
    baseline_samples: int
    regressed: bool
    threshold: str             # in words
    what: str = ""             # a latency's operation and file, as lab/latency.py says it

    @property
    def ratio(self) -> float | None:
        return self.value / self.baseline if self.baseline > 0 else None

    @property
    def kind(self) -> str:
        return str(CaseKind.STALL if self.latency else CaseKind.PERF)

    @property
    def name(self) -> str:
        """The testcase a regression is reported as (stable across runs)."""
        return f"{self.case}.{self.prop}-regression"

    def message(self, baseline_cell: str) -> str:
        ratio = f"{self.ratio:.2f}x" if self.ratio is not None else "n/a"
        what = f" ({self.what})" if self.what else ""
        reps = f" over {self.samples} repeats" if self.samples > 1 else ""
        return (f"{self.prop} of {self.case}{what}: {_fmt(self.value)} {self.unit}{reps} vs "
                f"{_fmt(self.baseline)} {self.unit} on baseline {baseline_cell} ({ratio}; "
                f"a regression when {self.threshold})")

    def to_dict(self) -> dict:
        return {"case": self.case, "classname": self.classname, "property": self.prop,
                "unit": self.unit, "latency": self.latency, "value": round(self.value, 3),
                "baseline": round(self.baseline, 3),
                "ratio": None if self.ratio is None else round(self.ratio, 3),
                "samples": self.samples, "baseline_samples": self.baseline_samples,
                "regressed": self.regressed, "threshold": self.threshold, "what": self.what,
                "name": self.name, "kind": self.kind}


def _fmt(x: float) -> str:
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.3g}"


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def _status(case: dict) -> str:
    props = _dict(case.get("properties"))
    return str(props.get("original_status") or case.get("status", ""))


def figures(suites: Iterable[dict]) -> dict[tuple[str, str], dict[str, list[float]]]:
    """(classname, case) -> property -> its values, one a repeat in which the
    case passed (latencies in ms). Cases the report added are not figures."""
    out: dict[tuple[str, str], dict[str, list[float]]] = {}
    for suite in suites:
        cases = suite.get("cases") if isinstance(suite, dict) else None
        for case in cases if isinstance(cases, list) else []:
            if not isinstance(case, dict) or _status(case) != PASSED:
                continue
            props = _dict(case.get("properties"))
            if props.get("origin") == ORIGIN:
                continue
            key = (str(case.get("classname", "")), str(case.get("name", "")))
            for prop, raw in props.items():
                if prop not in LATENCY and prop not in THROUGHPUT:
                    continue
                x = number(raw)
                if x is None:
                    continue
                if prop in LATENCY:
                    x = LATENCY[prop].ms(x)
                out.setdefault(key, {}).setdefault(prop, []).append(x)
    return out


def _what(suites: Iterable[dict], key: tuple[str, str], prop: str) -> str:
    for suite in suites:
        for case in suite.get("cases") or []:
            if (isinstance(case, dict) and (str(case.get("classname", "")),
                                            str(case.get("name", ""))) == key):
                return LATENCY[prop].describe(_dict(case.get("properties")))
    return ""


def compare(suites: list[dict], baseline_suites: list[dict],
            stalls: Iterable[str] = (), thresholds: Thresholds = DEFAULT) -> tuple[Comparison, ...]:
    """Every figure of `suites` (a cell's repeats) that the baseline cell's
    suites have for the same case. `stalls` are the problem keys of the
    cell's failures (classname/name): a latency reported as a stall is not
    a regression as well. No baseline results: nothing."""
    mine, theirs = figures(suites), figures(baseline_suites)
    stalled = set(stalls)
    out = []
    for key, props in mine.items():
        base = theirs.get(key)
        if not base:
            continue
        classname, case = key
        for prop, values in props.items():
            if prop not in base:
                continue
            value, ref = statistics.median(values), statistics.median(base[prop])
            latency = prop in LATENCY
            if latency:
                stall = f"{classname}/{stall_case_name(case, LATENCY[prop])}"
                regressed = (value > thresholds.latency_ratio * ref
                             and value > thresholds.latency_floor_ms and stall not in stalled)
            else:
                regressed = ref > 0 and value < thresholds.throughput_ratio * ref
            out.append(Comparison(
                case=case, classname=classname, prop=prop,
                unit="ms" if latency else THROUGHPUT[prop], latency=latency, value=value,
                baseline=ref, samples=len(values), baseline_samples=len(base[prop]),
                regressed=regressed, threshold=thresholds.describe(latency),
                what=_what(suites, key, prop) if latency else ""))
    return tuple(out)


def regressions(comparisons: Iterable[Comparison]) -> tuple[Comparison, ...]:
    return tuple(c for c in comparisons if c.regressed)


def case_properties(c: Comparison, baseline_cell: str) -> Mapping[str, str]:
    """The properties of the testcase a regression is reported as."""
    return {"origin": ORIGIN, "property": c.prop, "measured_in": c.case,
            "value": f"{c.value:.3f}", "baseline_value": f"{c.baseline:.3f}", "unit": c.unit,
            "samples": str(c.samples), "baseline_samples": str(c.baseline_samples),
            "threshold": c.threshold, "compared_with": baseline_cell}


__all__ = ["THROUGHPUT", "ORIGIN", "Thresholds", "DEFAULT", "Comparison", "figures", "compare",
           "regressions", "case_properties"]
