"""lab/ktap.py: the KTAP spec's own examples, kselftest outputs as they come
(a program's own KTAP, runner.sh's `# `-prefixed nesting, SKIP plans, bail
outs), console garbage, results missing against the plan, and a
render -> parse round trip over generated trees."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings, strategies as st

from lab import ktap
from lab.ktap import Block, Directive, Outcome, Plan, Result

DATA = Path(__file__).parent / "data" / "ktap"


def flat(b: Block) -> list[tuple[tuple[str, ...], int, str, Outcome]]:
    return [(path, r.number, r.name, r.outcome) for path, r in b.walk()]


# Documentation/dev-tools/ktap.rst, "Example KTAP output"
SPEC = """\
KTAP version 1
1..1
  KTAP version 1
  1..3
    KTAP version 1
    1..1
    # test_1: initializing test_1
    ok 1 test_1
  ok 1 example_test_1
    KTAP version 1
    1..2
    ok 1 test_1 # SKIP test_1 skipped
    ok 2 test_2
  ok 2 example_test_2
    KTAP version 1
    1..3
    ok 1 test_1
    # test_2: FAIL
    not ok 2 test_2
    ok 3 test_3 # SKIP test_3 skipped
  not ok 3 example_test_3
not ok 1 main_test
"""


def test_the_spec_example_nests_three_levels():
    b = ktap.parse(SPEC)
    assert b.version == "KTAP version 1" and b.plan == Plan(1)
    main = b.results[0]
    assert (main.name, main.outcome) == ("main_test", Outcome.FAIL)
    ex = main.subtests.results
    assert [(r.name, r.outcome) for r in ex] == [
        ("example_test_1", Outcome.PASS), ("example_test_2", Outcome.PASS),
        ("example_test_3", Outcome.FAIL)]
    t1 = ex[0].subtests.results[0]
    assert t1.diagnostics == ["test_1: initializing test_1"]
    skip = ex[1].subtests.results[0]
    assert (skip.outcome, skip.directive, skip.reason) == (Outcome.SKIP, Directive.SKIP,
                                                           "test_1 skipped")
    assert ex[2].subtests.results[1].diagnostics == ["test_2: FAIL"]
    assert [p for p, r in b.walk() if r.name == "test_2"] == [
        ("main_test", "example_test_2"), ("main_test", "example_test_3")]
    assert ktap.parse(ktap.render(b)) == b


def test_a_less_indented_diagnostic_after_a_complete_subtest_is_the_parents():
    b = ktap.parse("KTAP version 1\n1..1\n  KTAP version 1\n  1..2\n  ok 1 test_1\n"
                   "  not ok 2 test_2\n# example failed\nnot ok 1 example\n")
    r = b.results[0]
    assert r.diagnostics == ["example failed"] and len(r.subtests.results) == 2


def test_a_kselftest_program_on_its_own():
    """madv_populate of linux-source-6.1, built statically and run on this host."""
    b = ktap.parse((DATA / "madv_populate-host.txt").read_text())
    assert b.version == "TAP version 13" and b.plan == Plan(16)
    assert len(b.results) == 16 and all(r.outcome is Outcome.PASS for r in b.results)
    assert b.results[0].diagnostics == ["[RUN] test_prot_read"]
    assert b.diagnostics == ["Totals: pass:16 fail:0 xfail:0 xpass:0 skip:0 error:0"]


def test_runner_sh_prefixes_each_programs_output():
    """run_many of kselftest/runner.sh over soft-dirty (skips everything here),
    madv_populate and a missing file, captured on this host."""
    b = ktap.parse((DATA / "runner-host.txt").read_text())
    top = b.results
    assert [(r.name, r.outcome) for r in top] == [
        ("selftests: vm: soft-dirty", Outcome.SKIP),
        ("selftests: vm: madv_populate", Outcome.PASS),
        ("selftests: vm: nonexistent", Outcome.FAIL)]
    assert top[0].subtests.skipped == "soft-dirty is not support"
    inner = top[1].subtests
    assert inner.version == "TAP version 13" and len(inner.results) == 16
    assert inner.results[2].diagnostics == ["[RUN] test_prot_write"]
    assert top[1].diagnostics == ["selftests: vm: madv_populate"]
    assert top[2].diagnostics[-1] == "Warning: file ./nonexistent is missing!"


def test_kselftest_h_directives_and_bail_out():
    text = """TAP version 13
