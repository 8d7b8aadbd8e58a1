"""The real thing: `lab bisect` over the fixture series of eight small patches
on linux-source-6.1 (tests/data/bisect-series), once for the WARN that patch
3/8 adds and once for the pin that patch 4/8 leaks, with gup_test's
pin-basic over 1 MiB (tests/data/bisect-gup.yaml).

The WARN bisection checks the endpoints first (8/8, then the base), then
4/8, 2/8 and 3/8: it builds 8/8, 4/8, 2/8 and 3/8, each an incremental build
in the build directory of linux-source + lab + debug (the base is the cold
build test_kernel_build.py makes, or this test makes first). The pin-leak
one runs with --endpoints as-needed, one binary search over every outcome:
4/8, 1/8, 2/8, 3/8, four steps where endpoints first take five (the issue's
ceil(log2 N) + 1), building only 1/8 and finding the rest in the artifact
cache. 11 min 20 s here for both on top of a warm build directory, when both
checked the endpoints first (the WARN 453 s, the pin leak 227 s); the
figures are printed (pytest -s) and kept in the bisections' directories."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from lab.bisect import report
from lab.cli import main

pytestmark = [pytest.mark.integration, pytest.mark.kernelbuild]

REPO = Path(__file__).resolve().parents[2]
SERIES = REPO / "tests" / "data" / "bisect-series"
JOB = REPO / "tests" / "data" / "bisect-gup.yaml"
LINUX_SOURCE = sorted(Path("/usr/src").glob("linux-source-*.tar.xz"))
PATH = ["8/8", "base", "4/8", "2/8", "3/8"]


def bisect(out: Path, target: list[str], capsys) -> tuple[int, dict, float]:
    start = time.monotonic()
    code = main(["bisect", "--linux-source", "--series", str(SERIES), "--job", str(JOB),
                 *target, "-o", str(out), "--json"])
    seconds = time.monotonic() - start
    res = json.loads(capsys.readouterr().out)
    return code, res, seconds


def figures(name: str, res: dict, seconds: float) -> None:
    """The figures, as lab bisect prints them (pytest -s shows them)."""
    print(f"\n{name}: {seconds:.0f}s wall\n" + report.text(res, name))


@pytest.fixture(scope="module")
def warn(image, tmp_path_factory) -> Path:
    """Where both bisections write (the image is built or found first)."""
    assert LINUX_SOURCE, "no /usr/src/linux-source-*.tar.xz (ansible/bootstrap.sh installs it)"
    return tmp_path_factory.mktemp("bisect")


def test_bisecting_the_warn_names_patch_3(warn, capsys):
    code, res, seconds = bisect(warn / "warn", ["--finding", "gup_test_ioctl"], capsys)
    figures("WARN", res, seconds)
    assert code == 0, res
    assert res["outcome"] == "found" and res["confidence"] == 1.0
    c = res["culprit"]
    assert c["id"] == "3/8" and c["subject"] == "mm/gup_test: warn when a pin test pinned no page"
    assert c["author"] == "lab fixture <lab@localhost>"
    assert "WARNING in gup_test_ioctl" in res["evidence"][0]
    assert [s["revision"]["id"] for s in res["steps"]] == PATH
    assert [s["verdict"] for s in res["steps"]] == ["bad", "good", "bad", "good", "bad"]
    # the endpoint's runs show the leak too: noted, not counted
    (warn / "warn-seconds").write_text(f"{seconds:.0f}\n")
    junit = (warn / "warn" / "junit.xml").read_text()
    assert 'name="first-bad"' in junit and "3/8" in junit


def test_bisecting_the_pin_leak_as_needed_names_patch_4_in_four_steps(warn, capsys):
    code, res, seconds = bisect(warn / "leak", ["--pin-leak", "--endpoints", "as-needed"],
                                capsys)
    figures("pin leak", res, seconds)
    assert code == 0, res
    c = res["culprit"]
    assert res["outcome"] == "found" and c["id"] == "4/8"
    assert c["subject"] == "mm/gup_test: unpin the pages of a pin test one at a time"
    assert "1 not released" in res["evidence"][0]
    # ceil(log2 8) + 1 = 4 steps, no endpoint among them: the culprit ran
    # bad and its parent 3/8 good, which is the proof
    assert [s["revision"]["id"] for s in res["steps"]] == ["4/8", "1/8", "2/8", "3/8"]
    assert [s["verdict"] for s in res["steps"]] == ["bad", "good", "good", "good"]
    assert res["build_and_test_steps"] == 4
    if (warn / "warn-seconds").exists():
        # the WARN bisection built every kernel this one needs but 1/8
        assert [s["revision"]["id"] for s in res["steps"] if s["built"]] in (["1/8"], []), \
            res["steps"]
