"""A prefix of a numbered series on purpose (series_upto / --series-upto),
as bisecting inside a series needs; without it a lone [PATCH 1/3] is still
refused, and the refusal says how to ask for the prefix."""

from __future__ import annotations

import pytest

from lab.errors import UserError
from lab.kernel import series as ks
from lab.kernel.api import build_kernel, plan
from lab.kernel.outcome import StepState
from lab.kernel.spec import BuildSpec

from .test_kernel_build import parse
from .test_kernel_series import three  # noqa: F401  (the fixture)


@pytest.fixture
def lone(three):  # noqa: F811
    """The series' directory with only its [PATCH v5 1/3] left."""
    for n in (2, 3):
        next(three.glob(f"v5-000{n}-*.patch")).unlink()
    return three


@pytest.fixture
def fragment(tmp_path) -> str:
    p = tmp_path / "fake.config"
    p.write_text("CONFIG_DEBUG_FS=y\nCONFIG_GUP_TEST=y\nCONFIG_VIRTIO_BLK=y\n")
    return str(p)


def test_a_lone_first_patch_is_refused_naming_the_way_to_ask_for_it(lone):
    with pytest.raises(UserError) as e:
        ks.load_series([str(lone)])
    msg = str(e.value)
    assert "missing patch(es) 2/3, 3/3" in msg
    assert "--series-upto 1" in msg and "series_upto: 1" in msg


def test_upto_takes_a_prefix_and_later_patches_may_be_absent(three, lone):  # noqa: F811
    s = ks.load_series([str(lone)], upto=1)
    assert s.subjects == ["[PATCH v5 1/3] mm/gup: return one"]
    assert s.prefix == "patches 1..1 of 3" and s.of == 3


def test_prefix_of_a_whole_series(three):  # noqa: F811
    whole = ks.load_series([str(three)])
    two = ks.load_series([str(three)], upto=2)
    assert [p.number for p in two.patches] == [1, 2] and two.hash != whole.hash
    # a prefix is identified by its patches: the same two files alone, the same hash
    files = [str(next(three.glob(f"v5-000{n}-*.patch"))) for n in (1, 2)]
    assert ks.load_series(files, upto=2).hash == two.hash
    assert ks.load_series([str(three)], upto=3) == whole and not whole.prefix


def test_upto_needs_every_patch_up_to_it(three):  # noqa: F811
    next(three.glob("v5-0002-*.patch")).unlink()
    assert len(ks.load_series([str(three)], upto=1).patches) == 1
    with pytest.raises(UserError, match=r"missing patch\(es\) 2/3 \(patches 1\.\.2 were "):
        ks.load_series([str(three)], upto=2)


@pytest.mark.parametrize("upto", [4, 0])
def test_upto_out_of_range_names_where_it_was_given(three, upto):  # noqa: F811
    with pytest.raises(UserError) as e:
        ks.load_series([str(three)], upto=upto, upto_at=("jobs/b.yaml", "kernel.build.series_upto"))
    assert e.value.file == "jobs/b.yaml" and e.value.field == "kernel.build.series_upto"
    assert "valid: 1..3" in str(e.value)


def test_upto_on_unnumbered_patches_keeps_the_given_order(three, tmp_path):  # noqa: F811
    files = []
    for n in (1, 2, 3):
        f = tmp_path / f"u{n}.patch"
        f.write_text(next(three.glob(f"v5-000{n}-*.patch")).read_text()
                     .replace(f"[PATCH v5 {n}/3]", "[PATCH]"))
        files.append(str(f))
    s = ks.load_series(files, upto=2)
    assert [p.title for p in s.patches] == ["mm/gup: return one", "mm/swap: return two"]
    with pytest.raises(UserError, match="valid: 1..3"):
        ks.load_series(files, upto=5)


# --- in a build: the spec, the job block, the command line ------------------------

@pytest.mark.parametrize("value", [0, -1, "x", True, 1.5, [1]])
def test_series_upto_bad_values_in_a_job(value):
    with pytest.raises(UserError) as e:
        BuildSpec.from_dict({"tree": "/x", "series": "s.mbox", "series_upto": value},
                            file="j.yaml", field="kernels.s.build")
    assert e.value.file == "j.yaml" and e.value.field == "kernels.s.build.series_upto"
    assert "whole number" in str(e.value)


def test_series_upto_needs_a_series():
    with pytest.raises(UserError, match="needs a series") as e:
        BuildSpec.from_dict({"tree": "/x", "series_upto": 1}, file="j.yaml", field="kernel")
    assert e.value.field == "kernel.series_upto"


