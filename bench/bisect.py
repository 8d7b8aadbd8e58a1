#!/usr/bin/env python3
"""Benchmark `lab bisect`: the search over simulated regressions, and real
bisections of the fixture series (tests/data/bisect-series, 8 patches on
linux-source-6.1: a WARN in 3/8, a pin leak in 4/8) with the fixture's job
(tests/data/bisect-gup.yaml: gup_test pin-basic over 1 MiB).

    simulated    the real search code against a simulated regression: steps for
                 a deterministic one vs ceil(log2 N); for one that reproduces
                 in half the runs, how often 20 bisections name the culprit
    real         both bisections of the fixture series, each step's wall time
                 split into build / boot / workload (and make within build);
                 --fresh drops the fixture's prefix artifacts first, so the
                 first bisection builds 8/8, 4/8, 2/8, 3/8 incrementally
    by hand      one step (2/8 -> 3/8) done by lab (build, boot, workload
                 through run_job) and by hand (git checkout + raw make in the
                 same build dir, a boot to SSH, gup_test over SSH), --rounds
                 times each, alternating; the ratio of the medians

    python3 bench/bisect.py [--simulate-only] [--fresh] [--no-by-hand] [--rounds N]
                            [--bisections N] [--rate R] [--out DIR] [--json FILE]

Not run in CI: the real part boots ~12 kernels under TCG (~15-25 min).
"""

from __future__ import annotations

import os
import sys

# run as a script, this file's directory comes first on sys.path, and this
# file would shadow the standard library's `bisect` (which random imports)
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lab.bisect.search import Done, Observation, Outcome, Policy, Search, Verdict  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SERIES = REPO / "tests" / "data" / "bisect-series"
JOB = REPO / "tests" / "data" / "bisect-gup.yaml"


# --- simulated -----------------------------------------------------------------

def simulate(n: int, culprit: int, rate: float, policy: Policy, rng: random.Random):
    obs: list[Observation] = []
    steps: list[int] = []
    while True:
        act = Search(n, policy, obs).next()
        if isinstance(act, Done):
            return act, steps, len(obs)
        if act.index not in steps:
            steps.append(act.index)
        bad = act.index >= culprit and rng.random() < rate
        obs.append(Observation(act.index, Verdict.BAD if bad else Verdict.GOOD))


