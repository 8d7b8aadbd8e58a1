"""`lab bisect` end to end without qemu: real builds of the fake kbuild tree
(milliseconds), lab's FakeMachine booting them, whose kernel WARNs when the
build holds a marker. Commits of a tree and prefixes of a series; skips;
bad input; Ctrl-C and --resume; a run that fails for the host retried;
--json; the JUnit file and the history; the user's checkout untouched."""

from __future__ import annotations

import json
import random
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from lab import runner
from lab.bisect import driver
from lab.bisect.driver import Bisection
from lab.bisect.search import Policy
from lab.bisect.state import Setup, load
from lab.bisect.target import Target, TargetKind
from lab.cli import main
from lab.errors import InfraError, UserError
from lab.history import History
from lab.vm.fake import FakeMachine, FakeMachineFactory, FakeScript

from .kerneltree import git

MARK = "BUG_MARKER"
WARN_TARGET = Target(TargetKind.FINDING, "unpin_user_pages")
WORKLOAD = "shell:{command: run-the-test, case: t}"


class ByContent(FakeMachineFactory):
    """Machines whose kernel WARNs during the workload when its vmlinux (the
    fake build concatenates the sources) holds MARK; with `rate` < 1 only
    that share of the boots do (seeded)."""

    def __init__(self, rate: float = 1.0, seed: int = 0, dies: int = 0):
        super().__init__()
        self.rate, self.rng, self.dies = rate, random.Random(seed), dies

    def __call__(self, cfg, workdir, log):
        vmlinux = (Path(cfg.kernel.image).parent / "vmlinux").read_text()
        script = FakeScript()
        if self.dies > 0:                         # qemu killed under the workload
            self.dies -= 1
            script = FakeScript(qemu_dies_on="run-the-test")
        elif MARK in vmlinux and self.rng.random() < self.rate:
            script = FakeScript(warn_on="run-the-test")
        m = FakeMachine(cfg, workdir, log, script, self)
        self.machines.append(m)
        return m


@pytest.fixture
def fragment(tmp_path) -> str:
    p = tmp_path / "fake.config"
    p.write_text("CONFIG_DEBUG_FS=y\nCONFIG_GUP_TEST=y\nCONFIG_VIRTIO_BLK=y\n")
    return str(p)


@pytest.fixture
def machines(fake_lab, monkeypatch):
    f = ByContent()
    monkeypatch.setattr(runner, "default_machine_factory", f)
    return f


def commits(tree: Path, n: int, bad_at: int, *, broken=()) -> list[str]:
    """n commits on master after the base, each changing mm/swap.c; the one
    numbered `bad_at` (1-based) puts MARK into mm/gup.c; those in `broken`
    do not build."""
    out = []
    for k in range(1, n + 1):
        f = tree / "mm" / "swap.c"
        text = f.read_text().replace("#error broken\n", "") + f"/* change {k} */\n"
        if k in broken:
            text = "#error broken\n" + text
        f.write_text(text)
        if k == bad_at:
            g = tree / "mm" / "gup.c"
            g.write_text(g.read_text() + f"/* {MARK} */\n")
        git(tree, "commit", "-qam", f"mm: change {k}")
        out.append(git(tree, "rev-parse", "HEAD").strip())
    return out


def setup(tree, fragment, **kw) -> Setup:
    d = dict(target=WARN_TARGET, policy=Policy(), tree=str(tree), fragments=(fragment,),
             workloads=(WORKLOAD,))
    d.update(kw)
    return Setup(**d)


