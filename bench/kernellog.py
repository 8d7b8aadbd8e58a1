"""Benchmark lab.kernellog: throughput, memory, and title match rates on the corpus.

    python bench/kernellog.py [--size-mb 100]

Writes the syzkaller corpus logs, concatenated until the file is about
--size-mb, to a temporary file, parses it with parse_file (streamed), and
prints MB/s (CPU time and wall time) and the peak RSS of the process. Then
prints, per crash TYPE of the corpus, how often the first finding's title is
the expected one.
"""

from __future__ import annotations

import argparse
import collections
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lab.kernellog import parse, parse_file  # noqa: E402

CORPUS = REPO.parent / "shared" / "corpus" / "syzkaller-reports"


def load(path: Path) -> tuple[dict[str, list[str]], bytes]:
    head, _, log = path.read_bytes().partition(b"\n\n")
    fields: dict[str, list[str]] = {}
    for line in head.decode().splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key, []).append(value.strip())
    return fields, log.split(b"\nREPORT:\n")[0]


def cases() -> list[tuple[str, dict[str, list[str]], bytes]]:
    paths = sorted((p for p in CORPUS.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    return [(p.name, *load(p)) for p in paths]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def throughput(corpus: list, size_mb: int) -> None:
    blob = b"\n".join(log for _, _, log in corpus) + b"\n"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "console.log"
        with open(path, "wb") as out:  # written piece by piece: the log is never in memory whole
            while out.tell() < size_mb * 1_000_000:
                out.write(blob)
        size = path.stat().st_size
        rss_before = peak_rss_mb()
        cpu, wall = time.process_time(), time.perf_counter()
        findings = parse_file(path)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    reports = sum(f.count for f in findings)
    print(f"log: {size / 1e6:.1f} MB, {reports} reports, {len(findings)} distinct signatures")
    print(f"throughput: {size / 1e6 / cpu:.1f} MB/s of CPU time ({cpu:.2f} s), "
          f"{size / 1e6 / wall:.1f} MB/s wall ({wall:.2f} s)")
    print(f"peak RSS: {peak_rss_mb():.0f} MB (before parsing: {rss_before:.0f} MB)")


def match_rates(corpus: list) -> None:
    per_type: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    quiet = [0, 0]
    corrupted = [0, 0]
    flag = [0, 0]  # Finding.corrupted agrees with "CORRUPTED: Y"
    for _, fields, log in corpus:
        findings = parse(log)
        title = fields.get("TITLE", [""])[0]
        if not title:
            quiet[0] += not findings
            quiet[1] += 1
            continue
        hit = bool(findings) and findings[0].title in [title, *fields.get("ALT", [])]
        if findings:
            flag[0] += findings[0].corrupted == ("CORRUPTED" in fields)
            flag[1] += 1
        counts = corrupted if "CORRUPTED" in fields else per_type[fields.get("TYPE", ["?"])[0]]
        counts[0] += hit
        counts[1] += 1
    print("\ncorpus title match rate (first finding, cases not marked CORRUPTED), per TYPE:")
    for kind, (hit, total) in sorted(per_type.items(), key=lambda kv: -kv[1][1]):
        print(f"  {kind:34s} {hit:4d}/{total:<4d} {hit / total:6.1%}")
    hit = sum(h for h, _ in per_type.values())
    total = sum(t for _, t in per_type.values())
    print(f"  {'ALL':34s} {hit:4d}/{total:<4d} {hit / total:6.1%}")
    print(f"cases expecting no crash with nothing reported: {quiet[0]}/{quiet[1]} {quiet[0] / quiet[1]:.1%}")
    print(f"cases marked CORRUPTED with the expected title: {corrupted[0]}/{corrupted[1]} "
          f"{corrupted[0] / corrupted[1]:.1%}")
    print(f"corrupted flag agrees with CORRUPTED: {flag[0]}/{flag[1]} {flag[0] / flag[1]:.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=100, help="size of the generated log (default 100)")
    args = parser.parse_args()
    corpus = cases()
    print(f"corpus: {CORPUS} ({len(corpus)} logs), {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    throughput(corpus, args.size_mb)
    match_rates(corpus)


if __name__ == "__main__":
    main()