1..6
ok 1 MADV_POPULATE_READ
not ok 2 range is populated
ok 3 # SKIP Test test_hugepage huge page allocation
ok 4 # XFAIL expected to fail
not ok 5 # error could not open /proc/self/pagemap
ok 6 old behaviour # todo not fixed yet
# Totals: pass:1 fail:1 xfail:1 xpass:0 skip:1 error:1
"""
    b = ktap.parse(text)
    assert [(r.name, r.outcome) for r in b.results] == [
        ("MADV_POPULATE_READ", Outcome.PASS), ("range is populated", Outcome.FAIL),
        ("Test test_hugepage huge page allocation", Outcome.SKIP),
        ("expected to fail", Outcome.XFAIL),
        ("could not open /proc/self/pagemap", Outcome.ERROR),
        ("old behaviour", Outcome.TODO)]
    assert [o.failed for o in (Outcome.FAIL, Outcome.ERROR, Outcome.TODO, Outcome.XFAIL,
                               Outcome.SKIP, Outcome.MISSING)] == [
        True, True, False, False, False, True]
    bail = ktap.parse("TAP version 13\n1..4\nok 1 first\nBail out! mmap failed\n"
                      "# Totals: pass:1 fail:0 xfail:0 xpass:0 skip:0 error:0\n")
    assert bail.bail_out == "mmap failed"
    assert [(r.number, r.outcome, r.reason) for r in bail.results[1:]] == [
        (n, Outcome.MISSING, "bailed out: mmap failed") for n in (2, 3, 4)]


def test_results_missing_against_the_plan_fail():
    b = ktap.parse("KTAP version 1\n1..3\nok 1 a\nok 3 c\n")
    assert [(r.number, r.outcome) for r in b.results] == [
        (1, Outcome.PASS), (3, Outcome.PASS), (2, Outcome.MISSING)]
    assert b.results[2].reason == "no result line (plan 1..3)"
    # a program killed after its subtests: the parent's result never came
    cut = ktap.parse("TAP version 13\n1..1\n# selftests: vm: x\n# TAP version 13\n# 1..2\n"
                     "# ok 1 one\n")
    parent = cut.results[0]
    assert parent.outcome is Outcome.MISSING
    assert [r.outcome for r in parent.subtests.results] == [Outcome.PASS, Outcome.MISSING]


def test_plans_skip_directives_and_descriptions():
    assert ktap.parse("TAP version 13\n1..0 # SKIP soft-dirty is not support\n").skipped == \
        "soft-dirty is not support"
    assert ktap.parse("TAP version 13\n1..0 # skipped: no hugetlb\n").skipped == "no hugetlb"
    assert ktap.parse("TAP version 13\n1..2\n").skipped is None
    r = ktap.parse("TAP version 14\n1..3\nok 1 - dash style # Skipped because\n"
                   "not ok 2 rcode # exit=1\nokay 3 is no result\n").results
    assert (r[0].description, r[0].directive, r[0].reason) == ("dash style", Directive.SKIP,
                                                               "because")
    assert (r[1].outcome, r[1].reason, r[1].directive) == (Outcome.FAIL, "exit=1", None)
    assert (r[2].number, r[2].outcome) == (3, Outcome.MISSING)


def test_a_trailing_plan_and_unnumbered_results():
    b = ktap.parse("TAP version 13\nok first\nnot ok second\n1..2\n")
    assert [(r.number, r.outcome) for r in b.results] == [(1, Outcome.PASS), (2, Outcome.FAIL)]


def test_tap14_subtest_lines_name_the_block():
    b = ktap.parse("TAP version 14\n1..1\n    # Subtest: example\n    1..2\n    ok 1 a\n"
                   "    ok 2 b\nok 1 example\n")
    sub = b.results[0].subtests
    assert sub.name == "example" and [r.name for r in sub.results] == ["a", "b"]


def test_console_garbage_is_unknown_and_changes_nothing():
    text = """[    5.104233] random: crng init done
