"""A kernel the user built in their own tree, booted in place (`lab boot
--kernel PATH`, the `make && vng` habit): a kernel tree or an O= build
directory (arch/x86/boot/bzImage, .config, include/config/kernel.release,
modules.order), or a bzImage file alone.

The tree is only read. Its modules are copied, by modules.order, into lab's
cache and indexed there with depmod (what `make modules_install` does,
without writing anything into the tree), keyed by the release and each
module's path, size and mtime; the guest then gets them the way a `lab
build` artifact's modules go (lab/image/modules.py). A bzImage alone boots
without modules.

Pure parts (release from the bzImage header, the config check, modules.order
-> module paths) are apart from the copy.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

from .. import proc
from ..errors import UserError
from ..paths import cache_dir, cache_lock
from .artifact import KernelArtifact

BZIMAGE = Path("arch/x86/boot/bzImage")
RELEASE_FILE = Path("include/config/kernel.release")
STAMP = "modules.lab-key"        # in an installed copy: the key of its content
SETUP_MAGIC = b"HdrS"            # the x86 boot protocol header, at 0x202

# What lab's boot needs of a kernel's configuration. The root disk path is
# either built in or, with modules (lab's initramfs loads them), modular.
ROOT_PATH = ("VIRTIO_PCI", "VIRTIO_BLK", "EXT4_FS")
BUILT_IN = ("DEVTMPFS",)                           # lab-init mounts /dev before modules
PRESENT = ("VIRTIO_NET", "UNIX", "INET")           # y or m: eth0 and sshd
SHARE = ("NET_9P", "NET_9P_VIRTIO", "9P_FS")       # y or m: --share (virtio-9p)


@dataclass(frozen=True)
class ConfigProblem:
    """Options a kernel's .config lacks for a boot, and what they are for."""

    symbols: tuple[str, ...]
    why: str

    def text(self) -> str:
        return f"{', '.join('CONFIG_' + s for s in self.symbols)} ({self.why})"


def parse_config(text: str) -> dict[str, str]:
    """A .config -> {SYMBOL: value} of the symbols set (pure)."""
    return {m.group(1): m.group(2)
            for m in re.finditer(r"^CONFIG_(\w+)=(.*)$", text, re.M)}


def config_problems(config: dict[str, str], *, has_modules: bool,
                    share: bool) -> list[ConfigProblem]:
    """What a configuration lacks to boot under lab (pure): the root path
    built in (or modular with modules to load), devtmpfs built in, the
    network and sshd's sockets, and 9p when a directory is shared."""
    problems = []
    ok = ("y", "m") if has_modules else ("y",)
    missing = tuple(s for s in ROOT_PATH if config.get(s) not in ok)
    if missing:
        why = ("the root disk: ext4 on virtio-blk over virtio-pci" if has_modules else
               "the root disk, built in (=y): a bzImage alone has no modules to load")
        problems.append(ConfigProblem(missing, why))
    missing = tuple(s for s in BUILT_IN if config.get(s) != "y")
    if missing:
        problems.append(ConfigProblem(missing, "built in (=y): lab-init mounts /dev"))
    missing = tuple(s for s in PRESENT if config.get(s) not in ok)
    if missing:
        problems.append(ConfigProblem(missing, "the guest's network and sshd"))
    if share:
        missing = tuple(s for s in SHARE if config.get(s) not in ok)
        if missing:
            problems.append(ConfigProblem(missing, "--share mounts a host directory over "
                                                   "virtio-9p; or boot with --no-share"))
    return problems


def bzimage_release(header: bytes) -> str | None:
    """The release string in a bzImage's setup header (pure): the boot
    protocol's kernel_version pointer (0x20E) to "6.1.0-foo (user@host) #1 ...",
    of which the first word is what `uname -r` prints. None when `header` is
    not a bzImage."""
    if len(header) < 0x210 or header[0x202:0x206] != SETUP_MAGIC:
        return None
    ptr, = struct.unpack_from("<H", header, 0x20E)
    start = ptr + 0x200
    if not ptr or start >= len(header):
        return None
    text = header[start:start + 256].split(b"\0", 1)[0].decode("ascii", "replace")
    return text.split()[0] if text.strip() else None


