"""Typed QEMU devices. Each renders its own argv fragment (pure) and may ask
for machine options (e.g. nvdimm=on) or memory slots."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


def escape(value) -> str:
    """A value inside a comma-separated qemu option (-drive, -object,
    -chardev, -qmp, -name): qemu reads ',,' as a literal comma, so a path
    with a comma in it (an -o directory) stays one value instead of
    splitting into a bogus parameter."""
    return str(value).replace(",", ",,")


def _kv(head: str = "", **opts) -> str:
    """head,key=value,... with every value escaped; None drops a key, a bool
    is on/off, a trailing '_' is dropped (if_) and '_' is '-' (mem_path)."""
    parts = [head] if head else []
    for k, v in opts.items():
        if v is None:
            continue
        if isinstance(v, bool):
            v = "on" if v else "off"
        parts.append(f"{k.rstrip('_').replace('_', '-')}={escape(v)}")
    return ",".join(parts)


class Device:
    machine_opts: tuple[str, ...] = ()
    memory_slots: int = 0
    memory_extra_mb: int = 0

    def args(self) -> list[str]:
        raise NotImplementedError


@dataclass(frozen=True)
class VirtioBlk(Device):
    """A virtio-blk disk (the root disk is the first one: /dev/vda)."""
    id: str
    path: Path
    format: str = "raw"
    readonly: bool = False
    serial: str | None = None

    def args(self) -> list[str]:
        return ["-drive", _kv(file=self.path, format=self.format, if_="none", id=self.id,
                              readonly=self.readonly or None, cache="unsafe"),
                "-device", _kv("virtio-blk-pci", drive=self.id, serial=self.serial)]


@dataclass(frozen=True)
class NvmeDrive(Device):
    """An emulated NVMe controller with one namespace (/dev/nvme0n1)."""
    id: str
    path: Path
    serial: str = "labnvme0"
    format: str = "raw"

    def args(self) -> list[str]:
        return ["-drive", _kv(file=self.path, format=self.format, if_="none", id=self.id,
                              cache="unsafe"),
                "-device", _kv("nvme", drive=self.id, serial=self.serial)]


@dataclass(frozen=True)
class UserNet(Device):
    """virtio-net on QEMU user networking; guest SSH forwarded from 127.0.0.1:ssh_port."""
    id: str
    ssh_port: int

    def args(self) -> list[str]:
        return ["-netdev", _kv("user", id=self.id,
                               hostfwd=f"tcp:127.0.0.1:{self.ssh_port}-:22"),
                "-device", _kv("virtio-net-pci", netdev=self.id)]


@dataclass(frozen=True)
class Nvdimm(Device):
    """A file-backed emulated NVDIMM (pmem): needs nvdimm=on and a memory slot."""
    id: str
    path: Path
    size_mb: int

    machine_opts = ("nvdimm=on",)
    memory_slots = 1

    @property
    def memory_extra_mb(self) -> int:  # type: ignore[override]
        return self.size_mb

    def args(self) -> list[str]:
        return ["-object", _kv("memory-backend-file", id=f"{self.id}mem", share=True,
                               mem_path=self.path, size=f"{self.size_mb}M"),
                "-device", _kv("nvdimm", id=self.id, memdev=f"{self.id}mem")]


@dataclass(frozen=True)
class VirtioRng(Device):
    def args(self) -> list[str]:
        return ["-object", _kv("rng-random", id="rng0", filename="/dev/urandom"),
                "-device", _kv("virtio-rng-pci", rng="rng0")]


@dataclass(frozen=True)
class SerialSocket(Device):
    """The serial console on a unix socket (to send sysrq) with a log file."""
    socket: Path
    logfile: Path
    id: str = "ser0"

    def args(self) -> list[str]:
        return ["-chardev", _kv("socket", id=self.id, path=self.socket, server=True,
                                wait=False, logfile=self.logfile),
                "-serial", f"chardev:{self.id}"]


@dataclass(frozen=True)
class QmpSocket(Device):
    socket: Path

    def args(self) -> list[str]:
        return ["-qmp", _kv(f"unix:{escape(self.socket)}", server=True, wait=False)]


@dataclass(frozen=True)
class Virtio9p(Device):
    """A host directory exported over virtio-9p (read-write): the guest
    mounts it with `mount -t 9p -o trans=virtio,version=9p2000.L TAG DIR`.
    security_model=none: files the guest creates belong to qemu's user on
    the host; multidevs=remap keeps inode numbers unique when the directory
    spans several host filesystems."""
    id: str
    path: Path
    tag: str

    def args(self) -> list[str]:
        # spelled by hand: these option names keep their '_' (see _kv)
        return ["-fsdev", f"local,id={escape(self.id)},path={escape(self.path)},"
                          "security_model=none,multidevs=remap",
                "-device", f"virtio-9p-pci,fsdev={escape(self.id)},mount_tag={escape(self.tag)}"]
