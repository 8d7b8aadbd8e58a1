"""Direct PVH boot: QEMU can start an uncompressed vmlinux at its PVH entry
point (ELF note XEN_ELFNOTE_PHYS32_ENTRY, CONFIG_PVH=y), skipping the
real-mode setup and the in-guest decompression that cost ~4 s under TCG.
The vmlinux is extracted from the bzImage once and cached."""

from __future__ import annotations

import gzip
import hashlib
import lzma
import os
import struct
import zlib
from pathlib import Path

from ..paths import cache_dir

XEN_ELFNOTE_PHYS32_ENTRY = 18
_MAGICS = ((b"\xfd7zXZ\x00", "xz"), (b"\x1f\x8b\x08", "gzip"))


def has_pvh_note(elf: bytes) -> bool:
    """True for a 64-bit little-endian ELF carrying the PVH entry note (pure)."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2:
        return False
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    for i in range(phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", elf,
                                                                 phoff + i * phentsize)
        if p_type != 4:  # PT_NOTE
            continue
        off, end = p_offset, p_offset + p_filesz
        while off + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", elf, off)
            name = elf[off + 12:off + 12 + namesz].rstrip(b"\0")
            if name == b"Xen" and ntype == XEN_ELFNOTE_PHYS32_ENTRY:
                return True
            off += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
    return False


def extract_vmlinux(bzimage: bytes) -> bytes | None:
    """The ELF payload of a bzImage (xz or gzip compressed), or None."""
    for magic, kind in _MAGICS:
        start = 0
        while (i := bzimage.find(magic, start)) >= 0:
            start = i + 1
            try:
                if kind == "xz":
                    out = lzma.LZMADecompressor().decompress(bzimage[i:])
                else:
                    out = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(bzimage[i:])
            except (lzma.LZMAError, zlib.error, EOFError, gzip.BadGzipFile):
                continue
            if out[:4] == b"\x7fELF":
                return out
    return None


def pvh_kernel(image: Path) -> Path | None:
    """A cached PVH-bootable vmlinux for `image`, or None when it cannot be had."""
    st = image.stat()
    key = hashlib.sha256(f"{image.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode())
    out = cache_dir() / "kernel-assets" / "pvh" / f"{key.hexdigest()[:16]}.vmlinux"
    if out.exists():
        return out if out.stat().st_size else None
    out.parent.mkdir(parents=True, exist_ok=True)
    elf = extract_vmlinux(image.read_bytes())
    ok = elf is not None and has_pvh_note(elf)
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(elf if ok else b"")  # an empty file remembers "not PVH-bootable"
    os.replace(tmp, out)
    return out if ok else None
