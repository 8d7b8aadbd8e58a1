"""JUnit shape: a testsuite per boot with its properties, a testcase per case,
failures/errors/skips rendered the way CI systems read them."""

import json
import xml.etree.ElementTree as ET

from lab.junit import render
from lab.results import CaseResult, Status, SuiteResult
from lab.store import RunStore


def suite():
    s = SuiteResult("smoke:6.1.0", {"kernel_release": "6.1.0", "accelerator": "tcg"})
    s.cases += [
        CaseResult("boot", Status.PASSED, 11.2, output="up"),
        CaseResult("fio.nvme.libaio", Status.PASSED, 3.0, classname="fio",
                   properties={"write_iops": "8000"}),
        CaseResult("WARNING in unpin_user_pages", Status.FAILED, classname="fio",
                   kind="warning", message="WARNING in unpin_user_pages at mm/gup.c:1",
                   details="WARNING: CPU: 0 PID: 1 at mm/gup.c:1 unpin_user_pages"),
        CaseResult("rdma", Status.SKIPPED, message="no rxe"),
        CaseResult("gup_test", Status.ERROR, kind="infra", message="ssh died"),
    ]
    return s


def test_suite_and_case_shape():
    root = ET.fromstring(render([suite()]))
    ts = root.find("testsuite")
    assert ts.get("name") == "smoke:6.1.0"
    assert ts.get("tests") == "5" and ts.get("failures") == "1" and ts.get("errors") == "1"
    assert ts.get("skipped") == "1"
    props = {p.get("name"): p.get("value") for p in ts.find("properties")}
    assert props == {"kernel_release": "6.1.0", "accelerator": "tcg"}
    cases = {c.get("name"): c for c in ts.findall("testcase")}
    assert cases["fio.nvme.libaio"].get("classname") == "fio"
    assert "write_iops: 8000" in cases["fio.nvme.libaio"].find("system-out").text
    f = cases["WARNING in unpin_user_pages"].find("failure")
    assert f.get("type") == "warning" and "mm/gup.c" in f.text
    assert cases["rdma"].find("skipped").get("message") == "no rxe"
    assert cases["gup_test"].find("error") is not None


def test_store_writes_valid_results_after_every_case(tmp_path):
    store = RunStore(tmp_path, {"job": "x"})
    s = store.suite("x")
    store.add(s, CaseResult("boot", Status.PASSED))
    assert ET.parse(tmp_path / "junit.xml").getroot().find("testsuite").get("tests") == "1"
    assert json.loads((tmp_path / "summary.json").read_text())["state"] == "running"
    store.add(s, CaseResult("w", Status.FAILED))
    assert store.finish() == 1
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["state"] == "finished" and summary["exit_code"] == 1
    assert summary["suites"][0]["counts"]["failed"] == 1


def test_exit_code_precedence(tmp_path):
    store = RunStore(tmp_path, {})
    s = store.suite("x")
    store.add(s, CaseResult("a", Status.SKIPPED))
    assert store.exit_code() == 0
    store.add(s, CaseResult("b", Status.ERROR))
    assert store.exit_code() == 2
    store.add(s, CaseResult("c", Status.FAILED))
    assert store.exit_code() == 1