def test_a_job_series_upto_past_the_end_names_the_job_file(tree, lone):
    spec = BuildSpec.from_dict({"tree": str(tree), "series": str(lone), "series_upto": 2},
                               file="jobs/bisect.yaml", field="kernels.s.build")
    with pytest.raises(UserError) as e:
        plan(spec)
    assert "missing patch(es) 2/3" in str(e.value)
    spec = BuildSpec.from_dict({"tree": str(tree), "series": str(lone), "series_upto": 9},
                               file="jobs/bisect.yaml", field="kernels.s.build")
    with pytest.raises(UserError) as e:
        plan(spec)
    assert (e.value.file, e.value.field) == ("jobs/bisect.yaml", "kernels.s.build.series_upto")
    assert "valid: 1..3" in str(e.value)


@pytest.mark.parametrize("argv, words", [
    (["--series-upto", "x"], "whole number"),
    (["--series-upto", "0"], "whole number"),
    (["--series-upto", "4"], "valid: 1..3"),
])
def test_lab_build_series_upto_bad_values(tree, three, argv, words):  # noqa: F811
    args = parse(["build", "--tree", str(tree), "--series", str(three), "--dry-run", *argv])
    with pytest.raises(UserError, match=words) as e:
        args.func(args)
    assert e.value.field == "--series-upto"


def test_lab_build_series_upto_without_series(tree):
    args = parse(["build", "--tree", str(tree), "--series-upto", "1", "--dry-run"])
    with pytest.raises(UserError, match="needs --series"):
        args.func(args)


def test_building_prefixes_one_after_another(tree, three, fragment):  # noqa: F811
    def spec(n: int) -> BuildSpec:
        return BuildSpec(tree=tree, series=(str(three),), series_upto=n, fragments=(fragment,))
    one = build_kernel(spec(1), progress=False)
    assert one.ok, [s.details for s in one.steps]
    assert one.steps[0].message == "1 patch(es) applied (patches 1..1 of 3)"
    vmlinux = (one.artifact_dir / "vmlinux").read_text()
    assert "return 1;" in vmlinux and "return 2;" not in vmlinux
    two = build_kernel(spec(2), progress=False)
    assert two.ok and two.build_dir == one.build_dir and two.artifact_dir != one.artifact_dir
    log = (two.artifact_dir / "build.log").read_text()
    # incremental: only what patch 2 touches is recompiled; patch 1's mm/gup.c keeps
    # its mtime (the commit is made in a temporary index, then one checkout moves
    # the tree, rewriting only the files that differ)
    assert "CC      mm/swap.o" in log
    assert "CC      mm/gup.o" not in log and "CC      kernel/fork.o" not in log
    assert two.steps[0].state is StepState.OK


def test_moving_between_prefixes_recompiles_only_the_files_that_differ(
        tree, three, fragment):  # noqa: F811
    def build(n: int):
        o = build_kernel(BuildSpec(tree=tree, series=(str(three),), series_upto=n,
                                   fragments=(fragment,)), progress=False)
        assert o.ok, [s.details for s in o.steps]
        return (o.artifact_dir / "build.log").read_text()
    build(3)
    back = build(1)          # patches 2 and 3 undone: swap.c and fork.c change
    assert "CC      mm/swap.o" in back and "CC      kernel/fork.o" in back
    assert "CC      mm/gup.o" not in back
    again = build(2)         # patch 2 again: swap.c only
    assert "CC      mm/swap.o" in again
    assert "CC      mm/gup.o" not in again and "CC      kernel/fork.o" not in again


def test_series_commits_carry_each_patch_author_and_message(tree, three):  # noqa: F811
    from lab.kernel import source
    from .kerneltree import git
    t = source.resolve_git(tree, None)
    source.prepare(t)
    s = ks.load_series([str(three)])
    case, commit = ks.apply_series(t.repo, t.base, s)
    assert case.ok
    log = git(t.repo, "log", "--format=%an|%s", f"{t.base}..{commit}").splitlines()
    assert [line.split("|")[1] for line in log] == ["fork: return three", "mm/swap: return two",
                                                    "mm/gup: return one"]
    assert {line.split("|")[0] for line in log} == {git(tree, "log", "-1", "--format=%an",
                                                        "work").strip()}
    # every prefix is recorded: asking for patches 1..2 later costs no git apply
    two = ks.load_series([str(three)], upto=2)
    assert git(t.repo, "rev-parse", ks.applied_ref(t.base, two)).strip() == \
        git(t.repo, "rev-parse", f"{commit}~1").strip()