KTAP version 1
1..2
[    6.000001] nvme nvme0: 2/0/0 default/read/poll queues
  KTAP version 1
  1..1
[    6.3] EXT4-fs (nvme0n1): mounted filesystem
  not ok 1 pin
  garbage indented
not ok 1 parent
some program print
ok 2 other
[    7.0] reboot: Power down
"""
    b = ktap.parse(text)
    assert flat(b) == [(("parent",), 1, "pin", Outcome.FAIL), ((), 1, "parent", Outcome.FAIL),
                       ((), 2, "other", Outcome.PASS)]
    assert "[    5.104233] random: crng init done" in b.unknown
    assert "some program print" in b.unknown
    assert b.results[0].subtests.unknown == ["[    6.3] EXT4-fs (nvme0n1): mounted filesystem",
                                             "  garbage indented"]


def test_hostile_input_stays_bounded():
    deep = "".join(" " * i + "KTAP version 1\n" for i in range(0, 2000))
    b = ktap.parse(deep)                             # no RecursionError
    assert b.version == "KTAP version 1"
    assert ktap.parse("TAP version 13\n1..99999999999\nok 1 a\n").plan is None


def test_has_ktap():
    assert ktap.has_ktap("noise\nTAP version 13\n1..1\n")
    assert not ktap.has_ktap("PIN_FAST_BENCHMARK: Time: get:1520 put:80 us\n")


# --- render -> parse ----------------------------------------------------------

WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCXYZ0123456789_:/.()=-", min_size=1,
               max_size=12)
TEXT = st.lists(WORD, min_size=1, max_size=4).map(" ".join).filter(
    lambda s: not ktap._structural(s) and not s.startswith(("-", ":", "Subtest")))
DIAG = st.lists(TEXT, max_size=2)
DATA_TEXT = TEXT.filter(lambda s: not ktap.DIRECTIVE_RE.match(s))   # diagnostic data


@st.composite
def results(draw, depth: int) -> list[Result]:
    n = draw(st.integers(0, 4))
    out = []
    for i in range(1, n + 1):
        directive = draw(st.none() | st.sampled_from(list(Directive)))
        sub = draw(blocks(depth + 1)) if depth < 2 and draw(st.booleans()) else None
        reason = draw(st.just("") | (TEXT if directive else DATA_TEXT))
        out.append(Result(draw(st.booleans()), i, draw(st.just("") | TEXT), directive,
                          reason, draw(DIAG), sub))
    return out


@st.composite
def blocks(draw, depth: int = 0) -> Block:
    rs = draw(results(depth))
    version = draw(st.sampled_from(["KTAP version 1", "TAP version 13", "TAP version 14"]))
    plan = draw(st.sampled_from([Plan(len(rs)), None] if rs else
                                [Plan(0), Plan(0, "no hugetlb"), Plan(0, "")]))
    return Block(version=version, plan=plan, results=rs, diagnostics=draw(DIAG))


GARBAGE = st.sampled_from(["[   12.345678] random: crng init done",
                           "[    3.1] EXT4-fs (nvme0n1): mounted filesystem", "Segfault?"])


@settings(max_examples=200, deadline=None)
@given(blocks(), st.sampled_from([ktap.INDENT, "    ", ktap.RUNNER_PREFIX]), st.data())
def test_render_then_parse_gives_the_tree_back(b, indent, data):
    text = ktap.render(b, indent=indent)
    assert ktap.parse(text) == b
    lines = text.splitlines()
    for _ in range(data.draw(st.integers(0, 3))):
        lines.insert(data.draw(st.integers(0, len(lines))), data.draw(GARBAGE))
    assert ktap.parse("\n".join(lines)) == b
