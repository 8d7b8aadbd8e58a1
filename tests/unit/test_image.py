"""Image recipes, their cache key, the initramfs cpio writer, module
dependency ordering (all pure) and the modes of the image cache."""

import os
import stat
from pathlib import Path

import pytest

from lab.errors import InfraError, UserError
from lab.image import build, cpio
from lab.image.build import Image, host_mirror
from lab.image.modules import load_order, parse_modules_dep
from lab.image.recipe import load_recipe

RECIPE = "name: t\nsuite: bookworm\npackages: [fio, openssh-server]\n"


def test_recipe_key_follows_content(tmp_path):
    p = tmp_path / "t.yaml"
    p.write_text(RECIPE)
    k1 = load_recipe(str(p)).key
    assert load_recipe(str(p)).key == k1
    p.write_text(RECIPE.replace("fio", "fio, ndctl"))
    assert load_recipe(str(p)).key != k1


@pytest.mark.parametrize("text,field", [
    ("name: t\nsuite: bookworm\npackages: [fio]\nflavour: x\n", "flavour"),
    ("name: t\nsuite: bookworm\n", "packages"),
    ("name: t\nsuite: bookworm\npackages: ['rm -rf /']\n", "packages"),
    ("name: t\nsuite: bookworm\npackages: [fio]\nvariant: huge\n", "variant"),
    ("name: t\nsuite: bookworm\npackages: [fio]\nsize_mb: 10\n", "size_mb"),
])
def test_bad_recipes(tmp_path, text, field):
    p = tmp_path / "t.yaml"
    p.write_text(text)
    with pytest.raises(UserError) as e:
        load_recipe(str(p))
    assert str(p) in str(e.value) and field in str(e.value)


def test_unknown_recipe_lists_valid_ones():
    with pytest.raises(UserError, match="debian-bookworm"):
        load_recipe("nosuch")


def test_shipped_recipe_has_the_workload_tools():
    r = load_recipe("debian-bookworm")
    for pkg in ("openssh-server", "fio", "perftest", "rdma-core", "ibverbs-utils", "ndctl",
                "xfsprogs", "e2fsprogs", "iproute2", "kmod", "procps"):
        assert pkg in r.packages


def test_host_mirror_reads_deb822_and_one_line(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\n\n"
        "Types: deb\nURIs: http://mirror.example/debian-security\n")
    assert host_mirror(tmp_path) == "http://mirror.example/debian"
    (tmp_path / "sources.list.d" / "debian.sources").unlink()
    (tmp_path / "sources.list").write_text("deb [arch=amd64] http://m2.example/debian bookworm main\n")
    assert host_mirror(tmp_path) == "http://m2.example/debian"


def test_cpio_newc_layout():
    data = cpio.newc([cpio.directory("bin"), cpio.file("init", b"#!/bin/sh\n", 0o755),
                      cpio.symlink("bin/sh", "busybox")])
    assert data.startswith(b"070701")
    assert data.count(b"070701") == 4  # three entries and the trailer
    assert b"TRAILER!!!" in data and len(data) % 4 == 0
    # name sizes include the NUL; file size field of "init" is 10 bytes
    i = data.index(b"init\0")
    assert int(data[i - 110 + 54:i - 110 + 62], 16) == 10


DEP = """kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko
kernel/fs/jbd2/jbd2.ko:
kernel/fs/mbcache.ko:
kernel/lib/crc16.ko:
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/crypto/crc32c_generic.ko:
"""


def test_load_order_puts_dependencies_first_once():
    order = load_order(parse_modules_dep(DEP), ("virtio_blk", "ext4", "crc32c_generic",
                                                "not_there"))
    names = [p.rsplit("/", 1)[1] for p in order]
    assert names.index("virtio_ring.ko") < names.index("virtio.ko") < names.index("virtio_blk.ko")
    assert names.index("jbd2.ko") < names.index("ext4.ko")
    assert len(names) == len(set(names)) == 8


def _image_files(d):
    """An image directory as an older lab left it: everything world-readable."""
    d.mkdir(mode=0o755, parents=True)
    d.chmod(0o755)
    for name, text in (("manifest.json", '{"name": "t", "key": "k"}'),
                       ("ssh_host_ed25519_key.pub", "ssh-ed25519 AAAA lab-guest\n"),
                       ("id_ed25519", "private\n"), ("id_ed25519.pub", "ssh-ed25519 BBBB lab\n"),
                       ("rootfs.ext4", "guest with its host key"), ("build.log", "")):
        (d / name).write_text(text)
        (d / name).chmod(0o644)
    return d


def _modes(d):
    return stat.S_IMODE(d.stat().st_mode), {f.name: stat.S_IMODE(f.stat().st_mode)
                                            for f in d.iterdir()}


def test_an_image_found_world_readable_is_made_private_on_load(tmp_path):
    """rootfs.ext4 holds the guest's SSH host key and id_ed25519 logs in as root:
    a cached image is its owner's only, older ones fixed when loaded."""
    d = _image_files(tmp_path / "t-k")
    (d / "rootfs.ext4").chmod(0o400)  # never widened
    image = Image.load(d)
    assert image.host_key == "ssh-ed25519 AAAA lab-guest"
    mode, files = _modes(d)
    assert mode == 0o700
    assert files.pop("rootfs.ext4") == 0o400
    assert set(files.values()) == {0o600}


def test_a_built_image_is_private_before_it_appears(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "t.yaml").write_text(RECIPE)
    recipe = load_recipe(str(tmp_path / "t.yaml"))
    seen = []

    def fake_build(recipe, work, log):
        _image_files(work / "out")
        seen.append(work)

    def fake_rename(src, dst):
        seen.append(_modes(Path(src)))
        os.replace(src, dst)

    monkeypatch.setattr(build, "_build", fake_build)
    monkeypatch.setattr(build.os, "geteuid", lambda: 0)
    monkeypatch.setattr(build.proc, "which", lambda *a: None)
    monkeypatch.setattr(build.os, "rename", fake_rename)
    image = build.ensure(recipe, log=lambda m: None)
    (mode, files), = seen[1:]
    assert mode == 0o700 and set(files.values()) == {0o600}  # when renamed into place
    assert _modes(image.dir) == (mode, files)


def test_an_image_of_another_user_too_open_is_an_infra_error(tmp_path, monkeypatch):
    d = _image_files(tmp_path / "t-k")

    def denied(path, mode):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(build.os, "chmod", denied)
    with pytest.raises(InfraError, match="chmod -R go="):
        Image.load(d)
