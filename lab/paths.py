"""Where lab keeps things: the user cache (images, kernels, build dirs) and
the project root (recipes, jobs, fragments)."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """$LAB_CACHE_DIR, else $XDG_CACHE_HOME/lab, else ~/.cache/lab."""
    base = os.environ.get("LAB_CACHE_DIR")
    if base:
        p = Path(base)
    else:
        p = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lab"
    p.mkdir(parents=True, exist_ok=True)
    return p


def images_dir() -> Path:
    """Where image recipes live: $LAB_IMAGES_DIR or <project>/images."""
    return Path(os.environ.get("LAB_IMAGES_DIR") or PROJECT_ROOT / "images")


def runs_dir() -> Path:
    return Path(os.environ.get("LAB_RUNS_DIR") or Path.cwd() / "runs")
