"""MachineSpec.argv is pure: golden files pin the exact qemu command line."""

import os
from pathlib import Path

import pytest

from lab.vm.devices import (Nvdimm, NvmeDrive, QmpSocket, SerialSocket, UserNet, VirtioBlk,
                            VirtioRng)
from lab.vm.spec import MachineSpec, kernel_cmdline

GOLDEN = Path(__file__).parent / "golden"


def spec(**kw):
    devices = (SerialSocket(Path("/s/ser0.sock"), Path("/r/console.log")),
               QmpSocket(Path("/s/qmp.sock")),
               VirtioBlk("root", Path("/r/disks/root.qcow2"), format="qcow2", serial="labroot"),
               VirtioBlk("mods", Path("/c/modules.ext4"), readonly=True, serial="labmods"),
               NvmeDrive("nvme0", Path("/r/disks/nvme0.img")),
               UserNet("net0", 10022), VirtioRng())
    base = dict(kernel=Path("/boot/vmlinuz"), initrd=Path("/c/initramfs.cpio"),
                cmdline=kernel_cmdline(hung_task_timeout=20), devices=devices)
    base.update(kw)
    return MachineSpec(**base)


def check_golden(name, argv):
    path = GOLDEN / name
    text = "\n".join(argv) + "\n"
    if os.environ.get("LAB_UPDATE_GOLDEN") and text != path.read_text():
        path.write_text(text)
        pytest.fail(f"{path} rewritten; review the diff and run again without "
                    "LAB_UPDATE_GOLDEN")
    assert text == path.read_text(), f"argv differs from {path} (LAB_UPDATE_GOLDEN=1 to refresh)"


def test_default_machine_argv_matches_golden():
    check_golden("tcg-nvme.argv", spec().argv())


def test_pmem_adds_nvdimm_machine_option_and_memory_slot():
    s = spec(devices=spec().devices + (Nvdimm("nvdimm0", Path("/r/disks/pmem0.img"), 512),))
    argv = s.argv()
    check_golden("tcg-nvme-pmem.argv", argv)
    assert "pc,accel=tcg,nvdimm=on" in argv
    assert "2048M,slots=1,maxmem=2560M" in argv


def test_kvm_uses_host_cpu():
    argv = spec(accel="kvm").argv()
    assert argv[argv.index("-cpu") + 1] == "host"
    assert "pc,accel=kvm" in argv


def test_unknown_accelerator_is_refused():
    with pytest.raises(ValueError):
        spec(accel="hvf").argv()


def test_ssh_forward_binds_loopback_only():
    argv = spec().argv()
    net = argv[argv.index("-netdev") + 1]
    assert "hostfwd=tcp:127.0.0.1:10022-:22" in net


def test_shell_line_round_trips():
    import shlex
    s = spec(cmdline="console=ttyS0 foo='a b'")
    assert shlex.split(s.shell()) == s.argv()


def test_hung_task_timeout_on_command_line():
    assert "sysctl.kernel.hung_task_timeout_secs=7" in kernel_cmdline(hung_task_timeout=7)
    assert "hung_task" not in kernel_cmdline()


def test_commas_in_paths_are_doubled():
    """Issue 10 item 4: `-o /tmp/runs/comma,dir` made qemu read 'dir/console.log'
    as a parameter; every path inside a comma-separated option is escaped."""
    d = Path("/r/a,b")
    s = spec(name="lab-6.1,x", devices=(
        SerialSocket(d / "ser0.sock", d / "console.log"), QmpSocket(d / "qmp.sock"),
        VirtioBlk("root", d / "disks/root.qcow2", format="qcow2", serial="labroot"),
        NvmeDrive("nvme0", d / "disks/nvme0.img"), Nvdimm("nvdimm0", d / "disks/pmem0.img", 64),
        UserNet("net0", 10022), VirtioRng()))
    argv = s.argv()
    check_golden("tcg-comma-paths.argv", argv)
    assert all("a,,b" in a for a in argv if "a," in a)


def test_io_error_text_names_the_disk_and_its_filesystem(tmp_path):
    from lab.vm.machine import io_error_text
    disk = tmp_path / "nvme0.img"
    text = io_error_text([
        {"device": "root", "io-status": "ok", "inserted": {"file": "/x/root.qcow2"}},
        {"device": "nvme0", "io-status": "nospace", "inserted": {"file": str(disk)}}])
    assert text.startswith("qemu paused the guest: no space left on device writing")
    assert str(disk) in text and "MiB free of" in text and "root.qcow2" not in text


def test_the_machine_size_is_the_specs():
    """-smp and -m come from the spec, never a default: a job asking for 3
    cpus and 1536 MiB boots a guest of that size."""
    argv = spec(cpus=3, memory_mb=1536).argv()
    assert argv[argv.index("-smp") + 1] == "3"
    assert argv[argv.index("-m") + 1] == "1536M"
    argv = spec(cpus=1, memory_mb=512, devices=(Nvdimm("n", Path("/p"), 128),)).argv()
    assert argv[argv.index("-smp") + 1] == "1"
    assert argv[argv.index("-m") + 1] == "512M,slots=1,maxmem=640M"
