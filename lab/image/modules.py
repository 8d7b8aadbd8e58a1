"""Make a kernel's modules usable by the guest.

Two assets, cached per kernel (release + modules.dep content):
- a read-only ext4 disk holding /lib/modules/<release>, which lab-init
  mounts (distro kernels keep nearly every driver in modules);
- a small initramfs (busybox-static + the modules needed to mount the
  virtio-blk ext4 root), for kernels whose root drivers are modules.
"""

from __future__ import annotations

import gzip
import hashlib
import lzma
import re
from pathlib import Path

from .. import proc
from ..errors import InfraError
from ..kernel.artifact import KernelArtifact
from ..paths import cache_dir, make_once
from . import cpio

INITRAMFS_INIT = Path(__file__).with_name("initramfs-init.sh")
ROOT_MODULES = ("virtio_pci", "virtio_blk", "crc32c_generic", "crc32c_intel", "ext4")
BUSYBOX = Path("/bin/busybox")
# with these built in (=y), the kernel mounts /dev/vda without an initramfs
ROOT_SYMBOLS = ("VIRTIO_PCI", "VIRTIO_BLK", "EXT4_FS", "DEVTMPFS")


def _norm(name: str) -> str:
    base = name.rsplit("/", 1)[-1]
    base = re.sub(r"\.ko(\.(xz|gz|zst))?$", "", base)
    return base.replace("-", "_")


def parse_modules_dep(text: str) -> dict[str, tuple[str, list[str]]]:
    """modules.dep -> {name: (path, [dependency paths])} (pure)."""
    out = {}
    for line in text.splitlines():
        path, sep, deps = line.partition(":")
        if sep:
            out[_norm(path)] = (path, deps.split())
    return out


def load_order(dep: dict[str, tuple[str, list[str]]], wanted: tuple[str, ...]) -> list[str]:
    """Module paths to insmod, dependencies first, each once (pure)."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(path: str) -> None:
        name = _norm(path)
        if name in seen:
            return
        seen.add(name)
        for d in reversed(dep.get(name, (path, []))[1]):
            visit(d)
        order.append(path)

    for w in wanted:
        if w in dep:
            visit(dep[w][0])
    return order


def _key(kernel: KernelArtifact) -> str:
    h = hashlib.sha256(kernel.release.encode())
    if kernel.modules_dir:
        dep = kernel.modules_dir / "modules.dep"
        h.update(dep.read_bytes() if dep.exists() else str(kernel.modules_dir).encode())
        # a kernel tree's modules copied by lab/kernel/tree.py: their content key
        stamp = kernel.modules_dir / "modules.lab-key"
        if stamp.exists():
            h.update(stamp.read_bytes())
    h.update(INITRAMFS_INIT.read_bytes())
    return f"{kernel.release}-{h.hexdigest()[:12]}"


def _read_module(path: Path) -> bytes:
    data = path.read_bytes()
    if path.suffix == ".xz":
        return lzma.decompress(data)
    if path.suffix == ".gz":
        return gzip.decompress(data)
    if path.suffix == ".zst":
        raise InfraError(f"{path}: zstd-compressed modules are not supported in lab's initramfs")
    return data


def initramfs(kernel: KernelArtifact) -> Path | None:
    """The cached initramfs for `kernel`, or None when the kernel can mount the
    root disk by itself (no modules, or its root-path drivers built in)."""
    if kernel.modules_dir is None or all(kernel.config_has(s) == "y" for s in ROOT_SYMBOLS):
        return None
    out = cache_dir() / "kernel-assets" / _key(kernel) / "initramfs.cpio"
    if out.exists():
        return out
    if not BUSYBOX.exists():
        raise InfraError(f"{BUSYBOX} not found (install the Debian package 'busybox-static')")
    dep = parse_modules_dep((kernel.modules_dir / "modules.dep").read_text())
    order = load_order(dep, ROOT_MODULES)
    entries = [cpio.directory(d) for d in ("bin", "dev", "proc", "sys", "newroot", "modules")]
    entries.append(cpio.file("bin/busybox", BUSYBOX.read_bytes(), 0o755))
    entries.append(cpio.symlink("bin/sh", "busybox"))
    entries.append(cpio.file("init", INITRAMFS_INIT.read_bytes(), 0o755))
    names = []
    for p in order:
        name = _norm(p) + ".ko"
        entries.append(cpio.file(f"modules/{name}", _read_module(kernel.modules_dir / p)))
        names.append(name)
    entries.append(cpio.file("modules.list", ("\n".join(names) + "\n").encode()))
    return make_once(out, lambda tmp: tmp.write_bytes(cpio.newc(entries)))


def modules_disk(kernel: KernelArtifact) -> Path | None:
    """The cached read-only ext4 image of the kernel's modules tree."""
    if kernel.modules_dir is None:
        return None
    out = cache_dir() / "kernel-assets" / _key(kernel) / "modules.ext4"
    if out.exists():
        return out
    proc.which("mke2fs", "e2fsprogs")
    used = sum(f.stat().st_size for f in kernel.modules_dir.rglob("*") if f.is_file())
    size_mb = int(used * 1.25 / 2**20) + 64
    return make_once(out, lambda tmp: proc.run(
        ["mke2fs", "-q", "-F", "-t", "ext4", "-O", "^has_journal", "-L", "labmods",
         "-E", "root_owner=0:0", "-d", str(kernel.modules_dir), str(tmp), f"{size_mb}M"],
        timeout=600, check=True))