def test_tree_bisection_names_the_commit_and_leaves_the_checkout_alone(
        tree, fragment, machines, tmp_path):
    base = git(tree, "rev-parse", "HEAD").strip()
    hashes = commits(tree, 8, bad_at=5)
    head, status = git(tree, "rev-parse", "HEAD"), git(tree, "status", "--porcelain")
    before = (tree / "mm" / "gup.c").read_text()
    b = Bisection.start(setup(tree, fragment, good=base, bad="master"), tmp_path / "b")
    res = b.run()
    assert res["outcome"] == "found" and res["exit_code"] == 0
    c = res["culprit"]
    assert c["commit"] == hashes[4] and c["subject"] == "mm: change 5"
    assert "lab@localhost" in c["author"] or c["author"]
    assert res["confidence"] == 1.0 and "unpin_user_pages" in res["evidence"][0]
    order = [s["index"] for s in res["steps"]]
    assert order[:2] == [8, 0] and len(order) - 2 <= 3
    assert [s["verdict"] for s in res["steps"]][:2] == ["bad", "good"]
    # the user's checkout: same HEAD, clean, same files
    assert git(tree, "rev-parse", "HEAD") == head
    assert git(tree, "status", "--porcelain") == status
    assert (tree / "mm" / "gup.c").read_text() == before
    # every step is a run directory of its own, with the runner's results
    for s in res["steps"]:
        for d in s["run_dirs"]:
            assert (b.dir / d / "summary.json").exists()
    # a step after the first is incremental: the build of the culprit's parent
    # recompiles mm/swap.c, not kernel/fork.c
    art = Path(res["steps"][-1]["revision"] and b.state.runs[-1].kernel["artifact"])
    assert "CC      kernel/fork.o" not in (art / "build.log").read_text()


def test_endpoints_as_needed_through_the_cli(tree, fragment, machines, tmp_path, capsys):
    """--endpoints as-needed: the same commit named in fewer steps, the bad
    endpoint not run, and the state keeps the choice for --resume."""
    base = git(tree, "rev-parse", "HEAD").strip()
    hashes = commits(tree, 8, bad_at=5)
    code = main(["bisect", "--tree", str(tree), "--good", base, "--bad", "master",
                 "--fragment", fragment, "--workload", WORKLOAD, "--finding",
                 WARN_TARGET.pattern, "--endpoints", "as-needed", "--json",
                 "-o", str(tmp_path / "b")])
    res = json.loads(capsys.readouterr().out)
    assert code == 0 and res["culprit"]["commit"] == hashes[4]
    order = [s["index"] for s in res["steps"]]
    assert 8 not in order and 0 not in order and len(order) <= 4
    assert {4, 5} <= set(order)          # the culprit ran bad, its parent good
    st = json.loads((tmp_path / "b" / "bisect.json").read_text())
    assert st["setup"]["policy"]["endpoints_first"] is False


def test_results_junit_summary_and_history(tree, fragment, machines, tmp_path):
    base = git(tree, "rev-parse", "HEAD").strip()
    commits(tree, 4, bad_at=3)
    b = Bisection.start(setup(tree, fragment, good=base, bad="master"), tmp_path / "b")
    res = b.run()
    assert (b.dir / "junit-properties.xml").exists()
    import xmlschema
    xsd = Path(__file__).resolve().parents[2].parent / "shared" / "schemas" / \
        "xunit-junit-10.xsd"
    assert xsd.is_file(), f"{xsd} is missing: it comes with ../shared beside the repository"
    assert not list(xmlschema.XMLSchema(str(xsd)).iter_errors((b.dir / "junit.xml").read_text()))
    root = ET.parse(b.dir / "junit.xml").getroot()
    suites = root.findall("testsuite")
    assert [s.get("name").split("-")[0] for s in suites[:-1]] == \
        [f"step{i:02d}" for i in range(1, len(res["steps"]) + 1)]
    first_bad = suites[-1].find("testcase")
    assert first_bad.get("name") == "first-bad"
    assert "mm: change 3" in first_bad.find("failure").get("message")
    s = json.loads((b.dir / "summary.json").read_text())
    assert s["format"] == 2 and s["kind"] == "bisect" and s["exit_code"] == 0
    assert s["state"] == "finished" and s["result"]["culprit"]["subject"] == "mm: change 3"
    runs = History(tmp_path / "history.sqlite").runs()
    # the bisection itself, and each of its runs
    assert [r.name for r in runs].count("bisect-workloads") == 1
    assert [r.name for r in runs].count("bisect-workloads-step") == res["runs"]
    [me] = [r for r in runs if r.name == "bisect-workloads"]
    assert me.exit_code == 0 and me.run_dir == str(b.dir) and me.cells == len(suites)
    st = load(b.dir)
    assert st.status == "finished" and len(st.runs) == res["runs"]


