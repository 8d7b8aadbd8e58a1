"""Image recipes, their cache key, the initramfs cpio writer and module
dependency ordering (all pure)."""

import pytest

from lab.errors import UserError
from lab.image import cpio
from lab.image.build import host_mirror
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
