"""A bootable kernel: its image, release string and modules tree.

Either Debian's installed distro kernel (/boot/vmlinuz-*, /lib/modules/*) or
an artifact directory produced by `lab build` (see lab.kernel.build), which
holds bzImage, System.map, .config, vmlinux, modules/lib/modules/<release>
and metadata.json.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError

DISTRO_FLAVOUR = "amd64"


@dataclass(frozen=True)
class KernelArtifact:
    image: Path                    # bzImage / vmlinuz
    release: str                   # what `uname -r` prints in the guest
    modules_dir: Path | None       # .../lib/modules/<release>, or None if monolithic
    origin: str                    # "distro" or the artifact directory
    vmlinux: Path | None = None
    system_map: Path | None = None
    config: Path | None = None

    def config_has(self, symbol: str) -> str | None:
        """'y', 'm' or None for CONFIG_<symbol> in this kernel's config."""
        if not self.config or not self.config.exists():
            return None
        m = re.search(rf"^CONFIG_{re.escape(symbol)}=(\w+)$", self.config.read_text(),
                      re.M)
        return m.group(1) if m else None

    @classmethod
    def from_dir(cls, d: Path, *, file: str = "", field: str = "kernel") -> "KernelArtifact":
        d = Path(d).expanduser().resolve()
        meta_path = d / "metadata.json"
        image = d / "bzImage"
        if not image.exists():
            raise UserError(f"{d} is not a kernel artifact directory (no bzImage); "
                            "valid: 'distro', a directory printed by `lab build`, or a build: block",
                            file=file, field=field)
        release = ""
        if meta_path.exists():
            release = json.loads(meta_path.read_text()).get("release", "")
        mods = d / "modules" / "lib" / "modules"
        mod_dirs = sorted(p for p in mods.iterdir()) if mods.is_dir() else []
        if not release and mod_dirs:
            release = mod_dirs[0].name
        modules_dir = mods / release if release and (mods / release).is_dir() else None
        opt = lambda n: (d / n) if (d / n).exists() else None  # noqa: E731
        return cls(image=image, release=release or "unknown", modules_dir=modules_dir,
                   origin=str(d), vmlinux=opt("vmlinux"), system_map=opt("System.map"),
                   config=opt(".config") or opt("config"))


def _release_key(release: str):
    return [int(x) if x.isdigit() else x for x in re.split(r"[.-]", release)]


def distro_kernel(release: str | None = None, boot: Path = Path("/boot"),
                  modules_root: Path = Path("/lib/modules")) -> KernelArtifact:
    """The newest (or the named) Debian distro kernel installed on this host."""
    found = {}
    for p in boot.glob(f"vmlinuz-*-{DISTRO_FLAVOUR}"):
        rel = p.name[len("vmlinuz-"):]
        if (modules_root / rel).is_dir():
            found[rel] = p
    if release:
        if release not in found:
            raise UserError(f"distro kernel {release} is not installed; installed: "
                            f"{', '.join(sorted(found)) or 'none'} "
                            "(apt-get install linux-image-amd64)", field="kernel")
        rel = release
    else:
        if not found:
            raise UserError("no Debian distro kernel is installed in /boot "
                            "(apt-get install linux-image-amd64)", field="kernel")
        rel = max(found, key=_release_key)
    image = found[rel]
    if not os.access(image, os.R_OK):
        raise UserError(f"{image} is not readable by this user (Debian installs it 0600); "
                        "run as root or `chmod o+r` it", field="kernel")
    cfg = boot / f"config-{rel}"
    sm = boot / f"System.map-{rel}"
    return KernelArtifact(image=image, release=rel, modules_dir=modules_root / rel,
                          origin="distro", config=cfg if cfg.exists() else None,
                          system_map=sm if sm.exists() else None)
