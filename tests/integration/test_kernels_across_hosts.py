"""A kernel lab builds is built once, on the controller of `lab hosts run`,
and copied to the host that boots it: the host builds nothing. Runs after
test_kernel_build.py (file order), whose build this reuses from the cache;
alone, it skips rather than spend ~21 minutes building."""

from __future__ import annotations

import json

import pytest

from lab.kernel.api import cached_outcome, plan
from lab.kernel.spec import BuildSpec

from .test_hosts import finish, hosts, lab_hosts_run

JOB = """
name: built-across
image: debian-bookworm
machine: {cpus: 1, memory_mb: 1024, nvme_mb: 256}
timeouts: {boot: 240, workload: 120}
kernels:
  base: {build: {linux_source: true}}
workloads:
  - shell: {command: "uname -r", case: uname}
"""


def test_a_built_kernel_is_copied_not_rebuilt(image, distro, tmp_path):
    hit = cached_outcome(plan(BuildSpec(linux_source=True)))
    if hit is None:
        pytest.skip("no cached build of linux-source: run tests/integration/"
                    "test_kernel_build.py first (this test must not build for 21 minutes)")
    job = tmp_path / "built.yaml"
    job.write_text(JOB)
    out = tmp_path / "run"
    with hosts(image, distro, 1) as hs:
        h = hs.hosts[0]
        code, _, stderr = finish(lab_hosts_run(job, hs.inventory(), out), timeout=900)
        assert code == 0, stderr[-5000:]
        key = hit.artifact.origin.rstrip("/").rsplit("/", 1)[-1]
        assert (h.root / "work" / "kernels" / key / "bzImage").exists()
        assert not (h.root / "cache" / "kbuild").exists()      # nothing built there
    s = json.loads((out / "summary.json").read_text())
    (suite,) = s["suites"]
    assert suite["properties"]["host"] == h.name
    assert {c["name"]: c["status"] for c in suite["cases"]}["uname"] == "passed"
    (uname,) = (out / "hosts" / h.name / "results").rglob("uname.out")
    assert uname.read_text().strip() == hit.artifact.release
