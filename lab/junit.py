"""Results -> JUnit XML (pure), in the form every consumer reads; and the
merge of several junit.xml files (the shards of one matrix) into one.

One <testsuite> per boot with its properties, one <testcase> per case.
junit-xml builds the elements (TestSuite.build_xml_doc); this module then
brings its tree to the rules of the consumers, each taken from their own
code and checked by tests/unit/test_junit_consumers.py:

- Jenkins' xunit plugin validates a JUnit file against its junit-10.xsd and
  skips one that fails. So no `disabled` attribute (junit-xml always writes
  one), suite and total times with at most 3 decimals (SUREFIRE_TIME; a sum
  of floats prints as 7.9559999999999995), no `skipped` on <testsuites>, and
  nothing in a <testcase> but failure/error/skipped/system-out/system-err:
  junit.xml has the cases' figures as text in system-out, and
  junit-properties.xml is the same document with each case's figures also as
  <properties> in its <testcase>, which Jenkins' junit plugin reads as data
  (keepProperties) and the xsd does not allow.
- Jenkins' junit plugin finds a case again in the next build by its suite's
  name and `classname + "." + name`, and makes the classname's part before its
  last '.' the package: the classname is `<cell>.<workload>` (cell ids are
  names joined by '.', a workload name has none), no kernel release in it, and
  a name repeated in a suite gets " (2)", " (3)".
- GitLab keys a case by suite name, classname and name joined with '_'
  (a later duplicate replaces the earlier one), shows the text of failure,
  error or skipped (an element with attributes only reaches it as a Ruby
  Hash), typecasts content by its `type` attribute (ActiveSupport: symbol and
  yaml refused, date parsed, ...), and refuses a file over 30 MB. So those
  elements always have text, a `type` is never one ActiveSupport acts on, and
  each text is cut to MAX_TEXT characters (head and tail kept).
- Every consumer's XML parser rejects characters XML 1.0 forbids (a console's
  escape sequences): they are removed.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence

from junit_xml import TestCase, TestSuite

from .errors import UserError
from .results import CaseResult, Status, SuiteResult

FILE = "junit.xml"                          # valid against junit-10.xsd
PROPERTIES_FILE = "junit-properties.xml"    # + <properties> in each testcase

MAX_TEXT = 64 * 1024       # characters of one message, output or details text
DEFAULT_CLASSNAME = "lab"  # a case of the run itself (interrupted, infrastructure)
# `type` values ActiveSupport's XML typecasting (GitLab's XmlConverter) acts on
TYPECAST = frozenset({"symbol", "yaml", "array", "date", "datetime", "dateTime", "integer",
                      "float", "double", "decimal", "boolean", "base64Binary", "binary",
                      "file"})
# characters XML 1.0 does not allow (its Char production), surrogates included
_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def clean(text: object) -> str:
    """`text` without the characters XML 1.0 forbids."""
    return _ILLEGAL.sub("", str(text))


def cap(text: str, limit: int = MAX_TEXT) -> str:
    """`text` cut to about `limit` characters: its head and its tail (a
    kernel report starts with what and ends with the trace's end)."""
    if len(text) <= limit:
        return text
    half = limit // 2
    cut = len(text) - 2 * half
    return (f"{text[:half]}\n[... lab cut {cut} characters here to keep the JUnit file small; "
            f"the run directory has the full logs ...]\n{text[-half:]}")


def _text(value: object) -> str:
    return clean(cap(str(value)))


def _seconds(value: float) -> str:
    """At most 3 decimals: sums of floats otherwise print as 14.200000000001."""
    return f"{max(value, 0.0):.3f}".rstrip("0").rstrip(".") or "0"


def _type(kind: str, default: str) -> str:
    kind = clean(kind) or default
    return f"lab-{kind}" if kind in TYPECAST else kind


def classname(suite: SuiteResult, case: CaseResult) -> str:
    """`<cell>.<the case's classname>`: Jenkins shows the cell as the package
    and the workload as the class; a suite with no cell (not a run's) keeps
    the case's own."""
    own = clean(case.classname) or DEFAULT_CLASSNAME
    cell = clean(suite.properties.get("cell", ""))
    return f"{cell}.{own}" if cell else own


def unique_names(pairs: Iterable[tuple[str, str]]) -> list[str]:
    """The names of a suite's cases, (classname, name) in order, each made
    unique by " (2)", " (3)" in both keys consumers index cases by: Jenkins'
    `classname.name` and GitLab's `classname_name`."""
    seen: set[str] = set()
    out = []
    for cls, name in pairs:
        n, unique = 1, name
        while f"{cls}.{unique}" in seen or f"{cls}_{unique}" in seen:
            n += 1
            unique = f"{name} ({n})"
        seen.update((f"{cls}.{unique}", f"{cls}_{unique}"))
        out.append(unique)
    return out


def _case(c: CaseResult, cls: str, name: str) -> TestCase:
    out = c.output
    if c.properties:
        props = "\n".join(f"{k}: {v}" for k, v in sorted(c.properties.items()))
        out = f"{out}\n--- properties ---\n{props}" if out else props
    tc = TestCase(name, classname=cls, stdout=_text(out) or None)
    msg = _text(f"[{c.kind}] {c.message}" if c.kind else c.message)
    if c.status is Status.FAILED:
        msg = msg or "failed"
        tc.add_failure_info(message=msg, output=_text(c.details) or msg,
                            failure_type=_type(c.kind, "failure"))
    elif c.status is Status.ERROR:
        msg = msg or "error"
        tc.add_error_info(message=msg, output=_text(c.details) or msg,
                          error_type=_type(c.kind, "error"))
    elif c.status is Status.SKIPPED:
        msg = _text(c.message) or "skipped"
        tc.add_skipped_info(message=msg, output=msg)
    return tc


def _suite(s: SuiteResult, case_properties: bool) -> ET.Element:
    classes = [classname(s, c) for c in s.cases]
    names = unique_names(zip(classes, (clean(c.name) for c in s.cases)))
    ts = TestSuite(clean(s.name), [_case(c, cls, n) for c, cls, n in zip(s.cases, classes, names)],
                   properties={clean(k): _text(v) for k, v in s.properties.items()},
                   timestamp=clean(s.timestamp) or None)
    el = ts.build_xml_doc()
    el.attrib.pop("disabled", None)
    total = 0.0
    for tc, c in zip(el.iter("testcase"), s.cases):
        t = _seconds(c.duration)
        total += float(t)
        tc.set("time", t)
        if case_properties and c.properties:
            props = ET.Element("properties")
            for k, v in sorted(c.properties.items()):
                ET.SubElement(props, "property", name=clean(k), value=_text(v))
            tc.insert(0, props)
    el.set("time", _seconds(total))
    return el


def render(suites: Sequence[SuiteResult], *, case_properties: bool = False) -> str:
    """The JUnit document of these suites: valid against junit-10.xsd, or,
    with case_properties, the same plus each case's properties as
    <properties> in its <testcase> (see the module's docstring)."""
    return _document([_suite(s, case_properties) for s in suites])


def _document(suites: list[ET.Element]) -> str:
    root = ET.Element("testsuites")
    grand = {"tests": 0, "failures": 0, "errors": 0}
    time = 0.0
    for suite in suites:
        for key in grand:
            grand[key] += int(suite.get(key, 0))
        time += float(suite.get("time", 0))
        root.append(suite)
    for key, value in grand.items():
        root.set(key, str(value))
    root.set("time", _seconds(time))
    ET.indent(root, space="\t")
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# --- merging the junit.xml of several shards --------------------------------

_COUNTED = {"failure": "failures", "error": "errors", "skipped": "skipped"}


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


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


def _recount(suite: ET.Element) -> None:
    """A suite's counts from its testcases (not its attributes: a crashed
    writer or another tool may have left them stale or absent), its time in
    the schema's form, no `disabled`."""
    out = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    case_time = 0.0
    for case in suite.iter("testcase"):
        out["tests"] += 1
        case_time += _float(case.get("time")) or 0.0
        for child, attr in _COUNTED.items():
            if case.find(child) is not None:
                out[attr] += 1
                break
    for key, value in out.items():
        suite.set(key, str(value))
    own = _float(suite.get("time"))
    suite.set("time", _seconds(own if own is not None else case_time))
    suite.attrib.pop("disabled", None)


def merge(texts: Sequence[str], names: Sequence[str] | None = None) -> str:
    """Several junit.xml documents (shards of one matrix) -> one
    <testsuites> holding all their <testsuite>s, in order, with totals
    recomputed; a suite name seen before gets " (2)" (consumers merge or
    replace suites of one name). `names` (the files' paths) are what errors
    name."""
    names = list(names) if names is not None else [f"input {i + 1}" for i in range(len(texts))]
    if not texts:
        raise UserError("nothing to merge: give at least one junit.xml")
    suites = [s for text, name in zip(texts, names) for s in _suites_of(text, name)]
    for suite, unique in zip(suites, unique_names(("", s.get("name") or "(unnamed)")
                                                   for s in suites)):
        suite.set("name", unique)
        _recount(suite)
    return _document(suites)
