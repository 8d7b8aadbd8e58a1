"""fio JSON output -> figures and a verdict (pure)."""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class FioFigures:
    write_iops: float
    write_bw_kib: float
    read_iops: float
    read_bw_kib: float
    verified_bytes: int      # bytes read back in the verify phase
    errors: int              # fio's own error count over all jobs

    def properties(self) -> dict[str, str]:
        return {"write_iops": f"{self.write_iops:.0f}", "write_bw_kib": f"{self.write_bw_kib:.0f}",
                "read_iops": f"{self.read_iops:.0f}", "read_bw_kib": f"{self.read_bw_kib:.0f}",
                "verified_bytes": str(self.verified_bytes), "errors": str(self.errors)}


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
    return FioFigures(write_iops=s("write", "iops"), write_bw_kib=s("write", "bw"),
                      read_iops=s("read", "iops"), read_bw_kib=s("read", "bw"),
                      verified_bytes=int(s("read", "io_bytes")),
                      errors=sum(int(j.get("error", 0)) for j in jobs))
