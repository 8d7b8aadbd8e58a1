"""lab as a user installs it: the wheel built from this checkout, installed
into a fresh venv, run from another directory, finds its recipes, fragments,
jobs and guest helpers (package data) and plans real work. No boot: a boot
from the wheel runs the same code as tests/integration/test_boot.py, and the
files a boot needs from the package are checked here one by one.

Needs the network (pip resolves the dependencies and the build backend) and
the lab host's packages (qemu, the distro kernel, linux-source)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# what the wheel is built from: the package (its lab/data links included), the
# folders they point to, and the metadata's files; never build/ or egg-info
SOURCES = ("lab", "images", "jobs", "kernels", "ansible", "pyproject.toml", "README.md")


def sh(*argv, cwd: Path, timeout: float = 300, env: dict | None = None):
    r = subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True,
                       timeout=timeout, env=env)
    assert r.returncode == 0, f"{argv} exited {r.returncode}:\n{r.stdout[-2000:]}{r.stderr[-3000:]}"
    return r


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A fresh venv (no system site-packages) with lab installed from its wheel."""
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"
    for name in SOURCES:
        p = REPO / name
        if p.is_dir():
            shutil.copytree(p, src / name, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            src.mkdir(exist_ok=True)
            shutil.copy2(p, src / name)
    pip = [sys.executable, "-m", "pip"]
    sh(*pip, "wheel", "-q", "--no-deps", "-w", tmp / "dist", src, cwd=tmp)
    [wheel] = (tmp / "dist").glob("lab-*.whl")
    sh(sys.executable, "-m", "venv", "--without-pip", tmp / "venv", cwd=tmp)
    sh(*pip, "--python", tmp / "venv" / "bin" / "python", "install", "-q", wheel, cwd=tmp)
    return tmp / "venv"


@pytest.fixture
def elsewhere(tmp_path) -> Path:
    """A directory with no jobs/, images/ or kernels/ in it."""
    d = tmp_path / "elsewhere"
    d.mkdir()
    return d


def lab(venv: Path, *args: str, cwd: Path, timeout: float = 600):
    env = dict(os.environ, LAB_RUNS_DIR=str(cwd / "runs"))
    for var in ("PYTHONPATH", "LAB_IMAGES_DIR", "LAB_FRAGMENTS_DIR", "LAB_JOBS_DIR"):
        env.pop(var, None)
    return sh(venv / "bin" / "lab", *args, cwd=cwd, timeout=timeout, env=env)


def installed_package(venv: Path) -> Path:
    r = sh(venv / "bin" / "python", "-c", "import lab, os; print(os.path.dirname(lab.__file__))",
           cwd=venv)
    return Path(r.stdout.strip())


def test_the_wheel_holds_every_file_of_the_package_and_of_lab_data(venv):
    pkg = installed_package(venv)
    assert venv in pkg.parents and not pkg.is_symlink()
    tracked = subprocess.run(["git", "ls-files", "lab", "images", "jobs", "kernels", "ansible"],
                             cwd=REPO,
                             capture_output=True, text=True, check=True).stdout.split()
    want = set()
    for rel in tracked:
        p = Path(rel)
        if p.parts[0] == "lab" and (REPO / p).is_symlink():
            continue                                   # lab/data/<folder>: the links
        want.add(p.relative_to("lab") if p.parts[0] == "lab" else Path("data") / p)
    missing = sorted(str(w) for w in want if not (pkg / w).is_file())
    assert not missing, f"not in the wheel: {missing}"
    assert not any((pkg / "data" / f).is_symlink()
                   for f in ("images", "kernels", "jobs", "ansible"))


def test_lab_from_the_wheel_runs_from_another_directory(venv, elsewhere):
    pkg = installed_package(venv)
    out = lab(venv, "--version", cwd=elsewhere).stdout
    assert out.startswith("lab ") and f"from {pkg} " in out
    assert "qemu-system-x86_64" in lab(venv, "doctor", cwd=elsewhere).stdout
    argv = lab(venv, "run", "jobs/smoke.yaml", "--dry-run", cwd=elsewhere).stdout
    assert "qemu-system-x86_64" in argv and "-device nvme" in argv
    assert "(1)" in lab(venv, "matrix", "smoke", cwd=elsewhere).stdout
    plan = lab(venv, "build", "--linux-source", "--dry-run", cwd=elsewhere).stdout
    assert f"lab ({pkg / 'data' / 'kernels' / 'fragments' / 'lab.config'})" in plan
    assert "build dir" in plan and "artifact" in plan
    # lab hosts run drives lab's own playbooks: the wheel's copies
    r = sh(venv / "bin" / "python", "-c", "from lab.hostrun import ANSIBLE_DIR as d; "
           "print(d / 'hosts-run.yml')", cwd=elsewhere)
    assert Path(r.stdout.strip()).is_relative_to(pkg) and Path(r.stdout.strip()).is_file()
    r = sh(venv / "bin" / "python", "-c", "from lab.workloads.helpers import source; "
           "print(source('pinstress'))", cwd=elsewhere)
    assert Path(r.stdout.strip()).is_relative_to(pkg)
