"""The fake kbuild tree the kernel unit tests share, and a git helper
(the `tree` fixture that makes a repository of it is in conftest.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from lab.kernel.source import git_env

FAKE = Path(__file__).parent / "data" / "fakekernel"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env=git_env()).stdout