def test_a_commit_that_does_not_build_is_skipped(tree, fragment, machines, tmp_path):
    base = git(tree, "rev-parse", "HEAD").strip()
    hashes = commits(tree, 8, bad_at=6, broken={4})
    res = Bisection.start(setup(tree, fragment, good=base, bad="master"),
                          tmp_path / "b").run()
    assert res["outcome"] == "found" and res["culprit"]["commit"] == hashes[5]
    skipped = [s for s in res["steps"] if s["verdict"] == "skip"]
    assert skipped and skipped[0]["revision"]["commit"] == hashes[3]
    assert "build" in skipped[0]["reason"] and "broken" in skipped[0]["reason"]


def test_skips_next_to_the_culprit_leave_it_ambiguous(tree, fragment, machines, tmp_path,
                                                      capsys):
    base = git(tree, "rev-parse", "HEAD").strip()
    hashes = commits(tree, 4, bad_at=3, broken={2, 3})
    code = main(["bisect", "--tree", str(tree), "--good", base, "--bad", "master",
                 "--fragment", fragment, "--workload", WORKLOAD, "--finding",
                 "unpin_user_pages", "-o", str(tmp_path / "b")])
    out = capsys.readouterr().out
    assert code == 1
    assert "no single first bad revision" in out
    for h in hashes[1:3]:
        assert h in out


def test_series_bisection_names_the_patch(tree, fragment, machines, tmp_path):
    git(tree, "checkout", "-qb", "work")
    commits(tree, 8, bad_at=3)
    out = tmp_path / "series"
    git(tree, "format-patch", "-q", "--cover-letter", "-o", str(out), "master..work")
    git(tree, "checkout", "-q", "master")
    res = Bisection.start(setup(tree, fragment, series=(str(out),)), tmp_path / "b").run()
    assert res["outcome"] == "found" and res["culprit"]["id"] == "3/8"
    assert res["culprit"]["subject"] == "mm: change 3" and res["culprit"]["upto"] == 3
    assert [s["revision"]["id"] for s in res["steps"]] == ["8/8", "base", "4/8", "2/8", "3/8"]
    # moving between prefixes: prefix 2 after prefix 4 recompiles swap.c and
    # gup.c (patches 3 and 4 undone), never fork.c
    st = res["steps"]
    runs = {r.index: r for r in load(tmp_path / "b").runs}
    log = (Path(runs[2].kernel["artifact"]) / "build.log").read_text()
    assert "CC      mm/swap.o" in log and "CC      kernel/fork.o" not in log
    assert st[0]["built"] and st[1]["revision"]["id"] == "base"


def test_a_series_whose_end_does_not_apply_cannot_be_bisected_to_its_end(
        tree, fragment, machines, tmp_path, capsys):
    git(tree, "checkout", "-qb", "work")
    commits(tree, 4, bad_at=2)
    out = tmp_path / "series"
    git(tree, "format-patch", "-q", "-o", str(out), "master..work")
    git(tree, "checkout", "-q", "master")
    last = sorted(out.glob("0004-*"))[0]
    last.write_text(last.read_text().replace(" /* change 3 */", " /* no such line */"))
    code = main(["bisect", "--tree", str(tree), "--series", str(out), "--fragment", fragment,
                 "--workload", WORKLOAD, "--finding", "unpin", "-o", str(tmp_path / "b"),
                 "--json"])
    res = json.loads(capsys.readouterr().out)
    assert code == 1 and res["outcome"] == "untestable"
    assert "patch 4/4 does not apply" in res["message"]
    assert [s["verdict"] for s in res["steps"]] == ["skip"]
    # the prefixes that apply can be bisected: patches 1..3
    code = main(["bisect", "--tree", str(tree), "--series", str(out), "--bad", "3",
                 "--fragment", fragment, "--workload", WORKLOAD, "--finding", "unpin",
                 "-o", str(tmp_path / "b3"), "--json"])
    res = json.loads(capsys.readouterr().out)
    assert code == 0 and res["culprit"]["id"] == "2/4"


def test_a_target_absent_on_the_bad_endpoint_is_a_clear_verdict(tree, fragment, machines,
                                                                 tmp_path, capsys):
    base = git(tree, "rev-parse", "HEAD").strip()
    commits(tree, 4, bad_at=99)
    code = main(["bisect", "--tree", str(tree), "--good", base, "--bad", "master",
                 "--fragment", fragment, "--workload", WORKLOAD, "--finding",
                 "unpin_user_pages", "-o", str(tmp_path / "b")])
    out = capsys.readouterr().out
    assert code == 1
    assert "the target does not appear on the bad endpoint" in out
    assert "did not appear in 1 run(s)" in out


