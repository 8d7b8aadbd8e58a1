"""Build a recipe into a cached ext4 root image with mmdebstrap + mke2fs -d.

Cache layout: <cache>/images/<name>-<key>/{rootfs.ext4, id_ed25519,
id_ed25519.pub, ssh_host_ed25519_key.pub, manifest.json}. A directory
exists only once complete (built beside it, then renamed), so a present
directory is a cache hit.

An image directory holds the guest's SSH host key (inside rootfs.ext4) and
root's client key: it is its owner's only (0700, files 0600), made so before
it is renamed into place and fixed on load when an older lab left it open.
qemu runs as the same user, so it still reads rootfs.ext4.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .. import proc
from ..errors import InfraError
from ..paths import cache_dir
from .recipe import INIT_SCRIPT, Recipe

BUILD_TIMEOUT = 1800
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


@dataclass(frozen=True)
class Image:
    name: str
    key: str
    rootfs: Path
    ssh_key: Path               # private key for root in the guest
    host_key: str               # "ssh-ed25519 AAAA..." of the guest's sshd
    dir: Path

    @classmethod
    def load(cls, d: Path) -> "Image":
        make_private(d)
        m = json.loads((d / "manifest.json").read_text())
        return cls(name=m["name"], key=m["key"], rootfs=d / "rootfs.ext4",
                   ssh_key=d / "id_ed25519",
                   host_key=(d / "ssh_host_ed25519_key.pub").read_text().strip(), dir=d)


def make_private(d: Path) -> None:
    """Make an image directory and its files readable by their owner only.

    Anyone who can read rootfs.ext4 has the guest's SSH host key, and
    id_ed25519 logs in as root: a world-readable cache lets another user
    impersonate or enter the guest. Only modes that are too open are
    changed; symlinks are left alone (chmod would follow them).
    """
    try:
        _restrict(d, PRIVATE_DIR)
        for f in d.iterdir():
            if f.is_file() and not f.is_symlink():
                _restrict(f, PRIVATE_FILE)
    except PermissionError as e:
        raise InfraError(f"image {d} is readable by other users and this user cannot "
                         f"make it private ({e.strerror}): run `chmod -R go= {d}` as its "
                         "owner, or rebuild it with `lab image build --force`") from None


def _restrict(path: Path, allowed: int) -> None:
    """Drop the permission bits of `path` outside `allowed` (never adds any)."""
    mode = stat.S_IMODE(path.lstat().st_mode)
    if mode & ~allowed:
        os.chmod(path, mode & allowed)


def image_dir(recipe: Recipe) -> Path:
    return cache_dir() / "images" / f"{recipe.name}-{recipe.key}"


def cached(recipe: Recipe) -> Image | None:
    d = image_dir(recipe)
    return Image.load(d) if (d / "manifest.json").exists() else None


def host_mirror(sources: Path = Path("/etc/apt")) -> str:
    """The Debian mirror this host's apt uses (deb822 or one-line format)."""
    files = sorted(sources.glob("sources.list.d/*.sources")) + [sources / "sources.list"] + \
        sorted(sources.glob("sources.list.d/*.list"))
    for f in files:
        if not f.exists():
            continue
        text = f.read_text(errors="replace")
        for m in re.finditer(r"^URIs:\s*(\S+)", text, re.M):
            if "security" not in m.group(1):
                return m.group(1)
        for m in re.finditer(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+\S+", text, re.M):
            if "security" not in m.group(1):
                return m.group(1)
    return "http://deb.debian.org/debian"


def ensure(recipe: Recipe, *, log=print, force: bool = False) -> Image:
    """Return the cached image for `recipe`, building it if needed."""
    if not force:
        hit = cached(recipe)
        if hit:
            return hit
    if os.geteuid() != 0:
        raise InfraError("building an image needs root (mmdebstrap writes a root-owned tree "
                         "and mke2fs -d copies ownership); run `sudo lab image build`")
    proc.which("mmdebstrap", "mmdebstrap")
    proc.which("mke2fs", "e2fsprogs")
    proc.which("ssh-keygen", "openssh-client")
    final = image_dir(recipe)
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        _build(recipe, work, log)
        make_private(work / "out")  # before it is visible under its final name
        if final.exists():
            shutil.rmtree(final)
        os.rename(work / "out", final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Image.load(final)


def _build(recipe: Recipe, work: Path, log) -> None:
    root = work / "root"
    out = work / "out"
    out.mkdir(mode=PRIVATE_DIR)
    blog = out / "build.log"
    mirror = recipe.mirror or host_mirror()
    t0 = time.monotonic()
    log(f"image {recipe.name}: mmdebstrap {recipe.suite} ({len(recipe.packages)} packages) "
        f"from {mirror}")
    proc.run(["mmdebstrap", "--mode=root", f"--variant={recipe.variant}",
              "--include=" + ",".join(recipe.packages),
              "--dpkgopt=path-exclude=/usr/share/{doc,man,locale,info}/*",
              "--dpkgopt=path-include=/usr/share/locale/locale.alias",
              recipe.suite, str(root), mirror],
             timeout=BUILD_TIMEOUT, log=blog, check=True)
    t1 = time.monotonic()
    _customize(root, out)
    log(f"image {recipe.name}: mke2fs -d ({recipe.size_mb} MiB)")
    proc.run(["mke2fs", "-q", "-F", "-t", "ext4", "-L", "labroot", "-d", str(root),
              str(out / "rootfs.ext4"), f"{recipe.size_mb}M"],
             timeout=600, log=blog, check=True)
    t2 = time.monotonic()
    pkgs = proc.run(["chroot", str(root), "dpkg-query", "-W", "-f", "${Package}=${Version}\\n"],
                    timeout=120).stdout.split()
    manifest = {"name": recipe.name, "key": recipe.key, "suite": recipe.suite,
                "mirror": mirror, "recipe": str(recipe.path), "built": time.time(),
                "mmdebstrap_seconds": round(t1 - t0, 1), "mke2fs_seconds": round(t2 - t1, 1),
                "packages": pkgs}
    (out / "recipe.yaml").write_text(recipe.text)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))


