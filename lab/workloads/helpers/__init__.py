"""Small C programs copied into the guest. Each is compiled statically on the
host (so it runs on any guest libc) and cached under lab's cache dir, keyed
by a hash of its source, the compiler and the flags."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ... import proc
from ...errors import InfraError
from ...paths import cache_dir

SOURCE_DIR = Path(__file__).resolve().parent
CFLAGS = ("-static", "-O2", "-pthread", "-Wall")


def source(name: str) -> Path:
    p = SOURCE_DIR / f"{name}.c"
    if not p.exists():
        raise InfraError(f"no helper source {p}")
    return p


def helper_key(src: bytes, compiler: str, flags: tuple[str, ...] = CFLAGS) -> str:
    """The cache key of a compiled helper (pure)."""
    h = hashlib.sha256(src)
    h.update(compiler.encode())
    h.update(" ".join(flags).encode())
    return h.hexdigest()[:16]


def build_helper(name: str, cc: str = "gcc") -> Path:
    """The cached static binary of helper `name`, compiled if needed."""
    src = source(name)
    gcc = proc.which(cc, "gcc")
    version = proc.run([gcc, "--version"], timeout=30).stdout.splitlines()[:1]
    key = helper_key(src.read_bytes(), (version or [gcc])[0])
    out_dir = cache_dir() / "helpers"
    out = out_dir / f"{name}-{key}"
    if out.exists():
        return out
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".{name}-{key}.{os.getpid()}"
    r = proc.run([gcc, *CFLAGS, "-o", str(tmp), str(src)], timeout=300)
    if not r.ok:
        tmp.unlink(missing_ok=True)
        raise InfraError(f"compiling the guest helper {src.name} failed (exit {r.returncode}); "
                         f"a static build needs libc6-dev (libc.a):\n{r.tail(30)}")
    os.replace(tmp, out)
    return out
