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
from lab.vm.base import Share
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
    """A distro-kernel guest with NVMe and pmem, shared by read-mostly tests;
    a host directory (its cfg.shares[0].host) is mounted in it over 9p."""
    share = tmp_path_factory.mktemp("shared-dir")
    m = Machine(boot_config(distro, image, nvme_mb=1024, pmem_mb=512,
                            shares=(Share(share),)),
                tmp_path_factory.mktemp("shared-guest"))
    m.stages = []
    m.on_stage = lambda stage, at: m.stages.append(stage)
    with m:
        yield m


LINUX_SOURCE = sorted(Path("/usr/src").glob("linux-source-*.tar.xz"))


@pytest.fixture(scope="session")
def lab_kernel():
    """linux-source-6.1 built with lab's default fragments: the one kernel
    build of a test session (a cache hit once built; ~21 min cold). Its
    outcome's build_dir is a built kernel tree (O= directory)."""
    from lab.kernel.api import build_kernel
    from lab.kernel.spec import BuildSpec
    assert LINUX_SOURCE, ("no /usr/src/linux-source-*.tar.xz: ansible/bootstrap.sh installs "
                          "linux-source-6.1 (CI runs it)")
    return build_kernel(BuildSpec(linux_source=True), progress=False)
