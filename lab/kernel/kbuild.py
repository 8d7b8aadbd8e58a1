"""How lab calls kbuild: one out-of-tree build directory, -j from the core
count, ccache when present. Every make command lab runs is built here, so the
reproducer recorded in metadata.json is exactly what ran."""

from __future__ import annotations

import os
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from .. import proc

MAKE_TIMEOUT = 4 * 3600


def default_jobs() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        return os.cpu_count() or 1


def default_cc() -> str:
    return "ccache gcc" if shutil.which("ccache") else "gcc"


def compiler_version(cc: str = "gcc") -> str:
    """First line of `gcc --version` (the compiler, not ccache)."""
    r = proc.run([cc.split()[-1], "--version"], timeout=60)
    return r.stdout.splitlines()[0].strip() if r.ok and r.stdout else cc


@dataclass(frozen=True)
class KBuild:
    srctree: Path
    objtree: Path
    jobs: int = field(default_factory=default_jobs)
    cc: str = field(default_factory=default_cc)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.setdefault("CCACHE_DIR", str(Path.home() / ".cache" / "ccache"))
        env["LC_ALL"] = "C"
        env.pop("MAKEFLAGS", None)
        env.pop("MFLAGS", None)
        return env

    def argv(self, *targets: str, variables: dict[str, str] | None = None,
             silent: bool = False, parallel: bool = True) -> list[str]:
        argv = ["make", "-C", str(self.srctree), f"O={self.objtree}"]
        if silent:
            argv.append("-s")
        if parallel:
            argv.append(f"-j{self.jobs}")
        argv.append(f"CC={self.cc}")
        for k, v in (variables or {}).items():
            argv.append(f"{k}={v}")
        argv.extend(targets)
        return argv

    def run(self, *targets: str, variables: dict[str, str] | None = None,
            log: Path | None = None, echo: IO | None = None, silent: bool = False,
            parallel: bool = True, timeout: float = MAKE_TIMEOUT) -> proc.Result:
        self.objtree.mkdir(parents=True, exist_ok=True)
        return proc.run(self.argv(*targets, variables=variables, silent=silent,
                                  parallel=parallel),
                        timeout=timeout, env=self.env(), log=log, echo=echo)

    def release(self) -> str:
        r = self.run("kernelrelease", silent=True, parallel=False, timeout=300)
        return r.stdout.strip().splitlines()[-1] if r.ok and r.stdout.strip() else ""


def shell_line(argv: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)


def linker_version() -> str:
    """First line of `ld --version`: binutils also shapes the binary."""
    r = proc.run(["ld", "--version"], timeout=60)
    return r.stdout.splitlines()[0].strip() if r.ok and r.stdout else "ld"
