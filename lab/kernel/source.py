"""Kernel source trees: a user's git repository or Debian's linux-source tarball.

lab never touches the user's checkout. Every source gets one persistent
repository of lab's own under <cache>/src/<tree-id>:

- a git tree is cloned once (a local clone: objects are hard-linked, so it is
  cheap and survives a gc in the user's repository); new commits are fetched
  into it by ref;
- the linux-source tarball is extracted once, its top-level .gitignore lines
  that ignore everything are dropped, and the whole tree is committed.

Builds move between commits in that one working tree with git, which rewrites
only the files that differ, so kbuild's mtime checks see exactly the change.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from .. import proc
from ..errors import InfraError, UserError
from ..paths import cache_dir, cache_lock

GIT_TIMEOUT = 600
IMPORT_TIMEOUT = 3600
LINUX_SOURCE_GLOB = "linux-source-*.tar.xz"
LINUX_SOURCE_DIR = Path("/usr/src")
# git commits the tarball import with fixed identities and dates, so the
# commit id depends only on the tarball's contents
_IMPORT_ENV = {
    "GIT_AUTHOR_NAME": "lab", "GIT_AUTHOR_EMAIL": "lab@localhost",
    "GIT_COMMITTER_NAME": "lab", "GIT_COMMITTER_EMAIL": "lab@localhost",
    "GIT_AUTHOR_DATE": "2000-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2000-01-01T00:00:00Z",
}


def git_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"})
    env.setdefault("GIT_AUTHOR_NAME", "lab")
    env.setdefault("GIT_AUTHOR_EMAIL", "lab@localhost")
    env.setdefault("GIT_COMMITTER_NAME", "lab")
    env.setdefault("GIT_COMMITTER_EMAIL", "lab@localhost")
    if extra:
        env.update(extra)
    return env


def git(repo: Path, *args: str, timeout: float = GIT_TIMEOUT, check: bool = True,
        env: dict[str, str] | None = None, input: str | None = None) -> proc.Result:
    r = proc.run(["git", "-C", str(repo), *args], timeout=timeout, env=git_env(env),
                 input=input)
    if check and not r.ok:
        raise InfraError(f"git {' '.join(args)} failed in {repo} (exit {r.returncode}):\n"
                         + r.tail())
    return r


@dataclass(frozen=True)
class SourceTree:
    """A resolved source: where lab builds it and which commit is the base."""

    tree_id: str          # filesystem-safe name: "<name>-<hash>"
    origin: str           # the user's repository path, or the tarball path
    kind: str             # "git" or "linux-source"
    ref: str | None       # what the user asked for (None: HEAD / the tarball)
    base: str             # full commit id of the base (before the series)
    repo: Path            # lab's own repository + working tree

    def describe(self) -> str:
        if self.kind == "git":
            return f"{self.origin}@{self.ref or 'HEAD'} ({self.base[:12]})"
        return f"{self.origin} ({self.base[:12]})"


def src_root() -> Path:
    p = cache_dir() / "src"
    p.mkdir(parents=True, exist_ok=True)
    return p


def tree_lock(tree_id: str):
    """One lab process at a time works in a source's tree and build dirs."""
    return cache_lock(tree_id)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "tree"


# --- a user's git repository ---------------------------------------------

