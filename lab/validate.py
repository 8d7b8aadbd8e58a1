"""The checks every input goes through, job file or command line alike: names
that become path components, finite timeouts, machine sizes this host can
give. Each raises UserError naming the file (if any), the field and what is
valid, so a job file and `lab boot --memory` say the same thing about the
same mistake.

Pure apart from reading the host's size (os.cpu_count, /proc/meminfo).
Imports nothing of lab but lab.errors, so every layer may use it.
"""

from __future__ import annotations

import functools
import math
import os
import re
from typing import Any, Callable

from .errors import UserError

# Names of jobs, kernels, variants, workload sets and testcases become cell
# ids and file or directory names: letters, digits, '-' and '_' only (no '.',
# the id separator, no '/', nothing a shell or a path would read specially).
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")
NAME_FORM = "1-40 letters, digits, '-' or '_', starting with a letter or digit"

# A timeout longer than a week is a mistake, and a bound keeps every
# deadline computed from it (monotonic() + t, threading waits) finite.
MAX_SECONDS = 7 * 24 * 3600
MIN_MEMORY_MB = 64
MAX_DISK_MB = 1 << 20          # 1 TiB: an emulated NVMe drive or NVDIMM file


def show(value: Any, limit: int = 60) -> str:
    """repr() of a value for a message, cut short: a value from a file may
    be large (and a message should still fit on a line)."""
    try:
        r = repr(value)
    except (RecursionError, ValueError):       # self-referencing, or an int too long
        r = f"<{type(value).__name__}>"
    return r if len(r) <= limit else r[:limit - 3] + "..."


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def name(value: Any, *, file: str | None = None, field: str) -> str:
    """A name that is safe as one path component (and as part of a cell id)."""
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise UserError(f"{show(value)} is not a valid name; valid: {NAME_FORM}", file=file,
                        field=field)
    return value


def path_text(value: Any, *, file: str | None = None, field: str) -> str:
    """A string the user means as a path (an artifact, a tree, a series, a
    fragment, an image recipe, a binary): no NUL, not absurdly long, and a
    leading ~user that names a user of this host."""
    if not isinstance(value, str) or not value:
        raise UserError(f"expected a path string (not empty), got {show(value)}", file=file,
                        field=field)
    if "\0" in value or len(value) > 4096:
        raise UserError(f"{show(value)} is not a usable path; valid: at most 4096 characters, "
                        "no NUL", file=file, field=field)
    if value.startswith("~") and os.path.expanduser(value) == value:
        raise UserError(f"{show(value)}: no such user's home; valid: ~/PATH, ~USER/PATH of "
                        "a user of this host, or a plain path", file=file, field=field)
    return value


def matching(pattern: str, form: str) -> Callable[..., str]:
    """A check that a string matches `pattern` in full; `form` says in words
    what matches (the message gives both)."""
    rx = re.compile(pattern)

    def check(value: Any, *, file: str | None = None, field: str) -> str:
        if not isinstance(value, str) or not rx.fullmatch(value):
            raise UserError(f"{show(value)} is not valid; valid: {form} ({pattern})",
                            file=file, field=field)
        return value
    return check


def seconds(value: Any, *, file: str | None = None, field: str,
            maximum: float = MAX_SECONDS) -> float:
    """A timeout: a positive, finite number of seconds, at most `maximum`."""
    if not (is_int(value) or isinstance(value, float)):
        raise UserError(f"expected a number of seconds, got {show(value)}", file=file,
                        field=field)
    if is_int(value) and not 0 < value <= maximum or not 0 < float(value) <= maximum:
        raise UserError(f"must be a positive, finite number of seconds up to {maximum:g}, "
                        f"got {show(value)}", file=file, field=field)
    return float(value)


def bound_seconds(value: Any, *, file: str | None = None, field: str,
                  maximum: float = MAX_SECONDS) -> float:
    """A bound in seconds that 0 turns off (stall_threshold): a finite
    number 0..maximum."""
    if not (is_int(value) or isinstance(value, float)):
        raise UserError(f"expected a number of seconds (0: off), got {show(value)}", file=file,
                        field=field)
    if is_int(value) and not 0 <= value <= maximum or not (math.isfinite(float(value))
                                                            and 0 <= float(value) <= maximum):
        raise UserError(f"must be a finite number of seconds in 0..{maximum:g} (0: off), "
                        f"got {show(value)}", file=file, field=field)
    return float(value)


def integer(value: Any, lo: int, hi: int, *, file: str | None = None, field: str,
            unit: str = "") -> int:
    """An integer in lo..hi (the message gives the range and the unit)."""
    if not is_int(value):
        raise UserError(f"expected an integer, got {show(value)}", file=file, field=field)
    if not lo <= value <= hi:
        u = f" {unit}" if unit else ""
        raise UserError(f"must be {lo}..{hi}{u}, got {show(value)}", file=file, field=field)
    return value


def number(value: Any, lo: float, hi: float, *, file: str | None = None, field: str) -> float:
    """A finite number in lo..hi (ints accepted)."""
    if not (is_int(value) or isinstance(value, float)):
        raise UserError(f"expected a number, got {show(value)}", file=file, field=field)
    if is_int(value) and not lo <= value <= hi or not (math.isfinite(float(value))
                                                        and lo <= float(value) <= hi):
        raise UserError(f"must be a finite number in {lo:g}..{hi:g}, got {show(value)}",
                        file=file, field=field)
    return float(value)


# --- the machine: bounded by this host ----------------------------------------

@functools.cache
def host_cpus() -> int:
    return os.cpu_count() or 1


@functools.cache
def host_memory_mb() -> int:
    """MemTotal of this host in MiB (a guest may ask for up to all of it;
    lab.schedule decides how many guests fit at once)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return 1 << 20


def machine_bounds() -> dict[str, tuple[int, int, str]]:
    """machine key -> (lowest, highest, unit)."""
    return {"memory_mb": (MIN_MEMORY_MB, host_memory_mb(), "MiB (this host's memory)"),
            "cpus": (1, host_cpus(), "(this host's cpus)"),
            "nvme_mb": (0, MAX_DISK_MB, "MiB (0: none)"),
            "pmem_mb": (0, MAX_DISK_MB, "MiB (0: none)")}


def machine_number(key: str, value: Any, *, file: str | None = None, field: str) -> int:
    """One of the machine's sizes (memory_mb, cpus, nvme_mb, pmem_mb)."""
    lo, hi, unit = machine_bounds()[key]
    return integer(value, lo, hi, file=file, field=field, unit=unit)
