"""The interface every guest connection offers (SSH, or the fake in tests)."""

from __future__ import annotations

import abc
from pathlib import Path

from ..errors import InfraError
from ..proc import Result


# Read every record in /dev/kmsg without blocking (dd stops at EAGAIN).
KMSG_READ = "dd if=/dev/kmsg iflag=nonblock bs=65536 status=none 2>/dev/null; true"


class GuestUnreachable(InfraError):
    """The guest stopped answering (SSH dead); evidence must come from QMP/console."""


class GuestPaused(InfraError):
    """qemu stopped the guest itself (a host-side IO error such as a full
    filesystem under its disks): the host's fault, not the kernel's."""


class Guest(abc.ABC):
    """A booted guest. `cmd` is a shell command line run by the guest's /bin/sh;
    quote arguments with shlex.quote. Every call has a timeout; a timeout raises
    lab.errors.CommandTimeout carrying the output so far."""

    @abc.abstractmethod
    def run(self, cmd: str, *, timeout: float, check: bool = False,
            log: Path | None = None) -> Result: ...

    @abc.abstractmethod
    def put(self, local: Path, remote: str, mode: int | None = None) -> None: ...

    @abc.abstractmethod
    def get(self, remote: str, local: Path) -> None: ...

    @abc.abstractmethod
    def alive(self, timeout: float = 10.0) -> bool:
        """True when the guest still answers a trivial command within timeout."""

    # --- kernel messages ------------------------------------------------
    def kmsg_cursor(self) -> int:
        """A cursor into the kernel log: the sequence number of the next record."""
        r = self.run(f"{{ {KMSG_READ}; }} | grep -v '^ ' | tail -n 1", timeout=30)
        _, nxt = render_kmsg(r.stdout, 0)
        return nxt

    def kmsg_since(self, cursor: int, timeout: float = 60) -> tuple[str, int]:
        """Kernel messages with sequence >= cursor, as dmesg-style text, and the new cursor.

        Each record in /dev/kmsg is `prio,seq,usec,flags;text`; we render it as
        `[secs.usecs] text` so the output parses like dmesg / console text.
        """
        r = self.run(KMSG_READ, timeout=timeout)
        return render_kmsg(r.stdout, cursor)


def render_kmsg(raw: str, cursor: int) -> tuple[str, int]:
    """Pure: turn /dev/kmsg records into dmesg text, keeping seq >= cursor."""
    out: list[str] = []
    nxt = cursor
    for rec in raw.splitlines():
        if not rec or rec[0] == " ":
            # continuation lines ("  SUBSYSTEM=...") carry device metadata
            continue
        head, sep, text = rec.partition(";")
        if not sep:
            continue
        fields = head.split(",")
        if len(fields) < 3:
            continue
        try:
            seq = int(fields[1])
            usec = int(fields[2])
        except ValueError:
            continue
        if seq < cursor:
            continue
        nxt = max(nxt, seq + 1)
        stamp = f"[{usec // 1_000_000:5d}.{usec % 1_000_000:06d}]"
        # a record with embedded newlines (escaped as \x0a) becomes several
        # lines, each with the record's timestamp, as the console shows them
        out.extend(f"{stamp} {part}" for part in text.split("\\x0a"))
    return ("\n".join(out) + ("\n" if out else "")), nxt
