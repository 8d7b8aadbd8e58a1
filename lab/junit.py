"""Results -> JUnit XML (pure). One <testsuite> per boot with its properties,
one <testcase> per case; and the merge of several junit.xml files (the
shards of one matrix) into one, with ElementTree since junit-xml only writes."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

from junit_xml import TestCase, TestSuite, to_xml_report_string

from .errors import UserError
from .results import CaseResult, Status, SuiteResult


def _case(c: CaseResult, suite_name: str) -> TestCase:
    out = c.output
    if c.properties:
        props = "\n".join(f"{k}: {v}" for k, v in sorted(c.properties.items()))
        out = f"{out}\n--- properties ---\n{props}" if out else props
    tc = TestCase(c.name, classname=c.classname or suite_name, elapsed_sec=round(c.duration, 3),
                  stdout=out or None)
    msg = f"[{c.kind}] {c.message}" if c.kind else c.message
    if c.status is Status.FAILED:
        tc.add_failure_info(message=msg or "failed", output=c.details or None,
                            failure_type=c.kind or "failure")
    elif c.status is Status.ERROR:
        tc.add_error_info(message=msg or "error", output=c.details or None,
                          error_type=c.kind or "error")
    elif c.status is Status.SKIPPED:
        tc.add_skipped_info(message=c.message or "skipped")
    return tc


def render(suites: list[SuiteResult]) -> str:
    ts = [TestSuite(s.name, [_case(c, s.name) for c in s.cases],
                    properties=dict(s.properties), timestamp=s.timestamp or None)
          for s in suites]
    return to_xml_report_string(ts, prettyprint=True, encoding="utf-8")


# --- merging the junit.xml of several shards --------------------------------

_COUNTED = {"failure": "failures", "error": "errors", "skipped": "skipped"}


def _seconds(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _time(seconds: float) -> str:
    """At most 3 decimals: sums of floats otherwise print as 14.200000000001."""
    return f"{seconds:.3f}".rstrip("0").rstrip(".") or "0"


def _suites_of(text: str, name: str) -> list[ET.Element]:
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise UserError(f"not XML ({e}); give junit.xml files written by lab run", file=name) from None
    if root.tag == "testsuite":
        return [root]
    if root.tag == "testsuites" and all(s.tag == "testsuite" for s in root):
        return list(root)
    raise UserError(f"not JUnit XML: the root element is <{root.tag}>, expected <testsuites> "
                    "or <testsuite>", file=name)


def _totals(suite: ET.Element) -> dict[str, float]:
    """A suite's counts from its testcases (not its attributes: a crashed
    writer or another tool may have left them stale or absent)."""
    out = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    case_time = 0.0
    for case in suite.iter("testcase"):
        out["tests"] += 1
        case_time += _seconds(case.get("time")) or 0.0
        for child, attr in _COUNTED.items():
            if case.find(child) is not None:
                out[attr] += 1
                break
    own = _seconds(suite.get("time"))
    return dict(out, time=own if own is not None else case_time)


def merge(texts: Sequence[str], names: Sequence[str] | None = None) -> str:
    """Several junit.xml documents (shards of one matrix) -> one
    <testsuites> holding all their <testsuite>s, in order, with totals
    recomputed. `names` (the files' paths) are what errors name."""
    names = list(names) if names is not None else [f"input {i + 1}" for i in range(len(texts))]
    if not texts:
        raise UserError("nothing to merge: give at least one junit.xml")
    root = ET.Element("testsuites")
    grand = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0, "time": 0.0}
    for text, name in zip(texts, names):
        for suite in _suites_of(text, name):
            totals = _totals(suite)
            for key, value in totals.items():
                suite.set(key, _time(value) if key == "time" else str(int(value)))
                grand[key] += value
            root.append(suite)
    for key, value in grand.items():
        root.set(key, _time(value) if key == "time" else str(int(value)))
    ET.indent(root, space="\t")
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