def resolve_git(path: Path | str, ref: str | None, *, file: str = "",
                field: str = "tree") -> SourceTree:
    """Check the user's repository and ref (fast: no clone, no checkout)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise UserError(f"kernel tree {p} does not exist", file=file or None, field=field)
    r = proc.run(["git", "-C", str(p), "rev-parse", "--show-toplevel"], timeout=60,
                 env=git_env())
    if not r.ok:
        raise UserError(f"{p} is not a git repository (valid: a kernel git checkout, "
                        "or linux_source: true for Debian's linux-source tarball)",
                        file=file or None, field=field)
    top = Path(r.stdout.strip()).resolve()
    want = ref or "HEAD"
    r = proc.run(["git", "-C", str(top), "rev-parse", "--verify", "--quiet",
                  f"{want}^{{commit}}"], timeout=60, env=git_env())
    if not r.ok:
        raise UserError(f"ref '{want}' does not exist in {top} "
                        "(valid: a branch, tag or commit id of that repository)",
                        file=file or None, field="ref" if ref else field)
    base = r.stdout.strip()
    tree_id = f"{_slug(top.name)}-{hashlib.sha256(str(top).encode()).hexdigest()[:10]}"
    return SourceTree(tree_id=tree_id, origin=str(top), kind="git", ref=ref, base=base,
                      repo=src_root() / tree_id)


def _ensure_git_clone(tree: SourceTree) -> None:
    """Lab's clone exists and holds tree.base."""
    repo = tree.repo
    if not (repo / ".git").is_dir():
        tmp = repo.with_name(repo.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        r = proc.run(["git", "clone", "--quiet", "--no-checkout", tree.origin, str(tmp)],
                     timeout=IMPORT_TIMEOUT, env=git_env())
        if not r.ok:
            raise InfraError(f"cannot clone {tree.origin} into {tmp}:\n{r.tail()}")
        _tune(tmp)
        tmp.rename(repo)
    if git(repo, "cat-file", "-e", f"{tree.base}^{{commit}}", check=False).ok:
        return
    # the user made new commits since the clone: fetch the ref (or the id)
    for what in ([tree.ref] if tree.ref else []) + ["HEAD", tree.base]:
        git(repo, "fetch", "--quiet", "--no-tags", tree.origin, f"{what}", check=False)
        if git(repo, "cat-file", "-e", f"{tree.base}^{{commit}}", check=False).ok:
            return
    git(repo, "fetch", "--quiet", "--no-tags", tree.origin,
        "+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*")
    if not git(repo, "cat-file", "-e", f"{tree.base}^{{commit}}", check=False).ok:
        raise InfraError(f"commit {tree.base} of {tree.origin} cannot be fetched into {repo}")


def _tune(repo: Path) -> None:
    """Lab's repositories: no automatic gc in the middle of a build, an index
    and untracked cache suited to ~80k files, files written as they are."""
    for k, v in (("gc.auto", "0"), ("feature.manyFiles", "true"), ("core.autocrlf", "false"),
                 ("advice.detachedHead", "false")):
        git(repo, "config", k, v)


# --- Debian's linux-source tarball ----------------------------------------

def find_linux_source(directory: Path | None = None) -> Path:
    directory = directory or LINUX_SOURCE_DIR
    found = sorted(directory.glob(LINUX_SOURCE_GLOB),
                   key=lambda p: [int(x) if x.isdigit() else x
                                  for x in re.split(r"[.-]", p.name)])
    if not found:
        raise UserError(f"no {LINUX_SOURCE_GLOB} in {directory} "
                        "(apt-get install linux-source-6.1)", field="linux_source")
    return found[-1]


def _tarball_id(tarball: Path) -> str:
    st = tarball.stat()
    h = hashlib.sha256(f"{tarball.resolve()}:{st.st_size}:{int(st.st_mtime)}".encode())
    name = tarball.name.removesuffix(".tar.xz")
    return f"{_slug(name)}-{h.hexdigest()[:10]}"


def drop_ignore_all(gitignore: str) -> str:
    """Drop Debian's top-level '/*' and '!/debian/' lines (they ignore the whole tree)."""
    return "".join(line for line in gitignore.splitlines(keepends=True)
                   if line.strip() not in ("/*", "!/debian/"))


def resolve_linux_source(tarball: Path | None = None) -> SourceTree:
    """The linux-source tarball as a git repository, imported once."""
    tarball = Path(tarball) if tarball else find_linux_source()
    tree_id = _tarball_id(tarball)
    repo = src_root() / tree_id
    marker = repo / ".git" / "lab-imported"
    if not marker.exists():
        with tree_lock(tree_id):
            if not marker.exists():
                _import_tarball(tarball, repo)
    return SourceTree(tree_id=tree_id, origin=str(tarball), kind="linux-source", ref=None,
                      base=marker.read_text().strip(), repo=repo)


def _import_tarball(tarball: Path, repo: Path) -> None:
    tmp = repo.with_name(repo.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(repo, ignore_errors=True)
    tmp.mkdir(parents=True)
    r = proc.run(["tar", "-xf", str(tarball), "-C", str(tmp), "--strip-components=1"],
                 timeout=IMPORT_TIMEOUT)
    if not r.ok:
        raise InfraError(f"cannot extract {tarball}:\n{r.tail()}")
    gi = tmp / ".gitignore"
    if gi.exists():
        gi.write_text(drop_ignore_all(gi.read_text()))
    git(tmp, "init", "--quiet")
    _tune(tmp)
    git(tmp, "add", "-A", "-f", ".", timeout=IMPORT_TIMEOUT)
    git(tmp, "commit", "--quiet", "--no-verify", "-m", f"Import {tarball.name}",
        timeout=IMPORT_TIMEOUT, env=_IMPORT_ENV)
    git(tmp, "tag", "lab-import")
    base = git(tmp, "rev-parse", "HEAD").stdout.strip()
    tmp.rename(repo)
    (repo / ".git" / "lab-imported").write_text(base + "\n")


# --- moving the working tree ---------------------------------------------

def prepare(tree: SourceTree) -> Path:
    """Lab's repository for `tree` exists and holds its base commit. Call with
    tree_lock held."""
    if tree.kind == "git":
        _ensure_git_clone(tree)
    elif not (tree.repo / ".git" / "lab-imported").exists():
        raise InfraError(f"{tree.repo} was not imported from {tree.origin}")
    return tree.repo


def checkout(repo: Path, commit: str) -> None:
    """Move the working tree to `commit`, rewriting only the files that differ."""
    state = repo / ".git" / "rebase-apply"
    if state.exists():
        git(repo, "am", "--abort", check=False)
    head = git(repo, "rev-parse", "--verify", "--quiet", "HEAD", check=False).stdout.strip()
    if head == commit and not git(repo, "status", "--porcelain", "--untracked-files=no",
                                  check=False).stdout.strip():
        return
    git(repo, "checkout", "--quiet", "--force", "--detach", commit)
    git(repo, "clean", "-fdxq")


def head(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD").stdout.strip()
