"""fio JSON output -> figures and a verdict (pure)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class FioFigures:
    write_iops: float
    write_bw_kib: float
    read_iops: float
    read_bw_kib: float
    verified_bytes: int      # bytes read back in the verify phase
    errors: int              # fio's own error count over all jobs
    # the worst completion latency (clat max) of a write, of a read (the
    # verify phase), and the worst fsync (fio's `sync` section), in ms, over
    # all jobs; None when fio did not report it
    max_write_clat_ms: float | None = None
    max_read_clat_ms: float | None = None
    max_fsync_ms: float | None = None

    def properties(self) -> dict[str, str]:
        out = {"write_iops": f"{self.write_iops:.0f}", "write_bw_kib": f"{self.write_bw_kib:.0f}",
               "read_iops": f"{self.read_iops:.0f}", "read_bw_kib": f"{self.read_bw_kib:.0f}",
               "verified_bytes": str(self.verified_bytes), "errors": str(self.errors)}
        for key in ("max_write_clat_ms", "max_read_clat_ms", "max_fsync_ms"):
            value = getattr(self, key)
            if value is not None:
                out[key] = f"{value:.1f}"
        return out


def _max_ms(section) -> float | None:
    """The max of a fio latency section in ms: `clat_ns`/`lat_ns` (fio >= 3)
    in nanoseconds, or `clat`/`lat` (older fio) in microseconds."""
    if not isinstance(section, dict):
        return None
    for key, scale in (("clat_ns", 1e-6), ("lat_ns", 1e-6), ("clat", 1e-3), ("lat", 1e-3)):
        stats = section.get(key)
        if isinstance(stats, dict):
            try:
                value = float(stats.get("max"))
            except (TypeError, ValueError):
                continue
            if math.isfinite(value) and value >= 0:
                return value * scale
    return None


def _worst(values) -> float | None:
    found = [v for v in values if v is not None]
    return max(found) if found else None


def _ios(section) -> bool:
    """Whether a job's read/write/sync section did any IO (an idle
    direction reports max 0, which is not a latency)."""
    if not isinstance(section, dict):
        return False
    try:
        return float(section.get("total_ios", section.get("io_bytes", 0)) or 0) > 0
    except (TypeError, ValueError):
        return False


def parse_fio_json(text: str) -> FioFigures:
    """Parse `fio --output-format=json` (tolerating warnings printed before it)."""
    start = text.find("{")
    if start < 0:
        raise ValueError("no JSON object in fio output")
    data = json.loads(text[start:text.rfind("}") + 1])
    jobs = data.get("jobs") or []
    if not jobs:
        raise ValueError("fio JSON has no jobs")
    s = lambda side, key: sum(float(j.get(side, {}).get(key, 0)) for j in jobs)  # noqa: E731
    worst = lambda side, pick: _worst(  # noqa: E731
        pick(j.get(side)) for j in jobs if _ios(j.get(side)))
    return FioFigures(write_iops=s("write", "iops"), write_bw_kib=s("write", "bw"),
                      read_iops=s("read", "iops"), read_bw_kib=s("read", "bw"),
                      verified_bytes=int(s("read", "io_bytes")),
                      errors=sum(int(j.get("error", 0)) for j in jobs),
                      max_write_clat_ms=worst("write", _max_ms),
                      max_read_clat_ms=worst("read", _max_ms),
                      max_fsync_ms=worst("sync", _max_ms))