def module_paths(order: str) -> list[str]:
    """modules.order -> the .ko paths relative to the build directory (pure);
    kernels from 6.2 list the .o files (kbuild builds the .ko beside them)."""
    out = []
    for line in order.splitlines():
        line = line.strip()
        if not line:
            continue
        out.append(line[:-2] + ".ko" if line.endswith(".o") else line)
    return out


@dataclass(frozen=True)
class TreeKernel:
    """What a --kernel PATH turned out to be."""

    path: Path                 # as resolved
    image: Path
    release: str
    tree: Path | None          # the build directory (None: a bzImage alone)

    @property
    def config(self) -> Path | None:
        """The tree's .config; for a bzImage alone, one found beside it: a
        distro's /boot/config-<release>, or the .config of the tree whose
        arch/x86/boot/bzImage it is."""
        if self.tree is not None:
            c = self.tree / ".config"
            return c if c.is_file() else None
        near = [self.image.parent / f"config-{self.release}"]
        if self.image.parts[-4:] == BZIMAGE.parts:
            near.append(self.image.parents[3] / ".config")
        return next((c for c in near if c.is_file()), None)


def is_tree(path: Path) -> bool:
    """A directory that looks like a kernel tree or build directory."""
    return path.is_dir() and ((path / "Kbuild").exists() or (path / BZIMAGE).exists()
                              or (path / ".config").exists()
                              or (path / "arch" / "x86").is_dir())


def _read_header(image: Path) -> bytes:
    with open(image, "rb") as f:
        return f.read(0x10000)


def detect(path: str | Path, *, field: str = "--kernel") -> TreeKernel:
    """A built kernel tree (or O= build directory) or a bzImage file, checked:
    the path exists, the tree has its bzImage, the bzImage is one, and the
    tree's release matches the bzImage's (else the tree was rebuilt after
    make stopped halfway)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise UserError(f"{p} does not exist; valid: a built kernel tree (or O= build "
                        "directory), a bzImage, 'distro' or a `lab build` artifact directory",
                        field=field)
    p = p.resolve()
    if p.is_file():
        release = bzimage_release(_read_header(p))
        if release is None:
            raise UserError(f"{p} is not a bzImage (no x86 boot header 'HdrS' at 0x202)",
                            field=field)
        return TreeKernel(p, p, release, None)
    image = p / BZIMAGE
    if not image.is_file():
        what = "a kernel tree" if is_tree(p) else "a directory"
        raise UserError(f"{p} is {what} without {BZIMAGE}: build it first (`make` there, or "
                        "`make O=DIR` and give DIR)", field=field)
    header_release = bzimage_release(_read_header(image))
    if header_release is None:
        raise UserError(f"{image} is not a bzImage (no x86 boot header)", field=field)
    release = header_release
    rel_file = p / RELEASE_FILE
    if rel_file.is_file():
        release = rel_file.read_text().strip() or header_release
        if release != header_release:
            raise UserError(f"{p}: {RELEASE_FILE} says {release} but {BZIMAGE} is "
                            f"{header_release}: the tree changed since the bzImage was "
                            "built; run make again", field=field)
    if not (p / ".config").is_file():
        raise UserError(f"{p} has {BZIMAGE} but no .config: give the build directory "
                        "(the O= one when the kernel was built out of tree)", field=field)
    return TreeKernel(p, image, release, p)


def check_config(tk: TreeKernel, *, has_modules: bool, share: bool,
                 field: str = "--kernel") -> None:
    """UserError naming every missing CONFIG_ option, instead of a boot that
    hangs. A bzImage with no .config found beside it: nothing to check."""
    if tk.config is None:
        return
    problems = config_problems(parse_config(tk.config.read_text(errors="replace")),
                               has_modules=has_modules, share=share)
    if problems:
        fix = (f"; to boot an installed distro kernel with its modules, give --kernel "
               f"distro:{tk.release}" if tk.config.name.startswith("config-") else
               ". Enable them and rebuild (`make kvm_guest.config` adds the virtio and 9p "
               "ones; lab's kernels/fragments/lab.config has them all)")
        raise UserError(f"{tk.config} lacks what lab's boot needs: "
                        + "; ".join(p.text() for p in problems) + fix, field=field)


def modules_key(tree: Path, release: str, paths: list[str]) -> str:
    """The tree's modules, identified by release, modules.order,
    modules.builtin and each module's path, size and mtime (cheap: no module
    is read)."""
    h = hashlib.sha256(release.encode())
    for name in ("modules.order", "modules.builtin"):
        f = tree / name
        h.update(f.read_bytes() if f.exists() else b"-")
    for rel in paths:
        st = (tree / rel).stat()
        h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _depmod() -> str:
    """depmod, also where a user's PATH leaves out (Debian: /usr/sbin)."""
    for d in ("", "/usr/sbin", "/sbin"):
        path = shutil.which("depmod", path=d or None)
        if path:
            return path
    return proc.which("depmod", "kmod")      # the error naming the package


