"""One run's verdict from its summary.json: the target seen (bad), the
revision unable to say (skip), the host failing (infra), or good; and the
targets' matching rules."""

from __future__ import annotations

import pytest

from lab.bisect.search import Verdict
from lab.bisect.target import Target, TargetKind, judge
from lab.errors import UserError

WARN = {"name": "WARNING in gup_test_ioctl", "classname": "gup_test", "status": "failed",
        "kind": "warning", "message": "WARNING in gup_test_ioctl at mm/gup_test.c:51",
        "properties": {"signature": "WARNING in gup_test_ioctl @ mm/gup_test.c"}}
LEAK = {"name": "pin-balance", "classname": "gup_test", "status": "failed", "kind": "pin-leak",
        "message": "pin leak: 256 pins acquired, 255 released", "properties": {}}
BOOT = {"name": "boot", "classname": "boot", "status": "passed", "kind": "", "duration": 30.0}
WORK = {"name": "gup_test.pin-basic.anon", "classname": "gup_test", "status": "passed",
        "kind": ""}


def summary(*cases) -> dict:
    return {"format": 2, "suites": [{"name": "bisect#1", "properties": {},
                                     "cases": list(cases)}]}


def test_a_finding_by_title_or_signature_is_bad():
    for text in ("gup_test_ioctl", "warning in GUP_TEST", "mm/gup_test.c",
                 r"re:WARNING in \w+_ioctl"):
        j = judge(summary(BOOT, WORK, WARN), Target(TargetKind.FINDING, text))
        assert j.verdict is Verdict.BAD, text
        assert j.signature == WARN["properties"]["signature"]
        assert "gup_test.c:51" in j.evidence[0]
    j = judge(summary(BOOT, WORK, WARN), Target(TargetKind.FINDING, "unpin_user_pages"))
    assert j.verdict is Verdict.GOOD and "WARNING in gup_test_ioctl" in j.others[0]


def test_each_kind_of_target():
    s = summary(BOOT, WORK, WARN, LEAK)
    assert judge(s, Target(TargetKind.ANY_FINDING)).verdict is Verdict.BAD
    assert judge(s, Target(TargetKind.PIN_LEAK)).verdict is Verdict.BAD
    assert judge(s, Target(TargetKind.PIN_LEAK)).others == (
        "WARNING in gup_test_ioctl: WARNING in gup_test_ioctl at mm/gup_test.c:51",)
    assert judge(s, Target(TargetKind.DEADLOCK)).verdict is Verdict.GOOD
    assert judge(s, Target(TargetKind.CASE, "pin-balance")).verdict is Verdict.BAD
    assert judge(s, Target(TargetKind.CASE, "gup_test.pin-balance")).verdict is Verdict.BAD
    assert judge(summary(BOOT, WORK, LEAK), Target(TargetKind.ANY_FINDING)).verdict \
        is Verdict.GOOD


def test_a_named_testcase_that_never_ran_is_a_skip_naming_what_ran():
    j = judge(summary(BOOT, WORK), Target(TargetKind.CASE, "gup_test.pin-fast.anon"))
    assert j.verdict is Verdict.SKIP and "gup_test.pin-basic.anon" in j.reason


@pytest.mark.parametrize("case,words", [
    ({"name": "apply", "status": "failed", "kind": "apply",
      "message": "patch 6/8 does not apply: [PATCH 6/8] x"}, "patch 6/8 does not apply"),
    ({"name": "build", "status": "failed", "kind": "build", "message": "mm/x.c: error: y"},
     "build: mm/x.c"),
    ({"name": "boot", "status": "failed", "kind": "boot", "message": "no SSH in 240s"},
     "boot"),
    ({"name": "gup_test", "status": "failed", "kind": "panic", "message": "Kernel panic"},
     "panic"),
    ({"name": "x", "status": "skipped", "kind": "not-run", "message": "not run"}, "not-run"),
])
def test_what_stops_a_run_before_the_target_could_show_is_a_skip(case, words):
    j = judge(summary(BOOT, case), Target(TargetKind.FINDING, "gup_test_ioctl"))
    assert j.verdict is Verdict.SKIP and words in j.reason


def test_the_target_wins_over_a_crash_after_it():
    panic = {"name": "gup_test", "status": "failed", "kind": "panic", "message": "panic"}
    assert judge(summary(BOOT, WARN, panic), Target(TargetKind.FINDING, "gup_test")).verdict \
        is Verdict.BAD


def test_a_deadlock_is_a_skip_unless_it_is_the_target():
    dl = {"name": "rdma", "status": "failed", "kind": "deadlock", "message": "stuck"}
    assert judge(summary(BOOT, dl), Target(TargetKind.PIN_LEAK)).verdict is Verdict.SKIP
    assert judge(summary(BOOT, dl), Target(TargetKind.DEADLOCK)).verdict is Verdict.BAD


def test_host_failures_are_infra_and_an_empty_run_too():
    infra = {"name": "gup_test", "status": "error", "kind": "infra", "message": "qemu died"}
    assert judge(summary(BOOT, infra), Target(TargetKind.PIN_LEAK)).verdict is Verdict.INFRA
    assert judge({"suites": []}, Target(TargetKind.PIN_LEAK)).verdict is Verdict.INFRA


def test_targets_are_checked():
    with pytest.raises(UserError, match="needs a non-empty"):
        Target(TargetKind.FINDING, " ")
    with pytest.raises(UserError, match="regular expression"):
        Target(TargetKind.FINDING, "re:(")
    t = Target(TargetKind.CASE, "x")
    assert Target.from_dict(t.to_dict()) == t and "testcase 'x'" in t.describe()