def simulated(args) -> dict:
    out: dict = {"deterministic": [], "flaky": {}}
    print("deterministic: build-and-test steps in all, endpoints included (first: the two "
          "endpoints, then the search; as-needed: one search over every outcome)")
    for n in (8, 16, 100, 1000):
        culprits = range(1, n + 1) if n <= 100 else [*range(1, 50), *range(n // 2 - 25,
                                                      n // 2 + 25), *range(n - 49, n + 1)]
        worst = {name: max(len(simulate(n, c, 1.0, pol, random.Random(0))[1])
                           for c in culprits)
                 for name, pol in (("first", Policy()),
                                   ("as-needed", Policy(endpoints_first=False)))}
        bound = math.ceil(math.log2(n))
        print(f"  N={n:5d}: worst {worst['first']} (endpoints first), {worst['as-needed']} "
              f"(as-needed); ceil(log2 N) + 1 = {bound + 1}")
        out["deterministic"].append({"n": n, "worst_steps_first": worst["first"],
                                     "worst_steps_as_needed": worst["as-needed"],
                                     "ceil_log2_plus_1": bound + 1})
    rng = random.Random(args.seed)
    pol = Policy(repeat=args.repeat, max_runs=args.max_runs, confidence=args.confidence)
    print(f"flaky: rate {args.rate}, {args.bisections} bisections of 8 revisions, --repeat "
          f"{pol.repeat} --max-runs {pol.max_runs} --confidence {pol.confidence} (seed "
          f"{args.seed})")
    right, outcomes, runs, steps, conf = 0, {}, [], [], []
    for _ in range(args.bisections):
        c = rng.randint(1, 8)
        done, st, nruns = simulate(8, c, args.rate, pol, rng)
        right += done.culprit == c
        outcomes[str(done.outcome)] = outcomes.get(str(done.outcome), 0) + 1
        runs.append(nruns)
        steps.append(len(st))
        conf.append(done.confidence)
    print(f"  right culprit named in {right} of {args.bisections}; outcomes {outcomes}; "
          f"stated confidence mean {statistics.fmean(conf):.3f}; runs per bisection median "
          f"{statistics.median(runs)} (max {max(runs)}); revisions tested median "
          f"{statistics.median(steps)}")
    # calibration over many more, same settings
    many = 1000
    r2 = random.Random(args.seed + 1)
    found = found_right = 0
    stated = []
    for _ in range(many):
        c = r2.randint(1, 8)
        done, _, _ = simulate(8, c, args.rate, pol, r2)
        if done.outcome is Outcome.FOUND:
            found += 1
            found_right += done.culprit == c
            stated.append(done.confidence)
    print(f"  calibration over {many}: {found} named at the asked confidence, "
          f"{found_right / max(1, found):.3f} of them right, stated "
          f"{statistics.fmean(stated) if stated else 0:.3f} on average")
    out["flaky"] = {"rate": args.rate, "bisections": args.bisections, "right": right,
                    "outcomes": outcomes, "runs_median": statistics.median(runs),
                    "confidence_mean": round(statistics.fmean(conf), 4),
                    "calibration": {"n": many, "found": found,
                                    "found_right": found_right}}
    return out


# --- real ------------------------------------------------------------------------

def drop_fixture_artifacts() -> list[str]:
    """The artifacts of the fixture's prefixes 1..8 (never the base's)."""
    from lab.kernel.build import artifacts_root, read_json
    from lab.kernel.series import load_series
    hashes = {load_series([str(SERIES)], upto=k).hash for k in range(1, 9)}
    dropped = []
    for d in artifacts_root().iterdir():
        if (read_json(d / "metadata.json").get("series") or {}).get("hash") in hashes:
            shutil.rmtree(d)
            dropped.append(d.name)
    return dropped


def real_bisection(name: str, target, where: Path) -> dict:
    from lab.bisect.driver import Bisection
    from lab.bisect.state import Setup
    from lab.bisect import report
    setup = Setup(target=target, policy=Policy(), linux_source=True,
                  series=(str(SERIES),), job=str(JOB))
    start = time.monotonic()
    res = Bisection.start(setup, where / name).run()
    wall = time.monotonic() - start
    print(f"{name}: wall {wall:.0f} s\n" + report.text(res, str(where / name)))
    return {"result": res, "wall_s": round(wall, 1)}


def by_hand(where: Path, rounds: int) -> dict:
    """One step, 2/8 -> 3/8, by lab and by hand, each from the build dir at
    2/8, `rounds` times each, alternating which goes first (the host's load
    moves a lot); medians."""
    from lab.bisect.driver import base_job, step_job
    from lab.bisect.revisions import from_series
    from lab.bisect.state import Setup
    from lab.bisect.target import Target, TargetKind
    from lab.image.build import ensure
    from lab.image.recipe import load_recipe
    from lab.kernel import source as ksource
    from lab.kernel.api import build_kernel, plan
    from lab.kernel.artifact import KernelArtifact
    from lab.kernel.kbuild import KBuild
    from lab.kernel.spec import BuildSpec
    from lab.kernel.series import applied_ref, load_series
    from lab.runner import boot_config, run_job
    from lab.vm.machine import Machine

    setup = Setup(target=Target(TargetKind.PIN_LEAK), policy=Policy(), linux_source=True,
                  series=(str(SERIES),), job=str(JOB))
    job, cell = base_job(setup)
    revs = from_series(BuildSpec(linux_source=True), setup.series, None, None)
    a, b = revs.spec(2), revs.spec(3)
    pa, pb = plan(a), plan(b)
    build_kernel(a, progress=False)        # both commits exist (refs/lab/applied)
    build_kernel(b, progress=False)
    tree, bdir = pa.tree, pa.build_dir
    commit = {k: ksource.git(tree.repo, "rev-parse", applied_ref(
        tree.base, load_series([str(SERIES)], upto=k))).stdout.strip() for k in (2, 3)}
    kb = KBuild(tree.repo, bdir, cc=pa.cc)
    image = ensure(load_recipe(job.image))

    def make_at(k: int) -> float:
        with ksource.tree_lock(tree.tree_id):
            t0 = time.monotonic()
            ksource.checkout(tree.repo, commit[k])
            r = kb.run("all")
            if not r.ok:
                raise SystemExit(f"raw make failed at {k}/8:\n{r.tail()}")
            return time.monotonic() - t0

    def lab_round(i: int) -> dict:
        make_at(2)
        shutil.rmtree(pb.artifact_dir, ignore_errors=True)
        out = where / f"by-hand-lab-{i}"
        t0 = time.monotonic()
        run_job(step_job(job, cell, b), out, live=False)
        total = time.monotonic() - t0
        s = json.loads((out / "summary.json").read_text())["suites"][0]
        build = float(s["properties"]["kernel_resolve_s"])
        boot = next(c["duration"] for c in s["cases"] if c["name"] == "boot")
        return {"build": build, "boot": boot, "rest": total - build - boot, "total": total}

    def hand_round(i: int) -> dict:
        make_at(2)
        make_s = make_at(3)
        cfg = boot_config(job, KernelArtifact.from_dir(pb.artifact_dir), image, cell)
        with tempfile.TemporaryDirectory(prefix="lab-bench-boot-") as td:
            m = Machine(cfg, Path(td), log=lambda _msg: None)
            t0 = time.monotonic()
            try:
                m.start()
                g = m.wait_for_ssh()
                boot_s = time.monotonic() - t0
                t1 = time.monotonic()
                g.run("mountpoint -q /sys/kernel/debug || mount -t debugfs none "
                      "/sys/kernel/debug", timeout=60)
                g.put(pb.artifact_dir / "gup_test", "/tmp/gup_test", mode=0o755)
                r = g.run("/tmp/gup_test -b -m 1 -r 1 -j 1", timeout=120)
                if r.returncode != 0:
                    raise SystemExit(f"gup_test by hand: exit {r.returncode}")
                work_s = time.monotonic() - t1
            finally:
                m.stop()
        return {"make": make_s, "boot": boot_s, "workload": work_s,
                "total": make_s + boot_s + work_s}

    labs, hands = [], []
    for i in range(rounds):
        order = (lab_round, hand_round) if i % 2 == 0 else (hand_round, lab_round)
        for f in order:
            (labs if f is lab_round else hands).append(f(i))
        print(f"  round {i + 1}: lab {labs[-1]['total']:.1f}s (build {labs[-1]['build']:.1f}s), "
              f"by hand {hands[-1]['total']:.1f}s (make {hands[-1]['make']:.1f}s)", flush=True)

    def med(rows: list[dict], k: str) -> float:
        return round(statistics.median(r[k] for r in rows), 1)
    lab = {k: med(labs, k) for k in labs[0]}
    hand = {k: med(hands, k) for k in hands[0]}
    ratio = round(lab["total"] / hand["total"], 3)
    print(f"one step 2/8 -> 3/8 (mm/gup_test.c) from the build dir at 2/8, medians of "
          f"{rounds} round(s) each, alternating:")
    print(f"  lab     build {lab['build']:6.1f}s  boot {lab['boot']:5.1f}s  workload, checks, "
          f"rest {lab['rest']:5.1f}s  total {lab['total']:6.1f}s")
    print(f"  by hand make  {hand['make']:6.1f}s  boot {hand['boot']:5.1f}s  workload "
          f"{hand['workload']:5.1f}s  total {hand['total']:6.1f}s")
    print(f"  ratio lab / by hand: {ratio:.2f} (target <= 1.3)")
    return {"lab": lab, "by_hand": hand, "ratio": ratio, "rounds": {"lab": labs,
                                                                    "by_hand": hands}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--simulate-only", action="store_true", help="no real bisection")
    ap.add_argument("--fresh", action="store_true",
                    help="drop the fixture's prefix artifacts first (the first bisection "
                         "then builds its steps)")
    ap.add_argument("--no-by-hand", action="store_true")
    ap.add_argument("--no-bisections", action="store_true",
                    help="skip the two real bisections (the by-hand comparison only)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of the by-hand comparison")
    ap.add_argument("--bisections", type=int, default=20)
    ap.add_argument("--rate", type=float, default=0.5)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--max-runs", type=int, default=10)
    ap.add_argument("--confidence", type=float, default=0.95)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, help="where the bisections write (default: a temp dir)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    results = {"simulated": simulated(args)}
    if not args.simulate_only:
        from lab.bisect.target import Target, TargetKind
        where = args.out or Path(tempfile.mkdtemp(prefix="lab-bench-bisect-"))
        os.environ.setdefault("LAB_HISTORY", str(where / "history.sqlite"))
        if args.fresh:
            print(f"dropped {len(drop_fixture_artifacts())} fixture artifact(s)")
        if not args.no_bisections:
            results["warn"] = real_bisection("warn", Target(TargetKind.FINDING,
                                                            "gup_test_ioctl"), where)
            results["pin_leak"] = real_bisection("pin-leak", Target(TargetKind.PIN_LEAK), where)
        if not args.no_by_hand:
            results["by_hand"] = by_hand(where, args.rounds)
        print(f"results under {where}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