def test_swapped_endpoints_proven_by_the_runs(tree, fragment, machines, tmp_path, capsys):
    """A target already on the good endpoint: stop, say so, name both runs."""
    base = git(tree, "rev-parse", "HEAD").strip()
    (tree / "mm" / "gup.c").write_text((tree / "mm" / "gup.c").read_text() + f"/* {MARK} */\n")
    git(tree, "commit", "-qam", "marked")
    good = git(tree, "rev-parse", "HEAD").strip()
    commits(tree, 3, bad_at=99)
    del base
    code = main(["bisect", "--tree", str(tree), "--good", good, "--bad", "master",
                 "--fragment", fragment, "--workload", WORKLOAD, "--finding",
                 "unpin_user_pages", "-o", str(tmp_path / "b")])
    out = capsys.readouterr().out
    assert code == 1 and "appears on the good endpoint already" in out


@pytest.mark.parametrize("good,bad,words", [
    ("master", "BASE", "swapped"),
    ("BASE", "BASE", "same commit"),
    ("nope", "master", "revision 'nope' does not exist"),
    ("BASE", "nope", "revision 'nope' does not exist"),
    ("BASE", "orphan", "unrelated"),
])
def test_bad_revisions_are_bad_input_before_anything_runs(tree, fragment, machines, tmp_path,
                                                          capsys, good, bad, words):
    base = git(tree, "rev-parse", "HEAD").strip()
    commits(tree, 3, bad_at=2)
    git(tree, "checkout", "-q", "--orphan", "orphan")
    git(tree, "commit", "-qam", "unrelated root")
    git(tree, "checkout", "-q", "master")
    args = ["bisect", "--tree", str(tree), "--good", good.replace("BASE", base),
            "--bad", bad.replace("BASE", base), "--fragment", fragment, "--workload",
            WORKLOAD, "--finding", "x", "-o", str(tmp_path / "b")]
    assert main(args) == 3
    assert words in capsys.readouterr().err
    assert machines.machines == [] and not (tmp_path / "b").exists()


def test_good_on_a_merged_branch_is_bad_input(tree, fragment, machines, tmp_path):
    git(tree, "checkout", "-qb", "side")
    commits(tree, 2, bad_at=99)
    side = git(tree, "rev-parse", "HEAD").strip()
    git(tree, "checkout", "-q", "master")
    (tree / "kernel" / "fork.c").write_text("/* main */\n")
    git(tree, "commit", "-qam", "main line")
    git(tree, "merge", "-q", "--no-edit", "side")
    with pytest.raises(UserError, match="first-parent line"):
        Bisection.start(setup(tree, fragment, good=side, bad="master"), tmp_path / "b")


@pytest.mark.parametrize("argv,words", [
    (["--workload", WORKLOAD], "--finding TEXT"),
    (["--finding", "x"], "--job JOB"),
    (["--finding", "x", "--workload", WORKLOAD, "--repeat", "0"], "--repeat"),
    (["--finding", "x", "--workload", WORKLOAD, "--repeat", "5", "--max-runs", "2"],
     "--max-runs"),
    (["--finding", "x", "--workload", WORKLOAD, "--confidence", "1"], "--confidence"),
    (["--finding", "x", "--workload", "shell:[1, 2]"], "must be a mapping"),
    (["--finding", "x", "--workload", "nosuch"], "nosuch"),
    (["--finding", "re:(", "--workload", WORKLOAD], "regular expression"),
    (["--finding", "x", "--workload", WORKLOAD, "--repeat", "3", "--endpoints", "as-needed"],
     "--endpoints as-needed is for a deterministic target"),
])
def test_bad_arguments(tree, fragment, machines, tmp_path, capsys, argv, words):
    base = git(tree, "rev-parse", "HEAD").strip()
    commits(tree, 2, bad_at=2)
    assert main(["bisect", "--tree", str(tree), "--good", base, "--bad", "master",
                 "--fragment", fragment, *argv]) == 3
    assert words in capsys.readouterr().err


