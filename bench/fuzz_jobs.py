#!/usr/bin/env python3
"""Job-loader fuzz at scale: N cases (default 10,000, half arbitrary YAML
documents, half mutations of the shipped jobs, from the strategies of
tests/unit/test_job_fuzz.py), each loaded as `lab run` would; prints how
many were valid, rejected (UserError naming the file and a field) and
crashed (any other exception, an error without file or field, or a load
over a second), with the first crashes.

    PYTHONPATH=. python bench/fuzz_jobs.py [--cases 10000]
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from tests.unit.test_job_fuzz import documents, mutated_jobs, outcome, raw_texts  # noqa: E402
import yaml  # noqa: E402


def run(strategy, n: int, counts: collections.Counter, crashes: list) -> None:
    @settings(max_examples=n, deadline=None, database=None, derandomize=False,
              phases=[__import__("hypothesis").Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def case(text):
        try:
            counts[outcome(text)] += 1
        except BaseException as e:  # noqa: BLE001 - counting, not handling
            counts["crashed"] += 1
            if len(crashes) < 5:
                crashes.append((text[:500], "".join(traceback.format_exception_only(e))))
    case()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=10_000)
    args = ap.parse_args()
    counts: collections.Counter = collections.Counter()
    crashes: list = []
    t = time.monotonic()
    docs = st.one_of(documents.map(lambda d: yaml.safe_dump(d, allow_unicode=True)), raw_texts)
    run(docs, args.cases // 2, counts, crashes)
    run(mutated_jobs(), args.cases - args.cases // 2, counts, crashes)
    total = sum(counts.values())
    print(f"{total} cases in {time.monotonic() - t:.0f}s: {counts['valid']} valid, "
          f"{counts['rejected']} rejected, {counts['crashed']} crashed")
    for text, err in crashes:
        print(f"--- crash: {err.strip()}\n{text}")
    return 1 if counts["crashed"] else 0


if __name__ == "__main__":
    sys.exit(main())
