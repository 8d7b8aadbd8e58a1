"""Sources: Debian's linux-source tarball imported into git once; a user's
git tree resolved without touching it."""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from lab.errors import UserError
from lab.kernel import source
from lab.kernel.api import build_kernel
from lab.kernel.spec import BuildSpec

from .kerneltree import FAKE


def test_drop_ignore_all():
    text = "*.o\n/*\n!/debian/\n!.gitignore\n"
    assert source.drop_ignore_all(text) == "*.o\n!.gitignore\n"


@pytest.fixture
def tarball(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / "cache"))
    top = tmp_path / "stage" / "linux-source-9.9"
    shutil.copytree(FAKE, top)
    (top / ".gitignore").write_text("*.o\n/*\n!/debian/\n")
    (top / "mm" / "built-in.o").write_text("shipped but ignored by *.o\n")
    usr = tmp_path / "usr-src"
    usr.mkdir()
    tb = usr / "linux-source-9.9.tar.xz"
    with tarfile.open(tb, "w:xz") as t:
        t.add(top, arcname="linux-source-9.9")
    monkeypatch.setattr(source, "LINUX_SOURCE_DIR", usr)
    return tb


def test_tarball_is_imported_once_with_everything_committed(tarball):
    t = source.resolve_linux_source()
    assert t.kind == "linux-source" and t.tree_id.startswith("linux-source-9.9-")
    files = subprocess.run(["git", "-C", str(t.repo), "ls-files"], capture_output=True,
                           text=True, check=True).stdout.split()
    assert "Makefile" in files and "mm/gup.c" in files and "mm/built-in.o" in files
    assert (t.repo / ".gitignore").read_text() == "*.o\n"
    assert source.resolve_linux_source().base == t.base     # no second import
    # fixed identities and dates: the same tarball gives the same commit
    shutil.rmtree(t.repo)
    assert source.resolve_linux_source().base == t.base


def test_linux_source_build(tarball, tmp_path):
    frag = tmp_path / "f.config"
    frag.write_text("CONFIG_DEBUG_FS=y\nCONFIG_GUP_TEST=y\n")
    o = build_kernel(BuildSpec(linux_source=True, fragments=(str(frag),)), progress=False)
    assert o.ok and o.artifact.release == "6.1.0-fake"


def test_no_linux_source(tmp_path, monkeypatch):
    monkeypatch.setattr(source, "LINUX_SOURCE_DIR", tmp_path)
    with pytest.raises(UserError, match="apt-get install linux-source"):
        source.resolve_linux_source()


def test_user_checkout_is_never_touched(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / "cache"))
    t = tmp_path / "linux"
    shutil.copytree(FAKE, t)
    env = source.git_env()
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "base"]):
        subprocess.run(["git", "-C", str(t), *args], check=True, env=env)
    (t / "mm" / "gup.c").write_text("uncommitted work\n")
    before = sorted(p.name for p in (t / ".git").iterdir())
    tree = source.resolve_git(t, None)
    source.prepare(tree)
    source.checkout(tree.repo, tree.base)
    assert (t / "mm" / "gup.c").read_text() == "uncommitted work\n"
    assert sorted(p.name for p in (t / ".git").iterdir()) == before
    assert tree.repo != t and (tree.repo / "mm" / "gup.c").read_text() != "uncommitted work\n"
    # a new commit in the user's repository is fetched into lab's clone
    subprocess.run(["git", "-C", str(t), "commit", "-qam", "more"], check=True, env=env)
    newer = source.resolve_git(t, None)
    source.prepare(newer)
    source.checkout(newer.repo, newer.base)
    assert (newer.repo / "mm" / "gup.c").read_text() == "uncommitted work\n"
