"""One kselftest program built on the host from the tree a kernel was built
from, linked statically, cached by what the build reads.

    artifact metadata.json: source.tree_id + tree_commit
      -> lab's repository of that source (<cache>/src/<tree_id>, lab/kernel/source.py)
      -> key: the git tree ids, at that commit, of what the build reads
         (tools/, the uapi headers and syscall tables, scripts/, Makefile,
         mm/gup_test.h) + target + test + compiler
      -> <cache>/kselftests/<key>/<test>, or:
         git archive of those paths (the working tree is never touched: builds
         move it between commits) -> make headers_install into
         <cache>/kselftests/headers-<key> (cached by the uapi inputs)
         -> make -C tools/testing/selftests/<target> OUTPUT=... LDFLAGS=-static
            KHDR_INCLUDES=-isystem <headers> <OUTPUT>/<test>

Two commits of a series that differ only in mm/gup.c share one build. A
distro kernel has no tree: source_of() says so, and the kselftest workload
turns that into a skipped case. Returns SelftestBuild (the binary, or why
not, and the commands that ran); raises InfraError only when git breaks.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .. import proc
from ..paths import cache_dir, cache_lock
from .artifact import KernelArtifact
from .build import error_lines
from .kbuild import compiler_version, shell_line
from .source import git, src_root

SELFTESTS = "tools/testing/selftests"
# what the build reads: the selftests and tools headers, headers_install's inputs
HEADER_PATHS = ("Makefile", "scripts", "include/uapi", "arch/x86/include/uapi",
                "arch/x86/entry/syscalls")
KEY_PATHS = (*HEADER_PATHS, "tools", "mm/gup_test.h")
# what is exported for it: the top-level Makefile needs include/ and arch/x86 whole
ARCHIVE_PATHS = ("Makefile", "scripts", "include", "arch/x86", "tools", "usr",
                 "mm/gup_test.h")
MAKE_TIMEOUT = 900


@dataclass(frozen=True)
class SelftestSource:
    """Where a kernel's kselftests come from: lab's repository of its source,
    at the commit it was built from."""

    repo: Path
    commit: str
    tree_id: str

    def describe(self) -> str:
        return f"{self.tree_id} at {self.commit[:12]}"


@dataclass
class SelftestBuild:
    binary: Path | None
    error: str = ""                     # one line: why there is no binary
    details: str = ""                   # make's error lines, the log's place
    commands: list[str] = field(default_factory=list)
    cached: bool = False


def source_of(kernel: KernelArtifact | None) -> SelftestSource | str:
    """The source a kernel was built from, or (a string) why there is none."""
    if kernel is None or kernel.origin == "distro":
        return ("needs a kernel built by lab (a `build:` or `artifact:` kernel): a distro "
                "kernel has no source tree to build kselftests from")
    meta_path = Path(kernel.origin) / "metadata.json"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as e:
        return f"cannot read {meta_path}: {e}"
    src = meta.get("source") if isinstance(meta.get("source"), dict) else {}
    tree_id = src.get("tree_id") or ""
    commit = meta.get("tree_commit") or meta.get("commit") or ""
    if not tree_id or not commit:
        return f"{meta_path} names no source tree and commit (an artifact of an older lab?)"
    repo = src_root() / str(tree_id)
    if not (repo / ".git").exists():
        return f"lab's repository of {tree_id} is gone ({repo})"
    if not git(repo, "cat-file", "-e", f"{commit}^{{commit}}", check=False).ok:
        return f"commit {commit[:12]} is not in {repo}"
    return SelftestSource(repo, str(commit), str(tree_id))


def _tree_ids(src: SelftestSource, paths: tuple[str, ...]) -> list[str]:
    """`path=object id` at the commit, `path=-` for a path the commit lacks."""
    r = git(src.repo, "ls-tree", src.commit, "--", *paths)
    found = {}
    for line in r.stdout.splitlines():
        meta, _, path = line.partition("\t")
        found[path] = meta.split()[2]
    return [f"{p}={found.get(p, '-')}" for p in paths]


def selftest_key(parts: list[str]) -> str:
    """The cache key of one build from its inputs (pure)."""
    return hashlib.sha256("\n".join(["lab-kselftest-v1", *parts]).encode()).hexdigest()[:20]


def build_keys(src: SelftestSource, target: str, test: str, cc: str) -> tuple[str, str]:
    """The keys of the program's build and of its headers: what they read at
    the source's commit, not the commit itself."""
    return (selftest_key([target, test, cc, *_tree_ids(src, KEY_PATHS)]),
            selftest_key(["headers", *_tree_ids(src, HEADER_PATHS)]))


