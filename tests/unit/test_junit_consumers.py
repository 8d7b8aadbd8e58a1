"""The JUnit lab writes, read the way its consumers read it. Each check
names the code it models:

- xunit: jenkinsci/xunit-plugin validates input against
  src/main/resources/org/jenkinsci/plugins/xunit/types/model/xsd/junit-10.xsd
  and skips a file that fails (service/XUnitValidationService.java); the
  schema is read from ../shared/schemas, never copied here.
- Jenkins' junit plugin: jenkinsci/junit-plugin, src/main/java/hudson/tasks/
  junit/SuiteResult.java (suites, classname fallback, properties),
  CaseResult.java (package = classname before its last '.', properties),
  TestResult.java (a case found again by suite name + classname.name),
  TimeToFloat.java, SuiteResult.parseTime.
- GitLab: lib/gitlab/ci/parsers/test/junit.rb (cases, status by element),
  lib/gitlab/ci/reports/test_case.rb (key = sha256 of suite_classname_name),
  test_suite.rb (a later case with the same key replaces the earlier one),
  lib/gitlab/xml_converter.rb (30 MB at most; ActiveSupport::XMLConverter:
  `type` attributes typecast or refused, an element without text is a Hash).
"""

import hashlib
import re
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path

import pytest
import xmlschema

from lab import junit
from lab.errors import UserError
from lab.guest.base import Result
from lab.job import load_job
from lab.kernellog.finding import Kind
from lab.results import CaseKind, CaseResult, Status, SuiteResult
from lab.runner import run_job
from lab.store import RunStore
from lab.vm.fake import FakeScript

from .conftest import make_artifact

XSD = Path(__file__).resolve().parents[2].parent / "shared" / "schemas" / "xunit-junit-10.xsd"
RELEASE = "6.1.0-57-amd64"
ACTIVESUPPORT_TYPES = {"symbol", "yaml", "array", "date", "datetime", "dateTime", "integer",
                       "float", "double", "decimal", "boolean", "base64Binary", "binary", "file"}


@pytest.fixture(scope="module")
def schema() -> xmlschema.XMLSchema:
    assert XSD.is_file(), f"{XSD} is missing: it comes with ../shared beside the repository"
    return xmlschema.XMLSchema(str(XSD))


