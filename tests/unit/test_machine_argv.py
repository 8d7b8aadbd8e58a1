"""The real Machine's qemu argv, built without starting qemu, and the
BootConfig a job's machine settings become (runner.boot_config)."""

import re

from lab.image.build import Image
from lab.job import load_job
from lab.kernel.artifact import KernelArtifact
from lab.matrix import expand
from lab.runner import boot_config
from lab.vm.base import BootConfig
from lab.vm.machine import Machine

from .conftest import make_artifact
from .test_vm_argv import check_golden


def image(tmp_path) -> Image:
    return Image("img", "k", tmp_path / "img" / "rootfs.ext4", tmp_path / "img" / "key",
                 "ssh-ed25519 AAAA", tmp_path / "img")


def test_every_device_of_a_machine_in_its_argv(tmp_path, monkeypatch):
    """Console socket and log, QMP, the root overlay, the kernel's modules
    disk, NVMe, NVDIMM, user networking with the SSH port, the RNG: pinned
    by a golden file (paths of this run replaced by <run>, <sock>)."""
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / "cache"))
    art = make_artifact(tmp_path / "art", "6.1-art")
    mods = art / "modules" / "lib" / "modules" / "6.1-art"
    (mods / "kernel").mkdir(parents=True)
    (art / ".config").write_text("".join(f"CONFIG_{s}=y\n" for s in (
        "VIRTIO_PCI", "VIRTIO_BLK", "EXT4_FS", "DEVTMPFS")))
    kernel = KernelArtifact.from_dir(art)
    cfg = BootConfig(kernel=kernel, image=image(tmp_path), memory_mb=1536, cpus=3,
                     nvme_mb=512, pmem_mb=256, hung_task_timeout=9, extra_cmdline="lab.x=1")
    m = Machine(cfg, tmp_path / "run")
    spec = m.build_spec(ssh_port=10022, accel="tcg")
    text = "\n".join(spec.argv()).replace(str(m.sockdir), "<sock>").replace(
        str(tmp_path / "run"), "<run>").replace(str(tmp_path / "cache"), "<cache>").replace(
        str(tmp_path), "<tmp>")
    text = re.sub(r"kernel-assets/[^/]+/", "kernel-assets/<key>/", text)
    check_golden("machine-build-spec.argv", text.splitlines())
    assert spec.name == "lab-6.1-art" and spec.initrd is None


def test_a_machine_without_nvme_pmem_or_modules_has_none_of_them(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / "cache"))
    kernel = KernelArtifact.from_dir(make_artifact(tmp_path / "art", "6.1-art"))
    cfg = BootConfig(kernel=kernel, image=image(tmp_path), nvme_mb=0, pmem_mb=0)
    argv = Machine(cfg, tmp_path / "run").build_spec(ssh_port=2222, accel="kvm").argv()
    assert not any(a.startswith(("nvme", "nvdimm")) or "labmods" in a for a in argv)
    assert argv[argv.index("-machine") + 1] == "pc,accel=kvm"
    assert argv[argv.index("-m") + 1] == "2048M"
    assert any("hostfwd=tcp:127.0.0.1:2222-:22" in a for a in argv)


JOB = """\
name: j
image: debian-bookworm
machine: {{cpus: 1, memory_mb: 768, nvme_mb: 128, pmem_mb: 64, cmdline: "a=1", accel: {accel}}}
timeouts: {{boot: 77}}
hung_task_timeout: 0
kernel: {{artifact: {art}}}
variants:
  v: {{cmdline: "b=2"}}
workloads: [{{shell: {{command: "true"}}}}]
"""


def test_a_jobs_machine_becomes_the_boot_config(tmp_path):
    art = make_artifact(tmp_path / "art", "6.1-art")
    kernel = KernelArtifact.from_dir(art)
    for accel, want in (("auto", None), ("tcg", "tcg"), ("kvm", "kvm")):
        p = tmp_path / f"{accel}.yaml"
        p.write_text(JOB.format(art=art, accel=accel))
        job = load_job(p)
        [cell] = expand(job)
        img = image(tmp_path)
        assert boot_config(job, kernel, img, cell) == BootConfig(
            kernel=kernel, image=img, memory_mb=768, cpus=1, nvme_mb=128, pmem_mb=64,
            hung_task_timeout=0, extra_cmdline="a=1 b=2", boot_timeout=77.0, accel=want)
        # without a cell (lab test-patch's single boot): the job's cmdline only
        assert boot_config(job, kernel, img).extra_cmdline == "a=1"


