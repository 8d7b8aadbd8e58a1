"""Fixtures shared by the unit tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .kerneltree import FAKE, git


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
