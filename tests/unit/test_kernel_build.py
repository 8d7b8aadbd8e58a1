"""build_kernel end to end on the fake kbuild tree: artifacts, metadata,
the artifact cache (a hit runs no make), incremental builds, failures,
BuildSpec validation and the `lab build` subcommand."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pytest

from lab.errors import UserError
from lab.kernel import build as kb
from lab.cli import kernel as command
from lab.kernel import kbuild
from lab.kernel.api import build_kernel
from lab.kernel.spec import BuildSpec
from lab.kernel.outcome import StepState

from .kerneltree import git


@pytest.fixture
def fragment(tmp_path) -> str:
    p = tmp_path / "fake.config"
    p.write_text("CONFIG_DEBUG_FS=y\nCONFIG_GUP_TEST=y\nCONFIG_VIRTIO_BLK=y\n")
    return str(p)


def patch_file(tree: Path, tmp_path: Path, old: str, new: str, path="mm/gup.c") -> str:
    git(tree, "checkout", "-qb", f"p{time.monotonic_ns()}")
    f = tree / path
    f.write_text(f.read_text().replace(old, new))
    git(tree, "commit", "-qam", f"{path}: change")
    out = tmp_path / f"p{time.monotonic_ns()}"
    git(tree, "format-patch", "-q", "-o", str(out), "HEAD~1..HEAD")
    git(tree, "checkout", "-q", "master")
    return str(next(out.glob("*.patch")))


def test_build_writes_the_artifact_layout(tree, fragment):
    o = build_kernel(BuildSpec(tree=tree, fragments=(fragment,)), progress=False)
    assert o.ok, [c.details for c in o.steps]
    d = o.artifact_dir
    for name in ("bzImage", "System.map", ".config", "vmlinux", "gup_test", "build.log"):
        assert (d / name).exists(), name
    assert (d / "modules/lib/modules/6.1.0-fake/modules.dep").exists()
    meta = json.loads((d / "metadata.json").read_text())
    assert meta["state"] == "done" and meta["release"] == "6.1.0-fake"
    assert meta["commit"] == git(tree, "rev-parse", "HEAD").strip()
    assert meta["compiler"].startswith("gcc")
    assert meta["reproduce"]["lab"].startswith("lab build --tree ")
    assert any("make -C" in c and " all" in c for c in meta["reproduce"]["commands"])
    art = o.artifact
    assert art.release == "6.1.0-fake" and art.image == d / "bzImage"
    assert art.modules_dir == d / "modules/lib/modules/6.1.0-fake"
    assert [c.step for c in o.steps] == ["apply", "build"]
    # the build dir is named by tree and config hash, outside the artifact
    assert o.build_dir.name.startswith("linux-") and (o.build_dir / "vmlinux").exists()


def test_cache_hit_runs_no_make(tree, fragment, monkeypatch):
    first = build_kernel(BuildSpec(tree=tree, fragments=(fragment,)), progress=False)

    def no_make(*a, **kw):
        raise AssertionError("make ran on a cache hit")
    monkeypatch.setattr(kbuild.KBuild, "run", no_make)
    start = time.monotonic()
    hit = build_kernel(BuildSpec(tree=tree, fragments=(fragment,)), progress=False)
    assert time.monotonic() - start < 1.0
    assert hit.cached and hit.artifact_dir == first.artifact_dir and hit.ok


def test_cache_key_changes_with_series_config_commit(tree, fragment, tmp_path):
    base = build_kernel(BuildSpec(tree=tree, fragments=(fragment,)), progress=False)
    p = patch_file(tree, tmp_path, "return 0;", "return 1;")
    patched = build_kernel(BuildSpec(tree=tree, series=(p,), fragments=(fragment,)),
                           progress=False)
    assert patched.artifact_dir != base.artifact_dir
    assert patched.build_dir == base.build_dir          # same tree + config: reused
    meta = json.loads((patched.artifact_dir / "metadata.json").read_text())
    assert meta["series"]["subjects"] == ["[PATCH] mm/gup.c: change"]
    other = tmp_path / "other.config"
    other.write_text(Path(fragment).read_text() + "CONFIG_LOCALVERSION=\"-x\"\n")
    o2 = build_kernel(BuildSpec(tree=tree, fragments=(str(other),)), progress=False)
    assert o2.build_dir != base.build_dir and o2.artifact.release == "6.1.0-fake-x"
    a = kb.artifact_key("t-k", "c1", "s", "gcc 12")
    assert len({a, kb.artifact_key("t-k", "c2", "s", "gcc 12"),
                kb.artifact_key("t-k", "c1", "s", "gcc 13"),
                kb.artifact_key("t-k2", "c1", "s", "gcc 12"),
                kb.artifact_key("t-k", "c1", "s2", "gcc 12")}) == 5


def test_one_patch_is_an_incremental_build(tree, fragment, tmp_path):
    build_kernel(BuildSpec(tree=tree, fragments=(fragment,)), progress=False)
    p = patch_file(tree, tmp_path, "return 0;", "return 1;")
    o = build_kernel(BuildSpec(tree=tree, series=(p,), fragments=(fragment,)), progress=False)
    log = (o.artifact_dir / "build.log").read_text()
    assert "CC      mm/gup.o" in log
    assert "CC      mm/swap.o" not in log and "CC      kernel/fork.o" not in log
    assert "return 1;" in (o.artifact_dir / "vmlinux").read_text()


def test_series_that_does_not_apply_is_a_failed_case(tree, fragment, tmp_path):
    p = patch_file(tree, tmp_path, "return 0;", "return 1;")
    f = tree / "mm/gup.c"
    f.write_text(f.read_text().replace("return 0;", "return 5;"))
    git(tree, "commit", "-qam", "upstream moved on")
    o = build_kernel(BuildSpec(tree=tree, series=(p,), fragments=(fragment,)), progress=False)
    assert not o.ok and o.artifact is None
    apply, build = o.steps
    assert apply.state is StepState.FAILED and "mm/gup.c: change" in apply.message
    assert "mm/gup.c" in apply.details
    assert build.state is StepState.SKIPPED
    meta = json.loads((o.artifact_dir / "metadata.json").read_text())
    assert meta["state"] == "apply-failed"


def test_build_failure_carries_compiler_errors_and_keeps_build_dir(tree, fragment, tmp_path):
    p = patch_file(tree, tmp_path, "return 0;", "#error pin count went negative\n\treturn 0;",
                   path="mm/swap.c")
    o = build_kernel(BuildSpec(tree=tree, series=(p,), fragments=(fragment,)), progress=False)
    assert not o.ok
    build = o.steps[-1]
    assert build.state is StepState.FAILED
    assert "mm/swap.c:2:2: error: pin count went negative" in build.details
    assert build.message.startswith("mm/swap.c:2:2: error")
    assert o.build_dir.is_dir() and str(o.build_dir) in build.details
    assert json.loads((o.artifact_dir / "metadata.json").read_text())["state"] == "failed"
    # a failed build is not a cache hit: fixing nothing and retrying builds again
    again = build_kernel(BuildSpec(tree=tree, series=(p,), fragments=(fragment,)),
                         progress=False)
    assert not again.cached and not again.ok


def test_metadata_is_written_before_make(tree, fragment, monkeypatch):
    seen = {}
    real = kb.run_make

    def spy(k, **kw):
        seen.update(json.loads((kw["log"].parent / "metadata.json").read_text()))
        return real(k, **kw)
    monkeypatch.setattr(kb, "run_make", spy)
    build_kernel(BuildSpec(tree=tree, fragments=(fragment,)), progress=False)
    assert seen["state"] == "building" and seen["config_key"] and seen["build_key"]
    assert seen["fragment_files"][0]["path"] == str(Path(fragment).resolve())


def test_error_lines():
    log = ("  CC      mm/gup.o\nmm/gup.c: In function 'f':\nmm/gup.c:9:3: error: 'x' undeclared\n"
           "    9 |   x = 1;\n      |   ^\nmake[1]: *** [mm/gup.o] Error 1\n  CC      ok.o\n")
    lines = kb.error_lines(log)
    assert lines[:3] == ["mm/gup.c: In function 'f':", "mm/gup.c:9:3: error: 'x' undeclared",
                         "    9 |   x = 1;"]
    assert "CC      ok.o" not in "\n".join(lines)


# --- bad input ----------------------------------------------------------------

def test_tree_that_is_not_a_git_repository(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(UserError, match="is not a git repository"):
        build_kernel(BuildSpec(tree=tmp_path), progress=False)


def test_ref_that_does_not_exist(tree):
    with pytest.raises(UserError, match="ref 'v9.9' does not exist") as e:
        build_kernel(BuildSpec(tree=tree, ref="v9.9"), progress=False)
    assert e.value.field == "ref"


def test_spec_from_dict():
    s = BuildSpec.from_dict({"tree": "/src/linux", "ref": "v6.1", "series": "x.mbox",
                             "fragments": ["lab", "debug"]}, file="jobs/a.yaml", field="kernel")
    assert s == BuildSpec(tree=Path("/src/linux"), ref="v6.1", series=("x.mbox",),
                          fragments=("lab", "debug"))
    s = BuildSpec.from_dict({"linux_source": True}, file="j.yaml", field="kernel")
    assert s.linux_source and s.fragments == ("lab", "debug")


@pytest.mark.parametrize("block, field, words", [
    ({"tree": "/x", "refs": "v1"}, "kernel.refs", "valid: tree"),
    ({"tree": 3}, "kernel.tree", "path string"),
    ({"linux_source": "yes"}, "kernel.linux_source", "true or false"),
    ({"tree": "/x", "fragments": "lab"}, None, None),
    ({"tree": "/x", "fragments": [1]}, "kernel.fragments", "list of strings"),
    ({"tree": "/x", "linux_source": True}, "kernel.tree", "not both"),
    ({}, "kernel.tree", "needs a source"),
    ("tree", "kernel", "mapping"),
])
def test_spec_from_dict_errors(block, field, words):
    if field is None:
        assert BuildSpec.from_dict(block, file="j.yaml", field="kernel").fragments == ("lab",)
        return
    with pytest.raises(UserError) as e:
        BuildSpec.from_dict(block, file="j.yaml", field="kernel")
    assert e.value.file == "j.yaml" and e.value.field == field
    assert words in str(e.value)


# --- the subcommand -------------------------------------------------------------

def parse(argv):
    p = argparse.ArgumentParser(prog="lab")
    command.register(p.add_subparsers(dest="command", required=True))
    return p.parse_args(argv)


def test_lab_build_prints_the_artifact_dir(tree, fragment, capsys):
    args = parse(["build", "--tree", str(tree), "--fragment", fragment, "--no-progress"])
    assert args.func(args) == 0
    out = capsys.readouterr().out.strip()
    assert (Path(out) / "bzImage").exists()


def test_lab_build_failure_prints_compiler_errors(tree, fragment, tmp_path, capsys):
    p = patch_file(tree, tmp_path, "return 0;", "#error broken\n\treturn 0;")
    args = parse(["build", "--tree", str(tree), "--series", p, "--fragment", fragment,
                  "--no-progress"])
    assert args.func(args) == 1
    err = capsys.readouterr().err
    assert "mm/gup.c:4:2: error: broken" in err


def test_lab_build_needs_a_source():
    with pytest.raises(SystemExit):
        parse(["build"])


# --- test-patch -------------------------------------------------------------------

@pytest.fixture
def fake_job(tmp_path, fake_lab):
    """A job with one shell workload, booted on lab's FakeMachine."""
    (tmp_path / "t.yaml").write_text(
        "kernel: distro\nimage: debian-bookworm\n"
        "workloads:\n  - shell: {command: 'echo hi', case: hello}\n")
    return fake_lab


