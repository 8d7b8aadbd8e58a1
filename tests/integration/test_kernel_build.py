"""The real thing: build Debian's linux-source (6.1) with the lab fragments,
boot it and look inside.

The build goes through lab's caches (source import, build directory, ccache,
artifact cache), so it costs ~15 min on 2 cores once per machine and under a
second after that."""

from __future__ import annotations

import shutil
import time

import pytest

from lab.kernel.api import build_kernel
from lab.kernel.spec import BuildSpec
from lab.kernel.outcome import StepState

pytestmark = [pytest.mark.integration, pytest.mark.kernelbuild]

@pytest.fixture(scope="module")
def built(lab_kernel):
    return lab_kernel     # the session's one build (tests/integration/conftest.py)


def test_build_produces_a_complete_artifact(built):
    assert built.ok, "\n".join(c.details for c in built.steps)
    assert [c.state for c in built.steps] == [StepState.OK, StepState.OK]
    art = built.artifact
    d = built.artifact_dir
    assert art.release.startswith("6.1")
    for name in ("bzImage", "System.map", ".config", "vmlinux", "gup_test", "metadata.json"):
        assert (d / name).exists(), name
    assert (d / "gup_test").read_bytes()[:4] == b"\x7fELF"
    for sym in ("VIRTIO_BLK", "EXT4_FS", "GUP_TEST", "RDMA_RXE", "FS_DAX", "PROVE_LOCKING"):
        assert art.config_has(sym) == "y", sym


def test_cache_hit_is_under_a_second(built):
    start = time.monotonic()
    again = build_kernel(BuildSpec(linux_source=True), progress=False)
    assert time.monotonic() - start < 1.0
    assert again.cached and again.artifact_dir == built.artifact_dir


def test_boots_and_has_gup_test(built, tmp_path):
    assert shutil.which("qemu-system-x86_64"), "qemu-system-x86 is not installed (bootstrap)"
    assert built.artifact is not None
    from lab.image.build import ensure
    from lab.image.recipe import load_recipe
    from lab.vm.machine import BootConfig, Machine

    image = ensure(load_recipe("debian-bookworm"))
    cfg = BootConfig(kernel=built.artifact, image=image, memory_mb=1024, nvme_mb=0)
    with Machine(cfg, tmp_path) as m:
        uname = m.guest.run("uname -r", timeout=30).stdout.strip()
        assert uname == built.artifact.release
        r = m.guest.run("mountpoint -q /sys/kernel/debug || mount -t debugfs none "
                        "/sys/kernel/debug; test -e /sys/kernel/debug/gup_test && echo present",
                        timeout=30)
        assert r.stdout.strip() == "present", r.stdout + r.stderr
        # the boot path is built in, so no initramfs is needed for the root disk
        for sym in ("VIRTIO_PCI", "VIRTIO_BLK", "EXT4_FS", "DEVTMPFS", "DEVTMPFS_MOUNT"):
            assert built.artifact.config_has(sym) == "y", sym
