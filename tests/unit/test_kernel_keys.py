"""One configuration, one build directory: the build dir is keyed by the
source and the configuration's content, the artifact by that plus the commit,
the series and the toolchain; never by how a fragment was named. Build dirs
and artifacts made under the old name-dependent keys are found and reused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lab.kernel import build as kb
from lab.kernel import config as kc
from lab.kernel import kbuild, legacy
from lab.kernel.api import build_kernel, cached_outcome, plan
from lab.kernel.spec import BuildSpec

from .test_kernel_build import patch_file


def copy_of(name: str, where: Path) -> str:
    """kernels/fragments/NAME.config copied elsewhere, with a comment of its own."""
    where.mkdir(parents=True, exist_ok=True)
    p = where / f"copy-of-{name}.config"
    p.write_text(f"# my copy of {name}\n" + (kc.FRAGMENTS_DIR / f"{name}.config").read_text())
    return str(p)


def test_names_paths_and_copies_give_one_build_dir_and_one_key(tree, tmp_path, monkeypatch):
    monkeypatch.chdir(kc.FRAGMENTS_DIR.parent.parent)
    spellings = [("lab", "debug"),
                 ("kernels/fragments/lab.config", "kernels/fragments/debug.config"),
                 (str(kc.FRAGMENTS_DIR / "lab.config"), "debug"),
                 (copy_of("lab", tmp_path / "a"), copy_of("debug", tmp_path / "b"))]
    plans = [plan(BuildSpec(tree=tree, fragments=s)) for s in spellings]
    assert len({p.build_dir for p in plans}) == 1
    assert len({p.key for p in plans}) == 1
    assert plans[0].build_dir.name == f"{plans[0].tree.tree_id}-{plans[0].config_key}"
    # the order of fragments that set different symbols does not matter
    assert plan(BuildSpec(tree=tree, fragments=("debug", "lab"))).key == plans[0].key


def test_a_content_change_is_another_build_dir_and_key(tree, tmp_path):
    base = plan(BuildSpec(tree=tree, fragments=("lab", "debug")))
    changed = copy_of("debug", tmp_path)
    Path(changed).write_text(Path(changed).read_text() + "CONFIG_KASAN=y\n")
    other = plan(BuildSpec(tree=tree, fragments=("lab", changed)))
    assert other.build_dir != base.build_dir and other.key != base.key
    p = patch_file(tree, tmp_path, "return 0;", "return 1;")
    patched = plan(BuildSpec(tree=tree, series=(p,), fragments=("lab", "debug")))
    assert patched.build_dir == base.build_dir and patched.key != base.key


def test_a_copy_in_another_directory_is_a_cache_hit(tree, tmp_path, monkeypatch):
    one = tmp_path / "one" / "fake.config"
    one.parent.mkdir()
    one.write_text("CONFIG_DEBUG_FS=y\nCONFIG_GUP_TEST=y\nCONFIG_VIRTIO_BLK=y\n")
    first = build_kernel(BuildSpec(tree=tree, fragments=(str(one),)), progress=False)
    assert first.ok
    two = tmp_path / "two" / "renamed.config"
    two.parent.mkdir()
    two.write_text("# the same request, reordered\nCONFIG_VIRTIO_BLK=y\nCONFIG_GUP_TEST=y\n"
                   "CONFIG_DEBUG_FS=y\n")
    monkeypatch.setattr(kbuild.KBuild, "run", lambda *a, **kw: pytest.fail("make ran"))
    hit = build_kernel(BuildSpec(tree=tree, fragments=(str(two),)), progress=False)
    assert hit.cached and hit.artifact_dir == first.artifact_dir


# --- the cache as lab keyed it before (lab/kernel/legacy.py) ---------------------

@pytest.fixture
def fragment(tmp_path) -> str:
    p = tmp_path / "fake.config"
    p.write_text("CONFIG_DEBUG_FS=y\nCONFIG_GUP_TEST=y\nCONFIG_VIRTIO_BLK=y\n")
    return str(p)


def as_legacy_build_dir(p) -> Path:
    """Move p's build dir to the name the v1 key gave it, its config state
    written by the old code (so the first new build regenerates .config)."""
    old_hash = legacy.fragments_hash([(f.name, f.assignments) for f in p.fragments])
    old = kb.build_dir(p.tree.tree_id, old_hash)
    p.build_dir.rename(old)
    (old / ".lab-config.json").write_text(json.dumps({"inputs": "v1", "sha": "v1"}))
    return old


def test_v1_keys_are_what_the_old_code_computed():
    # golden values: lab at d7ae54c run on a fragment /tmp/f.config with this text
    text = "CONFIG_B=y\n# c\nCONFIG_A=m\n# CONFIG_C is not set\n"
    h = legacy.fragments_hash([("/tmp/f.config", kc.parse_fragment(text, "f.config"))])
    assert h == "2daabb5decf32a7a"
    assert legacy.artifact_key("c0ffee", "", h, "gcc 12") == "e513c05abe762c5b3d1d"


def test_v1_hashes_of_every_spelling(tmp_path):
    # kernels/fragments lab + debug named by name: the build dir the issue measured
    # (the old code, run on these two files, gave this hash)
    frags = kc.load_fragments(["lab", "debug"])
    by_name = legacy.fragments_hash([(f.name, f.assignments) for f in frags])
    assert by_name in legacy.config_hashes(frags)
    by_path = kc.load_fragments([str(kc.FRAGMENTS_DIR / "lab.config"), "debug"])
    assert legacy.config_hashes(by_path) == legacy.config_hashes(frags)
    assert len(legacy.config_hashes(frags)) == 4      # {name, path} x {name, path}
    # a copy elsewhere (another checkout's, or with comments of its own) finds it too
    copies = [kc.load_fragment(copy_of(n, tmp_path / n)) for n in ("lab", "debug")]
    assert by_name in legacy.config_hashes(copies)


def test_a_warm_v1_build_dir_is_reused_not_rebuilt(tree, fragment):
    spec = BuildSpec(tree=tree, fragments=(fragment,))
    first = build_kernel(spec, progress=False)
    old = as_legacy_build_dir(plan(spec))
    shutil.rmtree(first.artifact_dir)
    again = plan(spec)
    assert again.build_dir == old and again.legacy_build_dir
    assert again.build_dir_state is kb.DirState.WARM
    mtime = (old / ".config").stat().st_mtime_ns
    o = build_kernel(spec, progress=False, planned=again)
    assert o.ok and o.build_dir == old
    log = (o.artifact_dir / "build.log").read_text()
    assert "  CC  " not in log and "SYNC" not in log         # .config regenerated, same bytes
    assert (old / ".config").stat().st_mtime_ns == mtime
    assert json.loads((old / ".lab-config.json").read_text())["inputs"] != "v1"
    assert not kb.build_dir(again.tree.tree_id, again.config_key).exists()


def test_a_v1_artifact_is_a_cache_hit(tree, fragment, monkeypatch):
    spec = BuildSpec(tree=tree, fragments=(fragment,))
    first = build_kernel(spec, progress=False)
    p = plan(spec)
    old_hash = legacy.fragments_hash([(f.name, f.assignments) for f in p.fragments])
    old = kb.artifacts_root() / legacy.artifact_key(p.tree.base, "", old_hash, p.compiler)
    first.artifact_dir.rename(old)
    monkeypatch.setattr(kbuild.KBuild, "run", lambda *a, **kw: pytest.fail("make ran"))
    hit = cached_outcome(p)
    assert hit is not None and hit.artifact_dir == old and hit.cached


def test_dir_state():
    assert kb.DirState.of(Path("/nonexistent/lab")) is kb.DirState.COLD


def test_lab_build_dry_run_says_where_and_whether_warm(tree, fragment, capsys, monkeypatch):
    from .test_kernel_build import parse
    argv = ["build", "--tree", str(tree), "--fragment", fragment, "--no-progress"]
    args = parse(argv + ["--dry-run"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    p = plan(BuildSpec(tree=tree, fragments=(fragment,)))
    assert f"build dir  {p.build_dir}\n" in out and "cold: the first build" in out
    assert "to build" in out and not p.build_dir.exists()        # planned, nothing made
    args = parse(argv)
    assert args.func(args) == 0
    capsys.readouterr()
    args = parse(argv + ["--dry-run"])
    monkeypatch.setattr(kbuild.KBuild, "run", lambda *a, **kw: pytest.fail("make ran"))
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "warm: a finished build is there" in out and "cached: nothing to build" in out
    assert f"--fragment {Path(fragment).resolve()}" in out