def test_test_patch_runs_the_job_with_the_built_kernel(tree, fragment, tmp_path, fake_job):
    p = patch_file(tree, tmp_path, "return 0;", "return 1;")
    args = parse(["test-patch", "--tree", str(tree), "--series", p, "--fragment", fragment,
                  "--job", str(tmp_path / "t.yaml"), "-o", str(tmp_path / "out"),
                  "--no-progress"])
    assert args.func(args) == 0
    m, = fake_job.machines
    assert (Path(m.cfg.kernel.origin) / "bzImage").exists() and m.cfg.kernel.origin != "distro"
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    (suite,) = summary["suites"]
    assert [c["name"] for c in suite["cases"]][:4] == ["apply", "build", "boot", "hello"]
    assert suite["properties"]["kernel"] == "patched"


def test_test_patch_failure_writes_junit_without_booting(tree, fragment, tmp_path, fake_job):
    p = patch_file(tree, tmp_path, "return 0;", "#error nope\n\treturn 0;")
    args = parse(["test-patch", "--tree", str(tree), "--series", p, "--fragment", fragment,
                  "--job", str(tmp_path / "t.yaml"), "-o", str(tmp_path / "out"),
                  "--no-progress"])
    assert args.func(args) == 1
    assert fake_job.machines == []
    junit = (tmp_path / "out" / "junit.xml").read_text()
    assert 'name="apply"' in junit and 'name="build"' in junit and "error: nope" in junit