def root() -> Path:
    p = cache_dir() / "kselftests"
    p.mkdir(parents=True, exist_ok=True)
    return p


def cc_version() -> str:
    return compiler_version("gcc")


def build_selftest(src: SelftestSource, target: str, test: str) -> SelftestBuild:
    """The static binary of tools/testing/selftests/<target>/<test> at the
    source's commit, built once per key (between threads and processes)."""
    if not git(src.repo, "cat-file", "-e", f"{src.commit}:{SELFTESTS}/{target}",
               check=False).ok:
        return SelftestBuild(None, f"{src.describe()} has no {SELFTESTS}/{target}")
    key, hkey = build_keys(src, target, test, cc_version())
    out = root() / key / test
    if out.exists():
        return SelftestBuild(out, cached=True)
    with cache_lock(f"kselftest-{key}"):
        if out.exists():
            return SelftestBuild(out, cached=True)
        return _build(src, target, test, out, root() / f"headers-{hkey}")


def _build(src: SelftestSource, target: str, test: str, out: Path,
           headers: Path) -> SelftestBuild:
    out.parent.mkdir(parents=True, exist_ok=True)
    log = out.parent / "build.log"
    log.write_text("")
    work = out.parent / f".work-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    (work / "src").mkdir(parents=True)
    cmds: list[str] = []
    try:
        present = [part.partition("=")[0] for part in _tree_ids(src, ARCHIVE_PATHS)
                   if not part.endswith("=-")]
        tar = work / "src.tar"
        argv = ["git", "-C", str(src.repo), "archive", f"--output={tar}", src.commit, "--",
                *present]
        cmds.append(shell_line(argv))
        r = proc.run(argv, timeout=600, log=log)
        if r.ok:
            argv = ["tar", "-xf", str(tar), "-C", str(work / "src")]
            cmds.append(shell_line(argv))
            r = proc.run(argv, timeout=600, log=log)
        if not r.ok:
            return SelftestBuild(None, f"exporting {src.describe()} failed",
                                 r.tail(20), cmds)
        tar.unlink()
        with cache_lock(headers.name):
            if not (headers / "include").is_dir():
                tmp = headers.with_name(f".{headers.name}.{os.getpid()}")
                shutil.rmtree(tmp, ignore_errors=True)
                argv = ["make", "-C", str(work / "src"), "-s", "headers_install",
                        f"INSTALL_HDR_PATH={tmp}"]
                cmds.append(shell_line(argv))
                r = proc.run(argv, timeout=MAKE_TIMEOUT, log=log, env=_env())
                if not r.ok:
                    shutil.rmtree(tmp, ignore_errors=True)
                    return SelftestBuild(None, f"make headers_install failed for "
                                         f"{src.describe()}", _errors(log, r), cmds)
                shutil.rmtree(headers, ignore_errors=True)
                os.replace(tmp, headers)
        made = work / "out"
        made.mkdir()
        argv = ["make", "-C", str(work / "src" / SELFTESTS / target), f"OUTPUT={made}",
                "LDFLAGS=-static", f"KHDR_INCLUDES=-isystem {headers / 'include'}",
                str(made / test)]
        cmds.append(shell_line(argv))
        r = proc.run(argv, timeout=MAKE_TIMEOUT, log=log, env=_env())
        if not r.ok or not (made / test).is_file():
            return SelftestBuild(None, f"building {target}/{test} from {src.describe()} "
                                 f"failed (exit {r.returncode})", _errors(log, r), cmds)
        tmp = out.with_name(f".{test}.{os.getpid()}")
        shutil.copyfile(made / test, tmp)
        tmp.chmod(0o755)
        os.replace(tmp, out)
        (out.parent / "reproduce.txt").write_text(
            f"# {target}/{test} from {src.describe()}\n" + "\n".join(cmds) + "\n")
        return SelftestBuild(out, commands=cmds)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["LC_ALL"] = "C"
    env.pop("MAKEFLAGS", None)
    env.pop("MFLAGS", None)
    return env


def _errors(log: Path, r: proc.Result) -> str:
    errs = error_lines(log.read_text(errors="replace")) or r.tail(30).splitlines()
    return "\n".join(errs) + f"\n\nfull log: {log}"
