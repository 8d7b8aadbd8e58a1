"""Series: parsing by subject (mbox, directory, list, range), missing and
duplicate patches, hashing, and applying in lab's repository."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lab.errors import UserError
from lab.kernel import series as ks
from lab.kernel import source
from lab.kernel.outcome import StepState

from .kerneltree import git


def commit_change(t: Path, path: str, old: str, new: str, subject: str) -> None:
    f = t / path
    f.write_text(f.read_text().replace(old, new))
    git(t, "commit", "-qam", subject)


@pytest.fixture
def three(tree, tmp_path) -> Path:
    """A 3-patch series as git format-patch files in tmp/series; tree stays at base."""
    git(tree, "checkout", "-qb", "work")
    commit_change(tree, "mm/gup.c", "return 0;", "return 1;", "mm/gup: return one")
    commit_change(tree, "mm/swap.c", "return 0;", "return 2;", "mm/swap: return two")
    commit_change(tree, "kernel/fork.c", "return 0;", "return 3;", "fork: return three")
    out = tmp_path / "series"
    git(tree, "format-patch", "-q", "--cover-letter", "-v5", "-o", str(out), "master..work")
    git(tree, "checkout", "-q", "master")
    return out


def test_subject_parsing():
    assert ks.parse_subject("[PATCH v5 2/3] mm/gup: x") == ("mm/gup: x", 2, 3, 5, True)
    assert ks.parse_subject("[RFC][PATCH 1/2] a:  b") == ("a: b", 1, 2, 1, True)
    assert ks.parse_subject("[PATCH] one") == ("one", None, None, 1, True)
    assert ks.parse_subject("[PATCH v2 0/7] cover") == ("cover", 0, 7, 2, True)


def test_directory_of_format_patch_files(three):
    s = ks.load_series([str(three)])
    assert [p.number for p in s.patches] == [1, 2, 3]
    assert s.subjects[0] == "[PATCH v5 1/3] mm/gup: return one"
    assert s.cover == "*** SUBJECT HERE ***"
    assert len(s.hash) == 16


def test_mbox_equals_directory_and_order_comes_from_subjects(three, tmp_path):
    files = sorted(three.glob("*.patch"))
    mbox = tmp_path / "series.mbox"
    mbox.write_bytes(b"".join(f.read_bytes() for f in reversed(files)))  # shuffled
    a = ks.load_series([str(mbox)])
    b = ks.load_series([str(three)])
    assert [p.title for p in a.patches] == [p.title for p in b.patches]
    assert a.hash == b.hash


def test_list_of_patch_files(three):
    files = [str(f) for f in sorted(three.glob("v5-000[1-3]*.patch"))]
    s = ks.load_series(files)
    assert len(s.patches) == 3 and s.sources == tuple(files)


def test_git_range(tree, three):
    s = ks.load_series(["master..work"], tree)
    assert [p.title for p in s.patches] == ["mm/gup: return one", "mm/swap: return two",
                                            "fork: return three"]
    # format-patch of a range numbers without -v5: same diffs and titles, same hash
    assert s.hash == ks.load_series([str(three)]).hash


def test_bad_range_is_user_error(tree):
    with pytest.raises(UserError, match="git range 'nope..work'"):
        ks.load_series(["nope..work"], tree)


def test_missing_patch(three):
    next(three.glob("v5-0002-*.patch")).unlink()
    with pytest.raises(UserError, match=r"missing patch\(es\) 2/3"):
        ks.load_series([str(three)])


def test_duplicate_patch(three, tmp_path):
    p2 = next(three.glob("v5-0002-*.patch"))
    shutil.copy(p2, three / "0002-again.patch")
    with pytest.raises(UserError, match="duplicate patch 2/3") as e:
        ks.load_series([str(three)])
    assert "0002-again.patch" in str(e.value)


def test_duplicate_unnumbered_diff(three, tmp_path):
    one = tmp_path / "one.patch"
    text = next(three.glob("v5-0001-*.patch")).read_text().replace("[PATCH v5 1/3]", "[PATCH]")
    one.write_text(text)
    with pytest.raises(UserError, match="same diff"):
        ks.load_series([str(one), str(one)])


def test_file_without_patch(tmp_path):
    f = tmp_path / "notes.mbox"
    f.write_text("From: a@b\nSubject: hello\n\njust words\n")
    with pytest.raises(UserError, match="holds no patch") as e:
        ks.load_series([str(f)])
    assert str(f) in str(e.value)


def test_missing_series_file(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        ks.load_series([str(tmp_path / "nope.mbox")])


def test_hash_ignores_headers_not_diffs(three):
    base = ks.load_series([str(three)]).hash
    p = next(three.glob("v5-0001-*.patch"))
    p.write_text(p.read_text().replace("Date: ", "X-Resent: yes\nDate: "))
    assert ks.load_series([str(three)]).hash == base
    p.write_text(p.read_text().replace("+\treturn 1;", "+\treturn 9;"))
    assert ks.load_series([str(three)]).hash != base


def test_apply_in_labs_own_repository(tree, three):
    t = source.resolve_git(tree, None)
    source.prepare(t)
    s = ks.load_series([str(three)])
    case, commit = ks.apply_series(t.repo, t.base, s)
    assert case.state is StepState.OK, case.details
    assert "return 3;" in (t.repo / "kernel" / "fork.c").read_text()
    # the user's checkout is untouched
    assert "return 0;" in (tree / "kernel" / "fork.c").read_text()
    assert git(tree, "status", "--porcelain") == ""
    # applying again is a checkout of the recorded result
    again, commit2 = ks.apply_series(t.repo, t.base, s)
    assert commit2 == commit and "recorded" in again.message


def test_apply_failure_names_patch_and_hunks(tree, three):
    commit_change(tree, "mm/swap.c", "return 0;", "return 7;", "conflicting change")
    t = source.resolve_git(tree, None)
    source.prepare(t)
    case, commit = ks.apply_series(t.repo, t.base, ks.load_series([str(three)]))
    assert case.state is StepState.FAILED and commit == ""
    assert "patch 2/3 does not apply" in case.message
    assert "mm/swap: return two" in case.message
    assert "patch failed: mm/swap.c" in case.details
    assert "while searching for" in case.details
    # the patches are applied in a temporary index: lab's working tree is untouched,
    # and the prefix that applied is recorded for the next build
    assert source.head(t.repo) == t.base
    gup = t.repo / "mm" / "gup.c"
    assert not gup.exists() or "return 1;" not in gup.read_text()
    assert not list(t.repo.rglob("*.rej"))
    one = ks.load_series([str(three)], upto=1)
    assert git(t.repo, "rev-parse", ks.applied_ref(t.base, one)).strip()