def errors(schema, text: str) -> list[str]:
    return [e.reason or str(e) for e in schema.iter_errors(text)]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A real run (the runner, with the fake machines conftest's fake_lab
    sets up): a kernel finding, a failed command printing a console escape,
    skips, the guest dying (an error and a not-run), a case name repeated in
    the suite."""
    from lab import runner
    from lab.image.build import Image
    from lab.vm.fake import FakeMachineFactory
    tmp = tmp_path_factory.mktemp("run")
    factory = FakeMachineFactory()
    factory.script = FakeScript(warn_on="second-step", qemu_dies_on="last-step", answers=[
        ("failing-step", Result(("sh", "-c", "failing-step"), 3, "out\x1b[31m red", "err", 0.1))])
    art = make_artifact(tmp / "art", RELEASE)
    p = tmp / "j.yaml"
    p.write_text(f"name: j\nkernel: {{artifact: {art}}}\nimage: debian-bookworm\n"
                 "workloads:\n" + "".join(f"  - shell: {{command: {c}-step, case: {c}}}\n"
                                          for c in ("first", "second", "failing")) +
                 "  - gup_test: {}\n  - shell: {command: last-step, case: last}\n"
                 "  - shell: {command: never-step, case: never}\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runner, "default_machine_factory", factory)
        mp.setattr(runner, "cached_image", lambda recipe: Image(
            "fake", "k", tmp / "rootfs", tmp / "key", "ssh-ed25519 AAAA", tmp))
        for var, sub in (("LAB_RUNS_DIR", "runs"), ("LAB_HISTORY", "history.sqlite")):
            mp.setenv(var, str(tmp / sub))
        assert run_job(load_job(p), tmp / "out", live=False) == 1
    return tmp / "out"


def every_kind() -> list[SuiteResult]:
    """A suite per cell with a case of every kind lab writes, texts past the
    cap, characters XML forbids, and names repeated."""
    kinds = [*CaseKind, *Kind]
    cases = [CaseResult(f"case {k or 'plain'}", Status.FAILED, 1 / 3, classname="fio", kind=k,
                        message=f"why\x00 {k}", details="x" * (junit.MAX_TEXT * 3))
             for k in kinds]
    cases += [CaseResult("fio.nvme.libaio", Status.PASSED, 2.0000001, classname="fio",
                         output="\x1b[1mbold\x1b[0m" * 10**5, properties={"write_iops": "7e3",
                                                                         "why": "a\nb"}),
              CaseResult("fio.nvme.libaio", Status.PASSED, classname="fio"),
              CaseResult("pin-balance", Status.SKIPPED), CaseResult("pin-balance", Status.ERROR),
              CaseResult("yaml", Status.ERROR, kind="yaml"), CaseResult("boot", Status.PASSED)]
    return [SuiteResult(f"{cell}#1", {"cell": cell, "kernel_release": RELEASE}, list(cases),
                        timestamp=datetime.now().astimezone().isoformat(timespec="seconds"))
            for cell in ("series.debug", "base.debug")]


def documents(run_dir) -> list[str]:
    suites = every_kind()
    return [(run_dir / junit.FILE).read_text(), junit.render(suites),
            junit.merge([(run_dir / junit.FILE).read_text(), junit.render(suites)])]


# --- xunit: junit-10.xsd -------------------------------------------------------

def test_a_run_with_failures_skips_findings_and_errors_is_valid_against_junit_10(
        schema, run_dir):
    text = (run_dir / junit.FILE).read_text()
    types = {(el.tag, el.get("type")) for el in ET.fromstring(text).iter()
             if el.tag in ("failure", "error", "skipped")}
    assert {("failure", "warning"), ("failure", "failure"), ("error", "infra"),
            ("skipped", "skipped")} <= types                 # a finding, a failure, ...
    assert errors(schema, text) == []
    for doc in documents(run_dir):
        assert errors(schema, doc) == []


def test_junit_properties_is_junit_xml_plus_testcase_properties(schema, run_dir):
    """The only thing junit-10.xsd refuses in junit-properties.xml is the
    <properties> in testcases; without them it is junit.xml."""
    with_props = ET.parse(run_dir / junit.PROPERTIES_FILE).getroot()
    assert with_props.find("testsuite/testcase/properties") is not None
    for case in with_props.iter("testcase"):
        for props in case.findall("properties"):
            case.remove(props)
    assert ET.tostring(with_props) == ET.tostring(ET.parse(run_dir / junit.FILE).getroot())


# --- Jenkins' junit plugin ---------------------------------------------------

def jenkins_cases(text: str) -> list[tuple[str, ET.Element, str]]:
    """(suite name, testcase, classname) as SuiteResult.parse reads them:
    nested suites recursed into, a missing classname is the suite's name."""
    out = []

    def suite(el):
        for s in el.findall("testsuite"):
            suite(s)
        for case in el.findall("testcase"):
            out.append((el.get("name"), case, case.get("classname") or el.get("name")))
    suite(ET.fromstring(text))
    return out


def test_jenkins_finds_each_case_again_by_suite_and_full_name(run_dir):
    for doc in documents(run_dir):
        keys = [(suite, f"{cls}.{case.get('name')}") for suite, case, cls in jenkins_cases(doc)]
        assert len(keys) == len(set(keys))          # TestResult.getCase -> one case


def test_jenkins_packages_are_cells_and_classes_are_workloads(run_dir):
    root = ET.parse(run_dir / junit.FILE).getroot()
    cell = root.find("testsuite/properties/property[@name='cell']").get("value")
    classes = {cls.rpartition(".")[2] for _, _, cls in jenkins_cases(ET.tostring(root))}
    for _, case, cls in jenkins_cases(ET.tostring(root)):
        package, _, _ = cls.rpartition(".")       # CaseResult.getPackageName
        assert package == cell
    assert classes == {"boot", "shell", "gup_test"}
    names = [f"{cls} {case.get('name')}" for _, case, cls in jenkins_cases(ET.tostring(root))]
    assert not [n for n in names if RELEASE in n or "6.1" in n]      # a property instead
    assert root.find(f"testsuite/properties/property[@value='{RELEASE}']") is not None