def test_pvh_and_initramfs_when_the_kernel_has_them(tmp_path, monkeypatch):
    """A vmlinux with a PVH entry is booted directly unless the config says
    not to; a kernel whose root drivers are modules gets its initramfs."""
    import lab.vm.machine as machine
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(machine, "pvh_kernel", lambda image: tmp_path / "pvh.vmlinux")
    monkeypatch.setattr(machine, "initramfs", lambda kernel: tmp_path / "initramfs.cpio")
    kernel = KernelArtifact.from_dir(make_artifact(tmp_path / "art", "6.1-art"))
    for pvh, want in ((True, tmp_path / "pvh.vmlinux"), (False, kernel.image)):
        cfg = BootConfig(kernel=kernel, image=image(tmp_path), pvh=pvh)
        argv = Machine(cfg, tmp_path / "run").build_spec(ssh_port=2222, accel="tcg").argv()
        assert argv[argv.index("-kernel") + 1] == str(want)
        assert argv[argv.index("-initrd") + 1] == str(tmp_path / "initramfs.cpio")


def test_an_unknown_accelerator_says_which_are_known():
    import pytest
    from lab.vm.spec import MachineSpec
    with pytest.raises(ValueError, match=r"accel must be one of \('kvm', 'tcg'\), got 'hvf'"):
        MachineSpec(kernel="/k", cmdline="", accel="hvf").argv()


def test_a_shared_directory_is_a_virtio_9p_device(tmp_path, monkeypatch):
    """--share DIR: -fsdev local (read-write: no readonly, security_model=none)
    + virtio-9p-pci with the tag the guest mounts, a comma in the path doubled."""
    from lab.vm.base import Share
    from lab.vm.machine import mount_command
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / "cache"))
    kernel = KernelArtifact.from_dir(make_artifact(tmp_path / "art", "6.1-art"))
    share = Share(tmp_path / "my,src")
    cfg = BootConfig(kernel=kernel, image=image(tmp_path), nvme_mb=0, shares=(share,))
    argv = Machine(cfg, tmp_path / "run").build_spec(ssh_port=2222, accel="tcg").argv()
    i = argv.index("-fsdev")
    assert argv[i + 1] == (f"local,id=fs0,path={tmp_path}/my,,src,security_model=none,"
                           "multidevs=remap")
    assert argv[i + 2:i + 4] == ["-device", "virtio-9p-pci,fsdev=fs0,mount_tag=labshare0"]
    assert "readonly" not in argv[i + 1]
    cmd = mount_command(share, "labshare0")
    assert "modprobe -qa 9pnet_virtio 9p" in cmd
    assert cmd.endswith("mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 "
                        f"labshare0 {tmp_path}/my,src")
    assert mount_command(Share(tmp_path / "a b"), "t").endswith(f" t '{tmp_path}/a b'")
    none = BootConfig(kernel=kernel, image=image(tmp_path), nvme_mb=0)
    assert "-fsdev" not in Machine(none, tmp_path / "r2").build_spec(2222, "tcg").argv()


def test_a_share_the_guest_cannot_mount_is_a_clear_boot_error(tmp_path, monkeypatch):
    """After the guest is ready, each share is mounted over SSH; a kernel
    without 9p is named as such (the options to enable), another failure
    carries the mount's own words."""
    import pytest
    from lab.guest.fake import FakeGuest
    from lab.vm.base import BootError, BootStage, Share
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / "cache"))
    kernel = KernelArtifact.from_dir(make_artifact(tmp_path / "art", "6.1-art"))
    cfg = BootConfig(kernel=kernel, image=image(tmp_path), shares=(Share(tmp_path / "src"),))
    m = Machine(cfg, tmp_path / "run")
    seen = []
    m.on_stage = lambda stage, at: seen.append(stage)
    m.guest = FakeGuest()
    m.guest.answer(r"mount -t 9p", rc=32, stderr="mount: unknown filesystem type '9p'")
    m.guest.answer(r"/proc/filesystems", rc=1)
    with pytest.raises(BootError, match=r"cannot mount the shared directory .*/src in the "
                                        r"guest: the guest kernel has no 9p .*CONFIG_9P_FS.*"
                                        r"--no-share.*unknown filesystem type"):
        m._mount_shares()
    m.guest.answer(r"/proc/filesystems", stdout="nodev\t9p\n")
    with pytest.raises(BootError, match="mount failed: mount: unknown"):
        m._mount_shares()
    m.guest.answer(r"mount -t 9p", rc=0)
    m._mount_shares()
    assert seen == [BootStage.SHARED]
    assert any("mount -t 9p" in c and str(tmp_path / "src") in c for c in m.guest.commands)