def _customize(root: Path, out: Path) -> None:
    """Install lab-init, a fresh client key for root, and a quiet sshd config."""
    shutil.copy(INIT_SCRIPT, root / "sbin" / "lab-init")
    os.chmod(root / "sbin" / "lab-init", 0o755)
    key = out / "id_ed25519"
    proc.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "lab", "-f", str(key)],
             timeout=60, check=True)
    ssh = root / "root" / ".ssh"
    ssh.mkdir(mode=0o700, exist_ok=True)
    shutil.copy(key.with_suffix(".pub"), ssh / "authorized_keys")
    os.chmod(ssh / "authorized_keys", 0o600)
    # A host key of its own per image, pinned by the client.
    for old in (root / "etc" / "ssh").glob("ssh_host_*"):
        old.unlink()
    hk = root / "etc" / "ssh" / "ssh_host_ed25519_key"
    proc.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "lab-guest", "-f", str(hk)],
             timeout=60, check=True)
    shutil.copy(hk.with_suffix(".pub"), out / "ssh_host_ed25519_key.pub")
    (root / "etc" / "ssh" / "sshd_config.d").mkdir(exist_ok=True)
    (root / "etc" / "ssh" / "sshd_config.d" / "lab.conf").write_text(
        "HostKey /etc/ssh/ssh_host_ed25519_key\nPermitRootLogin prohibit-password\n"
        "UsePAM no\nUseDNS no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PrintMotd no\nMaxSessions 64\nMaxStartups 64\n")
    (root / "etc" / "hostname").write_text("lab-guest\n")
    (root / "etc" / "fstab").write_text("/dev/vda / ext4 rw,relatime 0 1\n")
    for d in ("var/lib/apt/lists", "var/cache/apt/archives"):
        for f in (root / d).glob("*"):
            if f.is_file():
                f.unlink()
