"""`make && lab boot --kernel .`: a host directory mounted in the guest over
virtio-9p, files crossing both ways while the guest runs; a kernel tree
(lab's own build directory of linux-source-6.1, an O= directory, stands in
for the user's) booted in place by the CLI, its modules loadable, its
stages printed one a line off a terminal."""

import os
import subprocess
import sys

import pytest

from lab.vm.base import BootStage

from .conftest import REPO

pytestmark = pytest.mark.integration


def test_a_shared_directory_is_read_write_both_ways(shared_guest):
    g = shared_guest.guest
    share = shared_guest.cfg.shares[0].host
    (share / "from-host.txt").write_text("written on the host\n")
    r = g.run(f"cat {share}/from-host.txt && echo written in the guest > {share}/from-guest.txt"
              f" && findmnt -no FSTYPE,OPTIONS {share}", timeout=60)
    assert r.ok, r.stderr
    assert r.stdout.startswith("written on the host\n")
    assert "9p" in r.stdout and "rw" in r.stdout
    assert (share / "from-guest.txt").read_text() == "written in the guest\n"
    # a change on the host is seen at once (no cache), and a removal in the guest too
    (share / "from-host.txt").write_text("changed\n")
    assert g.run(f"cat {share}/from-host.txt", timeout=30).stdout == "changed\n"
    g.run(f"rm {share}/from-guest.txt", timeout=30, check=True)
    assert not (share / "from-guest.txt").exists()
    assert shared_guest.stages == [BootStage.QEMU, BootStage.KERNEL, BootStage.USERSPACE,
                                   BootStage.SSHD, BootStage.SSH, BootStage.READY,
                                   BootStage.SHARED]


@pytest.mark.kernelbuild
def test_lab_boot_a_built_tree_in_place(lab_kernel, image, tmp_path):
    tree = lab_kernel.build_dir
    assert tree is not None and (tree / "arch/x86/boot/bzImage").exists(), tree
    release = (tree / "include/config/kernel.release").read_text().strip()
    (tmp_path / "from-host.txt").write_text("hello\n")
    before = {p: p.stat().st_mtime_ns for p in tree.iterdir()}
    cmd = ("uname -r; pwd; cat from-host.txt; echo from the tree kernel > from-guest.txt; "
           "modprobe xt_mark && grep -c '^xt_mark ' /proc/modules")
    r = subprocess.run([sys.executable, "-m", "lab", "boot", "--kernel", str(tree),
                        "--memory", "1024", "--nvme", "0", "--", "sh", "-c", cmd],
                       capture_output=True, text=True, timeout=600, cwd=tmp_path,
                       env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [release, str(tmp_path), "hello", "1"]
    assert (tmp_path / "from-guest.txt").read_text() == "from the tree kernel\n"
    # the tree itself is not written to (its modules were copied into lab's cache)
    assert {p: p.stat().st_mtime_ns for p in tree.iterdir()} == before
    # off a terminal: a line per boot stage, in order
    stages = [ln.split(": ", 1)[1].rsplit(" (", 1)[0] for ln in r.stderr.splitlines()
              if ln.startswith("[lab] boot: ")]
    assert stages == [str(s) for s in BootStage], r.stderr