def test_ctrl_c_leaves_a_state_that_resumes(tree, fragment, machines, tmp_path, monkeypatch,
                                            capsys):
    base = git(tree, "rev-parse", "HEAD").strip()
    hashes = commits(tree, 8, bad_at=6)
    real = runner.run_job
    calls = []

    def interrupted_third(job, out, **kw):
        calls.append(out)
        if len(calls) == 3:
            (Path(out)).mkdir(parents=True)
            (Path(out) / "partial").write_text("")
            raise KeyboardInterrupt
        return real(job, out, **kw)
    monkeypatch.setattr(runner, "run_job", interrupted_third)
    code = main(["bisect", "--tree", str(tree), "--good", base, "--bad", "master",
                 "--fragment", fragment, "--workload", WORKLOAD, "--finding",
                 "unpin_user_pages", "-o", str(tmp_path / "b")])
    assert code == 130
    assert "lab bisect --resume" in capsys.readouterr().err
    st = load(tmp_path / "b")
    assert st.status == "interrupted" and len(st.runs) == 2
    assert json.loads((tmp_path / "b" / "summary.json").read_text())["state"] == "interrupted"
    code = main(["bisect", "--resume", str(tmp_path / "b"), "--json"])
    res = json.loads(capsys.readouterr().out)
    assert code == 0 and res["culprit"]["commit"] == hashes[5]
    assert not (tmp_path / "b" / res["steps"][2]["run_dirs"][0] / "partial").exists()
    assert res["runs"] == len(res["steps"])
    # resuming a finished bisection prints its result again
    assert main(["bisect", "--resume", str(tmp_path / "b")]) == 0
    assert "first bad revision" in capsys.readouterr().out


def test_resume_refuses_new_revisions_or_targets(tmp_path, capsys):
    assert main(["bisect", "--resume", str(tmp_path), "--finding", "x"]) == 3
    assert "drop --finding" in capsys.readouterr().err
    assert main(["bisect", "--resume", str(tmp_path)]) == 3
    assert "no bisect.json" in capsys.readouterr().err


def test_a_run_that_fails_for_the_host_is_retried_not_counted(tree, fragment, fake_lab,
                                                              monkeypatch, tmp_path):
    f = ByContent(dies=1)
    monkeypatch.setattr(runner, "default_machine_factory", f)
    base = git(tree, "rev-parse", "HEAD").strip()
    commits(tree, 2, bad_at=2)
    b = Bisection.start(setup(tree, fragment, good=base, bad="master"), tmp_path / "b")
    res = b.run()
    assert res["outcome"] == "found" and res["retried_runs"] == 1
    first = b.state.runs[0]
    label = b.state.revisions[2].label
    assert first.retried == [f"01-{label}/b-step01-r1-infra1"]
    assert first.run_dir == f"01-{label}/b-step01-r1"
    assert (b.dir / first.retried[0] / "summary.json").exists()


def test_a_host_that_keeps_failing_is_an_infrastructure_error_that_resumes(
        tree, fragment, fake_lab, monkeypatch, tmp_path):
    f = ByContent(dies=3)
    monkeypatch.setattr(runner, "default_machine_factory", f)
    base = git(tree, "rev-parse", "HEAD").strip()
    commits(tree, 2, bad_at=2)
    b = Bisection.start(setup(tree, fragment, good=base, bad="master"), tmp_path / "b")
    with pytest.raises(InfraError, match="--resume"):
        b.run()
    assert load(b.dir).status == "failed" and len(load(b.dir).infra) == 3
    monkeypatch.setattr(runner, "default_machine_factory", ByContent())
    assert Bisection.resume(b.dir).run()["outcome"] == "found"


def test_flaky_target_is_found_with_a_stated_confidence(tree, fragment, fake_lab, monkeypatch,
                                                        tmp_path):
    monkeypatch.setattr(runner, "default_machine_factory", ByContent(rate=0.5, seed=3))
    base = git(tree, "rev-parse", "HEAD").strip()
    hashes = commits(tree, 4, bad_at=3)
    s = setup(tree, fragment, good=base, bad="master",
              policy=Policy(repeat=3, max_runs=12, confidence=0.9))
    res = Bisection.start(s, tmp_path / "b").run()
    assert res["reproduction"]["flaky"]
    assert res["reproduction"]["bad_endpoint_runs"] == 12
    assert res["culprit"]["commit"] == hashes[2]
    assert res["outcome"] in ("found", "low-confidence")
    if res["outcome"] == "found":
        assert res["confidence"] >= 0.9