def test_test_patch_needs_a_series(tree, fake_job):
    args = parse(["test-patch", "--tree", str(tree), "--job", "t.yaml", "--no-progress"])
    with pytest.raises(UserError, match="--series"):
        args.func(args)


def test_a_kernel_many_cells_need_is_built_once_and_its_baseline_too(
        tree, fragment, tmp_path, fake_lab, monkeypatch):
    """Four boots of a series kernel and two of its baseline: two builds."""
    from lab import runner
    from lab.job import load_job
    from lab.kernel import api
    p = patch_file(tree, tmp_path, "return 0;", "return 1;")
    builds = []
    real = api.build_kernel
    monkeypatch.setattr(api, "build_kernel",
                        lambda spec, **kw: builds.append(spec) or real(spec, **kw))
    job = tmp_path / "m.yaml"
    job.write_text(f"""
image: debian-bookworm
machine: {{cpus: 1, memory_mb: 512}}
kernels:
  base: {{build: {{tree: {tree}, fragments: [{fragment}]}}}}
  series: {{build: {{tree: {tree}, series: {p}, fragments: [{fragment}]}}, baseline: base}}
workloads:
  one: [{{shell: {{command: "true", case: a}}}}]
  two: [{{shell: {{command: "true", case: b}}}}]
matrix: {{exclude: [{{kernel: base, workloads: two}}]}}
repeat: 2
""")
    code = runner.run_job(load_job(job), tmp_path / "out", live=False)
    assert code == 0 and len(builds) == 2
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert len(summary["suites"]) == 6
    assert all(s["cases"][1]["name"] == "build" and s["cases"][1]["status"] == "passed"
               for s in summary["suites"])
    assert len(fake_lab.machines) == 6
    assert {m.cfg.kernel.origin for m in fake_lab.machines} == {
        str(api.plan(b).artifact_dir) for b in builds}
    again = runner.run_job(load_job(job), tmp_path / "out2", live=False)
    assert again == 0 and len(builds) == 2       # an unchanged re-run builds nothing
    s2 = json.loads((tmp_path / "out2" / "summary.json").read_text())
    assert {s["properties"]["kernel_cache"] for s in s2["suites"]} == {"hit"}


