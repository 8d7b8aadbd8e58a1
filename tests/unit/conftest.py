"""Fixtures shared by the unit tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .kerneltree import FAKE, git


@pytest.fixture(autouse=True)
def _own_history(tmp_path, monkeypatch):
    """No unit test reads or writes the user's history store."""
    monkeypatch.setenv("LAB_HISTORY", str(tmp_path / "history.sqlite"))


@pytest.fixture
def tree(tmp_path, monkeypatch) -> Path:
    """A git repository of the fake tree, with lab's cache in tmp_path."""
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / "cache"))
    t = tmp_path / "linux"
    shutil.copytree(FAKE, t)
    git(t, "init", "-q", "-b", "master")
    git(t, "add", "-A")
    git(t, "commit", "-qm", "base")
    return t


def make_artifact(d: Path, release: str) -> Path:
    """A kernel artifact directory as `lab build` leaves it (enough to boot a
    FakeMachine): a bzImage and metadata.json naming the release."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "bzImage").write_bytes(b"not a kernel")
    (d / "metadata.json").write_text(f'{{"release": "{release}"}}')
    return d


@pytest.fixture
def fake_lab(tmp_path, monkeypatch):
    """The runner with lab's FakeMachine and a fake image (no qemu, no
    mmdebstrap); returns the factory, whose .script says what goes wrong."""
    from lab import runner
    from lab.image.build import Image
    from lab.vm.fake import FakeMachineFactory
    factory = FakeMachineFactory()
    monkeypatch.setattr(runner, "default_machine_factory", factory)
    monkeypatch.setattr(runner, "cached_image", lambda recipe: Image(
        "fake", "k", tmp_path / "rootfs", tmp_path / "key", "ssh-ed25519 AAAA", tmp_path))
    monkeypatch.setenv("LAB_RUNS_DIR", str(tmp_path / "runs"))
    return factory


def need(binary: str, package: str) -> str:
    """The path of a host tool a test runs. Missing is a failure, not a
    skip: ansible/bootstrap.sh installs `package` (ansible/packages.txt),
    and CI runs it, so a missing tool means a broken setup."""
    path = shutil.which(binary)
    if path is None:
        pytest.fail(f"{binary} is missing: install the Debian package {package} "
                    "(ansible/bootstrap.sh does, and CI runs it)")
    return path
