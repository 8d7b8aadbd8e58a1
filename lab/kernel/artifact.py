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


def identity(kernel: KernelArtifact) -> dict[str, str]:
    """What identifies a kernel for results and KernelCI (KCIDB): the tree,
    commit, series (patchset) hash and subjects, configuration key, compiler
    and build log of a `lab build` artifact (from its metadata.json); the
    release for a distro kernel. Keys without a value are left out."""
    if kernel.origin == "distro":
        return {"kernel_tree": "debian", "kernel_commit_name": kernel.release}
    try:
        meta = json.loads((Path(kernel.origin) / "metadata.json").read_text())
    except (OSError, ValueError):
        return {}
    src = meta.get("source") if isinstance(meta.get("source"), dict) else {}
    series = meta.get("series") if isinstance(meta.get("series"), dict) else {}
    log = Path(kernel.origin) / "build.log"
    out = {
        "kernel_tree": str(src.get("origin") or meta.get("repository") or ""),
        "kernel_source_kind": str(src.get("kind") or ""),
        "kernel_commit": str(meta.get("commit") or ""),
        "kernel_series_hash": str(series.get("hash") or ""),
        "kernel_series_subjects": "\n".join(series.get("subjects") or []),
        "kernel_patchset_hash": str(series.get("patchset_hash") or ""),
        "kernel_config_key": str(meta.get("config_key") or meta.get("config_hash") or ""),
        "kernel_fragments": ",".join(map(str, meta.get("fragments") or [])),
        "kernel_compiler": str(meta.get("compiler") or ""),
        "kernel_artifact_key": str(meta.get("key") or ""),
        "kernel_build_log": str(log) if log.exists() else "",
        "kernel_build_started": str(meta.get("started") or ""),
        "kernel_build_s": str(meta.get("make_seconds") or ""),
    }
    return {k: v for k, v in out.items() if v}