def test_ctrl_c_during_a_build_stops_make_and_the_next_build_works(tree, fragment, tmp_path):
    """A real `lab build` process interrupted while make runs (the fake tree,
    patched to take its time): exit 130 at once, no make left, the artifact's
    metadata says interrupted, and the source's lock is free again."""
    import os
    import signal
    import subprocess
    import sys
    # a marker of this test run only: a suite running elsewhere on the host
    # must not be mistaken for this build's make
    marker = f"lab-test-slow-make-{os.getpid()}-{time.monotonic_ns()}"
    slow = patch_file(tree, tmp_path, '@echo "  BUILD   arch/x86/boot/bzImage"',
                      f'@sleep 300 # {marker}', path="Makefile")
    env = dict(os.environ)
    p = subprocess.Popen([sys.executable, "-m", "lab.cli", "build", "--tree", str(tree),
                          "--series", slow, "--fragment", fragment, "--no-progress"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                         cwd=Path(__file__).resolve().parents[2])

    def sleeping():
        return subprocess.run(["pgrep", "-f", marker],
                              capture_output=True, text=True).stdout.split()
    deadline = time.monotonic() + 60
    while not sleeping() and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.1)
    assert sleeping(), "make should be running the slow rule"
    start = time.monotonic()
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=30)
    assert p.returncode == 130 and time.monotonic() - start < 15, err
    assert "Traceback" not in err
    time.sleep(0.5)
    assert sleeping() == []
    metas = [json.loads(m.read_text()) for m in
             (tmp_path / "cache" / "kernels").glob("*/metadata.json")]
    assert any(m["state"] == "failed" and m.get("error") == "interrupted" for m in metas)
    again = build_kernel(BuildSpec(tree=tree, fragments=(fragment,)), progress=False)
    assert again.ok