def install_modules(tree: Path, release: str, *, field: str = "--kernel") -> Path | None:
    """The tree's modules installed into lab's cache (copied by
    modules.order, then depmod), as <root>/lib/modules/<release>; None when
    the tree has none (CONFIG_MODULES off, or an empty modules.order)."""
    order = tree / "modules.order"
    paths = module_paths(order.read_text()) if order.is_file() else []
    if not paths:
        return None
    missing = [p for p in paths if not (tree / p).is_file()]
    if missing:
        raise UserError(f"{tree}: modules.order lists modules that are not built "
                        f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}): "
                        "run `make modules` (or `make`) there", field=field)
    key = modules_key(tree, release, paths)
    root = cache_dir() / "tree-modules" / f"{release}-{key}"
    mdir = root / "lib" / "modules" / release
    if (root / ".done").exists():
        return mdir
    depmod = _depmod()
    with cache_lock(f"tree-modules-{release}-{key}"):
        if (root / ".done").exists():
            return mdir
        shutil.rmtree(root, ignore_errors=True)
        (mdir / "kernel").mkdir(parents=True)
        for rel in paths:
            dest = mdir / "kernel" / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(tree / rel, dest)
        (mdir / "modules.order").write_text(
            "".join(f"kernel/{p}\n" for p in paths))
        for name in ("modules.builtin", "modules.builtin.modinfo"):
            if (tree / name).is_file():
                text = (tree / name).read_bytes()
                if name == "modules.builtin":
                    text = b"".join(b"kernel/" + line + b"\n"
                                    for line in text.splitlines() if line)
                (mdir / name).write_bytes(text)
        argv = [depmod, "-b", str(root)]
        if (tree / "System.map").is_file():
            argv += ["-F", str(tree / "System.map")]
        proc.run(argv + [release], timeout=300, check=True)
        # lab/image/modules.py keys the guest's modules disk by modules.dep,
        # which a rebuilt module does not change: this says which copy it is
        (mdir / STAMP).write_text(key + "\n")
        (root / ".done").write_text(str(tree) + "\n")
    return mdir


def has_modules(tree: Path) -> bool:
    """Whether the tree built modules (a non-empty modules.order)."""
    order = tree / "modules.order"
    return order.is_file() and bool(module_paths(order.read_text()))


def tree_artifact(tk: TreeKernel, *, share: bool, field: str = "--kernel",
                  log=lambda msg: None) -> KernelArtifact:
    """The tree (or bzImage) as a bootable KernelArtifact, its configuration
    checked and its modules installed into lab's cache."""
    if tk.tree is None:
        check_config(tk, has_modules=False, share=share, field=field)
        log(f"{tk.image} is a bzImage alone: booting {tk.release} without modules "
            "(give the kernel tree to have them)")
        return KernelArtifact(image=tk.image, release=tk.release, modules_dir=None,
                              origin=str(tk.image), config=tk.config)
    modular = has_modules(tk.tree)
    check_config(tk, has_modules=modular, share=share, field=field)
    mdir = install_modules(tk.tree, tk.release, field=field) if modular else None
    if mdir is None:
        log(f"{tk.tree} has no modules: booting {tk.release} with what is built in")
    opt = lambda n: (tk.tree / n) if (tk.tree / n).is_file() else None  # noqa: E731
    return KernelArtifact(image=tk.image, release=tk.release, modules_dir=mdir,
                          origin=str(tk.tree), vmlinux=opt("vmlinux"),
                          system_map=opt("System.map"), config=tk.config)
