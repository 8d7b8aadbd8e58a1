"""Pin leaks traced to their call site, for real: linux-source-6.1 plus the
fixture series tests/data/series/pin-leak-fixture (ib_umem_get() leaks one
pin per MR through ib_umem_fixture_leak_pin()), built by lab, booted under
QEMU, the rdma workload run through the runner. The pin-leak case must
name the planted call site with the right count.

The kernel is built in the build directory of test_kernel_build.py's lab +
debug kernel (same source, same fragments), so after that cold build this
costs one incremental build (~2 min: umem.o and the release-string objects)
and one boot; an unchanged re-run finds the artifact cached."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from lab.job import load_job
from lab.kernel.api import build_kernel
from lab.kernel.spec import BuildSpec
from lab.runner import run_job

pytestmark = [pytest.mark.integration, pytest.mark.kernelbuild]

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "data" / "series" / "pin-leak-fixture"
SITE = "ib_umem_fixture_leak_pin <- ib_umem_get"


@pytest.fixture(scope="module")
def leaky_kernel():
    built = build_kernel(BuildSpec(linux_source=True, series=(str(FIXTURE),)), progress=False)
    assert built.ok, "\n".join(s.details or s.message for s in built.steps)
    return built.artifact_dir


def test_the_leak_is_traced_to_the_planted_call_site(leaky_kernel, image, tmp_path):
    job = tmp_path / "leak.yaml"
    job.write_text(f"""name: pinleak
kernel: {{artifact: {leaky_kernel}}}
image: {image.name}
machine: {{memory_mb: 2048, cpus: 2, nvme_mb: 1024}}
timeouts: {{boot: 240, workload: 600}}
hung_task_timeout: 20
workloads:
  - rdma: {{targets: [ext4], duration: 5}}
""")
    out = tmp_path / "out"
    assert run_job(load_job(job), out, live=False) == 1
    cases = json.loads((out / "summary.json").read_text())["suites"][0]["cases"]
    by_name = {c["name"]: c for c in cases}
    assert [c["name"] for c in cases].count("rdma.ext4") == 1    # the rerun is not a verdict
    assert by_name["rdma.ext4"]["status"] == "passed"
    pin = by_name["pin-balance"]
    p = pin["properties"]
    leaked = int(p["pins_acquired"]) - int(p["pins_released"])
    assert leaked == 2, pin["message"]                 # one MR in the server, one in the client
    assert (pin["status"], pin["kind"], p["pintrace"]) == ("failed", "pin-leak", "attributed")
    assert pin["message"].startswith(f"2 pins acquired via {SITE} were never released; "), \
        pin["message"]
    assert p["pintrace_sites"] == f"{SITE}=2" and p["pintrace_unreleased"] == "2"
    rerun = out / p["pintrace_dir"]
    assert (rerun / "trace.txt").stat().st_size > 0
    assert SITE in (rerun / "attribution.txt").read_text()
    traced = json.loads((rerun / "pintrace.json").read_text())
    assert [c["name"] for c in traced["rerun_cases"]] == ["rdma.ext4"]
    assert traced["vmstat_delta"][0] - traced["vmstat_delta"][1] == 2
    # the probes were removed and the tracefs settings put back
    log = (rerun / "commands.log").read_text()
    teardown = log[log.index("$ cd /sys/kernel/tracing || exit 0"):]
    assert "echo -:labpin/grab_page >> kprobe_events" in teardown
    assert re.search(r"^\[exit (-?\d+),", teardown, re.M)[1] == "0"
    print(f"\ntraced rerun took {p['pintrace_s']}s "
          f"(rdma.ext4 itself {by_name['rdma.ext4']['duration']:.1f}s)")
