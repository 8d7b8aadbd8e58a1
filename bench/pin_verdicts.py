#!/usr/bin/env python3
"""Pin verdicts under longer workloads: run a shipped job with every
workload's duration (or amount of work) scaled, on a given kernel, and count
the pin-balance verdicts: balanced, held (pins of a live task), leaked.

A kernel without a pin leak must show zero leaks however long the workloads
run; the issue's target is zero false leaks at 5x the default durations on
the base kernel.

    bench/pin_verdicts.py --kernel ~/.cache/lab/kernels/<key> [--job jobs/gup.yaml]
                          [--scale 5] [-o DIR]

Prints one line per pin-balance case and the totals.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# what "duration" means for each workload: the option scaled, its default
SCALED = {
    "fio": ("size_mb", 64),
    "rdma": ("duration", 5),
    "dax": ("seconds", 5),
    "gup_test": ("repeats", 1),
    "pinhold": ("hold", 1.0),
}


def scale_job(data: dict, factor: float, kernel: str) -> dict:
    """The job with every scalable workload option multiplied (pure)."""
    data = dict(data)
    data["kernel"] = "distro" if kernel == "distro" else {"artifact": kernel}
    data.pop("kernels", None)
    data.pop("matrix", None)
    data.pop("variants", None)
    wls = data["workloads"]
    if isinstance(wls, dict):              # named sets: all of them, in order
        wls = [w for ws in wls.values() for w in ws]
    out = []
    for w in wls:
        (name, opts), = w.items() if "name" not in w else [(w["name"], w.get("options"))]
        opts = dict(opts or {})
        if name in SCALED:
            key, default = SCALED[name]
            value = opts.get(key, default) * factor
            opts[key] = int(value) if isinstance(default, int) else value
        entry = {"name": name, "options": opts}
        if isinstance(w, dict) and "timeout" in w:
            entry["timeout"] = w["timeout"] * factor
        out.append(entry)
    data["workloads"] = out
    data["name"] = f"{data.get('name', 'job')}-x{factor:g}"
    t = dict(data.get("timeouts") or {})
    t["workload"] = float(t.get("workload", 600)) * factor
    data["timeouts"] = t
    return data


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernel", required=True, help="'distro' or a lab build artifact dir")
    ap.add_argument("--job", default=str(REPO / "jobs" / "gup.yaml"))
    ap.add_argument("--scale", type=float, default=5.0)
    ap.add_argument("-o", "--output", help="run directory (default: a temp dir)")
    a = ap.parse_args()
    from lab.errors import LabError
    from lab.job import load_job
    from lab.runner import run_job
    data = scale_job(yaml.safe_load(Path(a.job).read_text()), a.scale, a.kernel)
    tmp = Path(tempfile.mkdtemp(prefix="lab-pin-verdicts-"))
    job_file = tmp / "job.yaml"
    job_file.write_text(yaml.safe_dump(data, sort_keys=False))
    out = Path(a.output) if a.output else tmp / "run"
    start = time.monotonic()
    try:
        code = run_job(load_job(job_file), out, live=False)
    except LabError as e:
        print(f"pin_verdicts: {e}", file=sys.stderr)
        return e.exit_code
    elapsed = time.monotonic() - start
    summary = json.loads((out / "summary.json").read_text())
    counts = {"balanced": 0, "held": 0, "leak": 0, "other": 0}
    for suite in summary["suites"]:
        for c in suite["cases"]:
            if c["name"] != "pin-balance":
                continue
            p = c.get("properties", {})
            verdict = ("balanced" if c["status"] == "passed" else
                       "held" if c["kind"] == "pins-held" else
                       "leak" if c["kind"] == "pin-leak" else "other")
            counts[verdict] += 1
            print(f"{c['classname']:10} {verdict:8} acquired {p.get('pins_acquired', '-'):>8} "
                  f"released {p.get('pins_released', '-'):>8}  {c.get('message', '')[:80]}")
    print(f"job {a.job} x{a.scale:g} on {a.kernel}: {sum(counts.values())} pin-balance cases: "
          + ", ".join(f"{k} {v}" for k, v in counts.items())
          + f"; exit {code}; {elapsed:.0f}s; results in {out}")
    return 0 if counts["leak"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
