"""KCIDB export: a run of a base kernel and a patched one (through the fake
machine) becomes a report that kcidb-io's current schema accepts, with the
commit and the KCIDB patchset hash of each kernel."""

import hashlib
import json

import kcidb_io
import pytest

from lab.cli import main
from lab.job import load_job
from lab.kcidb import convert, case_path
from lab.kernel.series import Patch, Series
from lab.runner import run_job
from lab.vm.fake import FakeScript

COMMIT = "05c3f37f43479aece745951a03faad38fdd266c7"


def artifact(d, release, key, series=None):
    d.mkdir(parents=True)
    (d / "bzImage").write_bytes(b"x")
    (d / "build.log").write_text("  CC mm/gup.o\n")
    (d / ".config").write_text("CONFIG_GUP_TEST=y\n")
    meta = {"release": release, "commit": COMMIT, "key": key, "config_key": "aa277909b667cf79",
            "fragments": ["lab", "debug"], "compiler": "gcc 12.2.0", "make_seconds": 110.7,
            "started": "2026-11-30T01:05:28+0000",
            "source": {"kind": "linux-source", "origin": "/usr/src/linux-source-6.1.tar.xz"}}
    if series:
        (d / "patches").mkdir()
        (d / "patches" / "0001.patch").write_bytes(series.patches[0].raw)
        meta["series"] = {"hash": series.hash, "subjects": series.subjects,
                          "patchset_hash": series.patchset_hash}
    (d / "metadata.json").write_text(json.dumps(meta))
    return d


def test_patchset_hash_is_kcidbs():
    raw = b"From 0 Mon\nSubject: [PATCH] mm: x\n\n---\ndiff --git a/x b/x\n"
    s = Series((Patch("[PATCH] mm: x", "mm: x", None, None, 1, "f", raw, b"diff"),),
               (), "h")
    line = hashlib.sha256(raw).hexdigest() + "\n"      # sha256sum *.patch | cut -c-64
    assert s.patchset_hash == hashlib.sha256(line.encode()).hexdigest()


def test_case_paths_are_what_kcidb_accepts():
    assert case_path("rdma", "rdma.ext4") == "lab.rdma.rdma.ext4"
    assert case_path("shell", "WARNING in unpin_user_pages") == \
        "lab.shell.WARNING_in_unpin_user_pages"
    assert case_path("", "") == "lab._"


@pytest.fixture
def run_dir(tmp_path, fake_lab):
    raw = b"From 0 Mon\nSubject: [PATCH 1/1] mm/gup: a fix\n\n---\ndiff --git a/mm/gup.c\n"
    series = Series((Patch("[PATCH 1/1] mm/gup: a fix", "mm/gup: a fix", 1, 1, 1, "p", raw,
                           b"diff"),), ("p",), "8e1f8cfac9bf5ea1")
    base = artifact(tmp_path / "base", "6.1-base", "bd81b2a0c2a1e2d68195")
    patched = artifact(tmp_path / "patched", "6.1-patched", "ece1d11af56f69114f61", series)
    job = tmp_path / "j.yaml"
    job.write_text(f"""
name: j
image: debian-bookworm
machine: {{cpus: 1, memory_mb: 1024}}
kernels:
  base: {{artifact: {base}}}
  series: {{artifact: {patched}, baseline: base}}
workloads:
  - shell: {{command: "first-step", case: one}}
  - shell: {{command: "second-step", case: two}}
""")
    fake_lab.scripts["6.1-patched"] = FakeScript(warn_on="second-step")
    out = tmp_path / "out"
    run_job(load_job(job), out, live=False)
    return out


def test_a_run_exports_as_valid_kcidb(run_dir, capsys):
    summary = json.loads((run_dir / "summary.json").read_text())
    report = convert(summary, run_dir)
    kcidb_io.schema.LATEST.validate(report)          # raises when it is not valid
    [c_base, c_series] = sorted(report["checkouts"], key=lambda c: "patchset_files" in c)
    assert c_base["git_commit_hash"] == COMMIT and c_base["patchset_hash"] == ""
    assert len(c_series["patchset_hash"]) == 64 and c_series["patchset_files"]
    assert {b["id"] for b in report["builds"]} == {"lab:bd81b2a0c2a1e2d68195",
                                                   "lab:ece1d11af56f69114f61"}
    tests = report["tests"]
    assert len({t["id"] for t in tests}) == len(tests)
    series_build = "lab:ece1d11af56f69114f61"
    warn = [t for t in tests if t["build_id"] == series_build and t["status"] == "FAIL"]
    assert any(t["path"].startswith("lab.shell.WARNING_in_unpin_user_pages") for t in warn)
    assert all(t["start_time"] and "duration" in t for t in tests)
    # the CLI writes the same
    assert main(["export", "kcidb", str(run_dir), "-o", str(run_dir / "kcidb.json")]) == 0
    assert json.loads((run_dir / "kcidb.json").read_text()) == report


def test_a_bad_origin_is_bad_input(run_dir, capsys):
    assert main(["export", "kcidb", str(run_dir), "--origin", "Not Valid"]) == 3
    assert "--origin" in capsys.readouterr().err
