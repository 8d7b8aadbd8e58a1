"""Results -> JUnit XML (pure). One <testsuite> per boot with its properties,
one <testcase> per case."""

from __future__ import annotations

from junit_xml import TestCase, TestSuite, to_xml_report_string

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
