"""Config fragments: syntax, merging, and the check that no requested symbol
is dropped silently (pure, then against the fake kbuild tree)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from lab.errors import UserError
from lab.kernel import config as kc
from lab.kernel.kbuild import KBuild
from lab.kernel.source import git_env

from .kerneltree import FAKE


def frag(text: str, name: str = "t") -> kc.Fragment:
    file = f"{name}.config"
    return kc.Fragment(name, Path(file), text, kc.parse_fragment(text, file))


def test_parse_fragment_values_and_comments():
    a = kc.parse_fragment('# hi\n\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C="x y"\n'
                          'CONFIG_D=0x10\nCONFIG_E=-3\n', "f.config")
    assert [(x.symbol, x.value, x.line) for x in a] == [
        ("A", "y", 3), ("B", "n", 4), ("C", '"x y"', 5), ("D", "0x10", 6), ("E", "-3", 7)]


@pytest.mark.parametrize("line", ["CONFIG_A", "A=y", "CONFIG_A=yes", "CONFIG_A=\"open",
                                  "CONFIG A=y"])
def test_syntax_error_names_file_and_line(line):
    with pytest.raises(UserError) as e:
        kc.parse_fragment(f"CONFIG_OK=y\n\n{line}\n", "kernels/fragments/x.config")
    assert e.value.file == "kernels/fragments/x.config" and e.value.line == 3
    assert "kernels/fragments/x.config:3" in str(e.value)


def test_conflicting_values_in_one_fragment():
    with pytest.raises(UserError, match="set twice") as e:
        kc.parse_fragment("CONFIG_A=y\nCONFIG_A=m\n", "f.config")
    assert e.value.line == 2


def test_merge_later_fragment_wins_and_replaces_base_lines():
    base = "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=y\n"
    out = kc.merge(base, [frag("CONFIG_B=y\n", "one"), frag("# CONFIG_C is not set\nCONFIG_B=m\n",
                                                             "two")])
    cfg = kc.parse_config(out)
    assert cfg == {"A": "y", "B": "m", "C": "n"}
    assert out.count("CONFIG_B") == 1


def test_check_reports_dropped_symbol_by_name_and_file():
    f = frag("CONFIG_A=y\nCONFIG_B=y\nCONFIG_C=m\n# CONFIG_D is not set\n", "lab")
    dropped = kc.check({"A": "y", "B": "n", "C": "y", "D": "n"}, [f], {"B": "mm/Kconfig:7"})
    assert [d.want.symbol for d in dropped] == ["B"]
    msg = dropped[0].describe()
    assert msg.startswith("lab.config:2: CONFIG_B=y was dropped: the final .config has not set")
    assert "mm/Kconfig:7" in msg


def test_lab_fragments_parse_and_ask_for_the_workload_symbols():
    frags = kc.load_fragments(["lab", "debug", "kasan"])
    want = kc.effective(frags)
    for sym in ("VIRTIO_PCI", "VIRTIO_BLK", "VIRTIO_NET", "VIRTIO_CONSOLE", "HW_RANDOM_VIRTIO",
                "BLK_DEV_NVME", "INFINIBAND", "INFINIBAND_USER_ACCESS", "RDMA_RXE", "LIBNVDIMM",
                "ACPI_NFIT", "BLK_DEV_PMEM", "FS_DAX", "ZONE_DEVICE", "EXT4_FS", "XFS_FS",
                "9P_FS", "DEBUG_FS", "GUP_TEST", "MAGIC_SYSRQ", "IO_URING", "DEVTMPFS",
                "DEVTMPFS_MOUNT", "CRYPTO_CRC32C", "DEBUG_VM", "PROVE_LOCKING",
                "DETECT_HUNG_TASK", "SOFTLOCKUP_DETECTOR", "DEBUG_ATOMIC_SLEEP", "KASAN"):
        assert want[sym].value == "y", sym
    assert frags[0].name == "lab"


def test_unknown_fragment_lists_valid_ones():
    with pytest.raises(UserError, match="valid: debug, kasan, lab"):
        kc.load_fragment("nope")


def test_config_key_depends_on_content_not_comments_or_names():
    a = kc.config_key([frag("CONFIG_A=y\n")])
    assert kc.config_key([frag("# comment\nCONFIG_A=y\n")]) == a
    assert kc.config_key([frag("CONFIG_A=y\n", name="other")]) == a
    assert kc.config_key([frag("CONFIG_A=y\n\nCONFIG_A=y\n")]) == a
    assert kc.config_key([frag("CONFIG_A=m\n")]) != a
    assert kc.config_key([frag("CONFIG_A=y\n")], base=("defconfig",)) != a


def test_config_key_fragment_order_only_where_it_changes_the_result():
    a, b = frag("CONFIG_A=y\n", "a"), frag("CONFIG_B=y\n", "b")
    assert kc.config_key([a, b]) == kc.config_key([b, a])
    # one fragment split in two, or the two merged into one: the same request
    assert kc.config_key([a, b]) == kc.config_key([frag("CONFIG_B=y\nCONFIG_A=y\n")])
    on, off = frag("CONFIG_A=y\n", "on"), frag("# CONFIG_A is not set\n", "off")
    assert kc.config_key([on, off]) != kc.config_key([off, on])     # the later one wins
    assert kc.config_key([on, off]) == kc.config_key([frag("CONFIG_A=n\n")])
    assert kc.canonical([on, off]).splitlines() == ["base defconfig+kvm_guest.config",
                                                    "CONFIG_A=n"]


def test_fragment_by_name_path_or_copy_has_one_key(tmp_path, monkeypatch):
    monkeypatch.chdir(kc.FRAGMENTS_DIR.parent.parent)
    copy = tmp_path / "elsewhere" / "my-lab.config"
    copy.parent.mkdir()
    copy.write_text("# a copy, with a comment of its own\n" + (kc.FRAGMENTS_DIR / "lab.config")
                    .read_text())
    spellings = [["lab", "debug"], ["kernels/fragments/lab.config", "debug"],
                 [str(kc.FRAGMENTS_DIR / "lab.config"), str(kc.FRAGMENTS_DIR / "debug.config")],
                 [str(copy), "debug"]]
    loaded = [kc.load_fragments(s) for s in spellings]
    assert len({kc.config_key(f) for f in loaded}) == 1
    assert [f.name for f in loaded[1]] == ["lab", "debug"]      # displayed by name
    assert kc.config_key(kc.load_fragments(["lab"])) != kc.config_key(loaded[0])


# --- against the fake kbuild tree -------------------------------------------

@pytest.fixture
def kb(tmp_path) -> KBuild:
    t = tmp_path / "linux"
    shutil.copytree(FAKE, t)
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "base"]):
        subprocess.run(["git", "-C", str(t), *args], check=True, env=git_env())
    return KBuild(srctree=t, objtree=tmp_path / "obj", jobs=2, cc="gcc")


def fragment_file(tmp_path: Path, text: str) -> kc.Fragment:
    p = tmp_path / "mine.config"
    p.write_text(text)
    return kc.load_fragment(str(p))


def test_make_config_merges_base_and_fragments(kb, tmp_path):
    f = fragment_file(tmp_path, "CONFIG_DEBUG_FS=y\nCONFIG_GUP_TEST=y\nCONFIG_VIRTIO_BLK=y\n")
    res = kc.make_config(kb, [f])
    cfg = kc.parse_config(res.path.read_text())
    assert cfg["KVM_GUEST"] == "y" and cfg["PCI"] == "y"          # defconfig + kvm_guest
    assert cfg["GUP_TEST"] == "y" and cfg["VIRTIO_BLK"] == "y"     # fragment
    # nothing changed: not regenerated, .config mtime kept
    mtime = res.path.stat().st_mtime_ns
    again = kc.make_config(kb, [f])
    assert not again.regenerated and res.path.stat().st_mtime_ns == mtime


def test_dropped_symbol_is_a_user_error_naming_it(kb, tmp_path):
    f = fragment_file(tmp_path, "CONFIG_DEBUG_FS=y\n\nCONFIG_ZONE_DEVICE=y\n")
    with pytest.raises(UserError) as e:
        kc.make_config(kb, [f])
    msg = str(e.value)
    assert "mine.config:3: CONFIG_ZONE_DEVICE=y was dropped" in msg
    assert "mm/Kconfig" in msg
    assert e.value.line == 3


def test_unknown_symbol_is_a_user_error_with_line(kb, tmp_path):
    f = fragment_file(tmp_path, "CONFIG_DEBUG_FS=y\nCONFIG_NO_SUCH_THING=y\n")
    with pytest.raises(UserError, match="mine.config:2: CONFIG_NO_SUCH_THING") as e:
        kc.make_config(kb, [f])
    assert e.value.line == 2


def test_a_name_is_not_a_directory_of_the_same_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lab").mkdir()
    assert kc.load_fragment("lab").path == kc.FRAGMENTS_DIR / "lab.config"
    (tmp_path / "nope").mkdir()
    with pytest.raises(UserError, match="unknown config fragment 'nope'"):
        kc.load_fragment("nope")