def test_resume_with_more_runs_goes_on_from_low_confidence(tree, fragment, fake_lab,
                                                           monkeypatch, tmp_path):
    monkeypatch.setattr(runner, "default_machine_factory", ByContent(rate=0.4, seed=1))
    base = git(tree, "rev-parse", "HEAD").strip()
    commits(tree, 4, bad_at=3)
    s = setup(tree, fragment, good=base, bad="master",
              policy=Policy(repeat=2, max_runs=3, confidence=0.95))
    b = Bisection.start(s, tmp_path / "b")
    res = b.run()
    if res["outcome"] != "low-confidence":
        pytest.skip(f"this seed ended {res['outcome']}")
    assert res["max_runs_needed"] > 3 and res["exit_code"] == 1
    more = Bisection.resume(b.dir, policy=lambda old: Policy(old.repeat, 8, old.confidence))
    res2 = more.run()
    assert res2["runs"] > res["runs"] and res2["outcome"] in ("found", "low-confidence")


def test_job_with_several_cells_needs_a_cell(tree, fragment, machines, tmp_path):
    j = tmp_path / "m.yaml"
    j.write_text("kernel: distro\nimage: debian-bookworm\nworkloads:\n"
                 "  a: [{shell: {command: run-the-test, case: t}}]\n"
                 "  b: [{shell: {command: other, case: u}}]\n")
    base = git(tree, "rev-parse", "HEAD").strip()
    commits(tree, 2, bad_at=2)
    with pytest.raises(UserError, match="choose one with --cell"):
        Bisection.start(setup(tree, fragment, good=base, bad="master", workloads=(),
                              job=str(j)), tmp_path / "b")
    res = Bisection.start(setup(tree, fragment, good=base, bad="master", workloads=(),
                                job=str(j), cell="default.a"), tmp_path / "b").run()
    assert res["outcome"] == "found"


def test_workload_argument_parsing():
    assert driver.parse_workload_arg("fio") == "fio"
    assert driver.parse_workload_arg("gup_test:{size_mb: 1}") == {"gup_test": {"size_mb": 1}}
    with pytest.raises(UserError, match="not YAML"):
        driver.parse_workload_arg("fio:{a: [}")


def test_a_runs_wall_time_is_split_into_build_boot_workload_and_the_rest(tmp_path):
    art = tmp_path / "art"
    art.mkdir()
    (art / "metadata.json").write_text('{"make_seconds": 41.5, "tree_commit": "abc"}')
    summary = {"suites": [{"properties": {"kernel_resolve_s": "60.0", "kernel_cache": "built",
                                          "kernel_origin": str(art),
                                          "kernel_release": "6.1.0"},
                           "cases": [{"name": "apply", "classname": "kernel", "duration": 1},
                                     {"name": "build", "classname": "kernel", "duration": 59},
                                     {"name": "boot", "classname": "boot", "duration": 30.0},
                                     {"name": "gup_test.pin-basic.anon",
                                      "classname": "gup_test", "duration": 2.0},
                                     {"name": "pin-balance", "classname": "gup_test",
                                      "duration": 0.5}]}]}
    secs, kernel = driver.timings(summary, 110.0)
    assert secs == {"total": 110.0, "build": 60.0, "boot": 30.0, "workload": 2.5,
                    "other": 17.5, "make": 41.5}
    assert kernel == {"cache": "built", "release": "6.1.0", "artifact": str(art),
                      "commit": "abc"}


def test_one_lab_at_a_time_runs_a_bisection(tree, fragment, machines, tmp_path):
    import fcntl
    base = git(tree, "rev-parse", "HEAD").strip()
    commits(tree, 2, bad_at=2)
    b = Bisection.start(setup(tree, fragment, good=base, bad="master"), tmp_path / "b")
    with open(b.dir / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(UserError, match="another lab bisect is running"):
            Bisection.resume(b.dir).run()
    assert b.run()["outcome"] == "found"