def test_jenkins_reads_times_timestamps_and_case_properties(run_dir):
    for doc in documents(run_dir):
        for el in ET.fromstring(doc).iter():
            if "time" in el.attrib:                # TimeToFloat: Float.parseFloat
                assert re.fullmatch(r"\d+(\.\d{1,3})?", el.get("time")), el.get("time")
            stamp = el.get("timestamp")
            if stamp:   # parseTime: no 'Z', '+' or '-' past the date -> read as UTC
                assert stamp.endswith("Z") or "+" in stamp or stamp.rfind("-") > 7
                assert datetime.fromisoformat(stamp).tzinfo is not None
    suites = every_kind()
    root = ET.fromstring(junit.render(suites, case_properties=True))
    for case, c in zip(root.iter("testcase"), (c for s in suites for c in s.cases)):
        props = {p.get("name"): p.get("value") for p in case.iterfind("properties/property")}
        assert props == c.properties                  # CaseResult: keepProperties


# --- GitLab ------------------------------------------------------------------

def gitlab_cases(text: str) -> list[tuple[str, str, str, str]]:
    """(key, status, shown text, type) per case as Junit#parse! and
    TestCase.new compute them."""
    root = ET.fromstring(text)
    assert root.tag in ("testsuites", "testsuite")
    out = []
    for suite in root.iter("testsuite"):
        for case in suite.findall("testcase"):
            key = hashlib.sha256(f"{suite.get('name')}_{case.get('classname')}_"
                                 f"{case.get('name')}".encode()).hexdigest()
            el = next((case.find(t) for t in ("failure", "error", "skipped")
                       if case.find(t) is not None), None)
            status = {"failure": "failed", "error": "error", "skipped": "skipped",
                      None: "success"}[None if el is None else el.tag]
            out.append((key, status, None if el is None else el.text, el is not None and
                        el.get("type")))
    return out


def test_gitlab_counts_every_case_with_its_status(run_dir):
    for doc in documents(run_dir):
        got = gitlab_cases(doc)
        assert len({key for key, *_ in got}) == len(got)      # none replaced by a namesake
    statuses = [s for _, s, _, _ in gitlab_cases((run_dir / junit.FILE).read_text())]
    counts = ET.parse(run_dir / junit.FILE).getroot()
    assert statuses.count("failed") == int(counts.get("failures"))
    assert statuses.count("error") == int(counts.get("errors"))


def test_gitlab_shows_text_for_every_failure_error_and_skip(run_dir):
    for doc in documents(run_dir):
        for _, status, shown, typ in gitlab_cases(doc):
            if status != "success":
                assert shown and shown.strip()          # not a Hash of the attributes
                assert typ not in ACTIVESUPPORT_TYPES   # not typecast, not refused
    assert junit.TYPECAST == ACTIVESUPPORT_TYPES
    assert not {str(k) for k in [*CaseKind, *Kind]} & ACTIVESUPPORT_TYPES


def test_gitlab_takes_the_file_however_much_the_cases_printed(run_dir):
    big = [SuiteResult("default#1", {"cell": "default"}, [
        CaseResult(f"w{i}", Status.FAILED, classname="shell", output="o" * 10**6,
                   details="d" * 10**6, message="m" * 10**6) for i in range(50)])]
    text = junit.render(big, case_properties=True)
    assert len(text.encode()) < 30 * 2**20               # MAX_XML_SIZE
    for el in ET.fromstring(text).iter():
        assert len(el.text or "") <= junit.MAX_TEXT + 200
    for doc in documents(run_dir):
        assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f]", doc)   # Nokogiri: strict XML


# --- lab's own writers -----------------------------------------------------------

def test_the_store_writes_both_files_after_every_case(tmp_path, schema):
    store = RunStore(tmp_path, {"job": "x"})
    s = store.suite("x#1", {"cell": "x"})
    store.add(s, CaseResult("fio.nvme.libaio", Status.PASSED, 1.0, classname="fio",
                            properties={"write_iops": "8000"}))
    assert errors(schema, (tmp_path / junit.FILE).read_text()) == []
    case = ET.parse(tmp_path / junit.PROPERTIES_FILE).getroot().find(".//testcase")
    assert case.get("classname") == "x.fio"
    assert case.find("properties/property").attrib == {"name": "write_iops", "value": "8000"}


def test_merged_shards_keep_suite_names_apart():
    one = junit.render(every_kind()[:1])
    root = ET.fromstring(junit.merge([one, one], ["a.xml", "b.xml"]))
    assert [s.get("name") for s in root] == ["series.debug#1", "series.debug#1 (2)"]
    with pytest.raises(UserError, match="b.xml: not XML"):
        junit.merge([one, "<"], ["a.xml", "b.xml"])
