"""Fixtures for integration tests: a real image, the real distro kernel, a
real QEMU guest reached over real SSH. One guest is shared per session where
tests only read from it, to keep TCG boots few."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lab.image.build import ensure
from lab.image.recipe import load_recipe
from lab.kernel.artifact import distro_kernel
from lab.vm.machine import BootConfig, Machine

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session", autouse=True)
def _own_history(tmp_path_factory):
    """Integration runs record into a history store of their own."""
    import os
    old = os.environ.get("LAB_HISTORY")
    os.environ["LAB_HISTORY"] = str(tmp_path_factory.mktemp("history") / "history.sqlite")
    yield
    if old is None:
        os.environ.pop("LAB_HISTORY", None)
    else:
        os.environ["LAB_HISTORY"] = old


def pytest_collection_modifyitems(items):
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def image():
    if not shutil.which("qemu-system-x86_64") or not shutil.which("mmdebstrap"):
        pytest.fail("integration tests need qemu-system-x86 and mmdebstrap (run .ci/run)")
    return ensure(load_recipe("debian-bookworm"))


@pytest.fixture(scope="session")
def distro():
    return distro_kernel()


def boot_config(kernel, image, **kw) -> BootConfig:
    kw.setdefault("boot_timeout", 240)
    kw.setdefault("hung_task_timeout", 10)
    return BootConfig(kernel=kernel, image=image, **kw)


@pytest.fixture(scope="session")
def shared_guest(image, distro, tmp_path_factory):
    """A distro-kernel guest with NVMe and pmem, shared by read-mostly tests."""
    m = Machine(boot_config(distro, image, nvme_mb=1024, pmem_mb=512),
                tmp_path_factory.mktemp("shared-guest"))
    with m:
        yield m
