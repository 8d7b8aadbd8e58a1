"""The search of a bisection (pure): where to run next, and when to stop.

The revisions are indices 0..n: 0 the good endpoint, n the bad one, the
others in between (commits, or prefixes of a series). The culprit c is the
first index whose kernel is bad; c = 0 would mean the good endpoint is bad
already.

The model: a run of a kernel at or after the culprit shows the target with
probability p (the reproduction rate), a run of one before it never does. A
bad run is proof, so a step stops at its first bad run; a good run only
makes "the culprit is at or before this index" less likely, by a factor
1 - p. With a uniform prior over c, the posterior of c after every run is

    P(c) ~ (1 - p) ** G(c)     for c <= the lowest index with a bad run
    P(c) = 0                   above it

where G(c) counts the good runs at indices >= c. With p = 1 (every run of
the bad endpoint reproduced: deterministic) a good run rules out every c at
or before its index, and choosing the index that splits the posterior in
half is binary search: ceil(log2 n) steps between the endpoints. With p < 1
the same rule asks for more runs where they still move the odds, and the
bisection names the culprit once its posterior reaches the asked confidence.

p is measured on the bad endpoint: its first `repeat` runs; when any index
has both good and bad runs (the target is flaky) the endpoint is topped up
to `max_runs` runs, and p is the lower end of the Wilson interval (z = 1) of
its bad/total, so a lucky streak does not overstate it.

`Search(n, policy, observations).next()` returns a `Next` (run this index,
at most this many times) or a `Done` (the outcome). It keeps no state of its
own: the observations are the state, so a resumed bisection continues
exactly where it stopped.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

WILSON_Z = 1.0              # the rate's lower bound: ~84% one-sided
MIN_RATE = 0.02             # never plan with a rate below this
TINY = 1e-12


class Verdict(enum.StrEnum):
    """What one run of one revision said."""

    GOOD = "good"           # the target did not appear
    BAD = "bad"             # the target appeared
    SKIP = "skip"           # untestable: apply/build/boot failed, a different crash
    INFRA = "infra"         # the host failed: retried, never counted


class Outcome(enum.StrEnum):
    FOUND = "found"                     # the first bad revision, at the asked confidence
    AMBIGUOUS = "ambiguous"             # skipped revisions leave several candidates
    LOW_CONFIDENCE = "low-confidence"   # --max-runs reached before --confidence
    NOT_REPRODUCED = "not-reproduced"   # the target does not appear on the bad endpoint
    GOOD_IS_BAD = "good-is-bad"         # the target appears on the good endpoint
    UNTESTABLE = "untestable"           # an endpoint cannot be tested (its runs skip)


@dataclass(frozen=True)
class Policy:
    repeat: int = 1          # runs of each endpoint; most runs of a step at a time
    max_runs: int = 10       # most runs of one revision
    confidence: float = 0.95
    # False (--endpoints as-needed): a deterministic search (repeat 1) runs
    # an endpoint only when the candidates left need it; see next_as_needed
    endpoints_first: bool = True

    def __post_init__(self):
        if self.repeat < 1 or self.max_runs < self.repeat:
            raise ValueError("need 1 <= repeat <= max_runs")
        if not 0.5 <= self.confidence < 1:
            raise ValueError("need 0.5 <= confidence < 1")


@dataclass(frozen=True)
class Observation:
    index: int
    verdict: Verdict
    reason: str = ""


@dataclass
class Tally:
    good: int = 0
    bad: int = 0
    skip: int = 0
    reasons: list[str] = field(default_factory=list)

    @property
    def runs(self) -> int:
        return self.good + self.bad + self.skip

    @property
    def verdict(self) -> Verdict | None:
        if self.bad:
            return Verdict.BAD
        if self.skip:
            return Verdict.SKIP
        return Verdict.GOOD if self.good else None


@dataclass(frozen=True)
class Next:
    index: int
    runs: int                # at most this many runs now
    until_bad: bool          # stop at the first bad run (not on the bad endpoint)
    why: str


@dataclass(frozen=True)
class Done:
    outcome: Outcome
    culprit: int | None = None
    confidence: float = 0.0
    candidates: tuple[int, ...] = ()
    message: str = ""
    max_runs_needed: int | None = None


def wilson_lower(bad: int, runs: int, z: float = WILSON_Z) -> float:
    if runs == 0:
        return 0.0
    phat = bad / runs
    denom = 1 + z * z / runs
    centre = phat + z * z / (2 * runs)
    spread = z * math.sqrt(phat * (1 - phat) / runs + z * z / (4 * runs * runs))
    return max(0.0, (centre - spread) / denom)


def runs_for(rate: float, miss: float) -> int:
    """Good runs in a row that leave at most `miss` chance of a bad kernel
    looking good, at reproduction rate `rate`."""
    if rate >= 1:
        return 1
    return max(1, math.ceil(math.log(miss) / math.log(1 - max(rate, MIN_RATE))))


class Search:
    """The state of a bisection is its observations; this reads them."""

    def __init__(self, n: int, policy: Policy, observations: list[Observation] | tuple = ()):
        if n < 1:
            raise ValueError("a bisection needs two revisions")
        self.n, self.policy = n, policy
        self.tallies: dict[int, Tally] = {}
        self.last: int | None = None       # the index of the latest counted run
        for o in observations:
            if o.verdict is Verdict.INFRA:
                continue
            self.last = o.index
            t = self.tallies.setdefault(o.index, Tally())
            if o.verdict is Verdict.GOOD:
                t.good += 1
            elif o.verdict is Verdict.BAD:
                t.bad += 1
            else:
                t.skip += 1
                if o.reason:
                    t.reasons.append(o.reason)

    def tally(self, i: int) -> Tally:
        return self.tallies.get(i, Tally())

    # --- the reproduction rate ---------------------------------------------

    @property
    def flaky(self) -> bool:
        """Some revision gave both a good and a bad run."""
        return any(t.good and t.bad for t in self.tallies.values())

    @property
    def endpoint_rate(self) -> tuple[int, int]:
        """(bad runs, runs) of the bad endpoint, skips aside."""
        t = self.tally(self.n)
        return t.bad, t.bad + t.good

    @property
    def rate(self) -> float:
        """The p the posterior uses: 1 until a revision disagrees with
        itself, then the Wilson lower bound of the bad endpoint's rate."""
        if not self.flaky:
            return 1.0
        bad, runs = self.endpoint_rate
        return max(MIN_RATE, min(1.0, wilson_lower(bad, runs)))

    # --- the posterior -----------------------------------------------------

    def first_bad(self) -> int:
        return min((i for i, t in self.tallies.items() if t.bad), default=self.n)

    def posterior(self) -> list[float]:
        """P(c) for c in 0..n."""
        p, hi = self.rate, self.first_bad()
        goods = [0] * (self.n + 2)       # goods[c] = good runs at indices >= c
        for i, t in self.tallies.items():
            goods[i] += t.good
        for c in range(self.n, -1, -1):
            goods[c] += goods[c + 1]
        if p >= 1:
            w = [1.0 if c <= hi and goods[c] == 0 else 0.0 for c in range(self.n + 1)]
        else:
            lg = math.log(1 - p)
            top = max(goods[c] * lg for c in range(hi + 1))
            w = [math.exp(goods[c] * lg - top) if c <= hi else 0.0
                 for c in range(self.n + 1)]
        total = sum(w)
        if total <= 0:       # cannot happen under the model; be safe
            return [1.0 if c == hi else 0.0 for c in range(self.n + 1)]
        return [x / total for x in w]

    def credible(self, post: list[float]) -> tuple[int, ...]:
        """The fewest revisions whose posterior adds up to the confidence."""
        order = sorted(range(len(post)), key=lambda c: (-post[c], c))
        out, s = [], 0.0
        for c in order:
            if post[c] <= TINY:
                break
            out.append(c)
            s += post[c]
            if s >= self.policy.confidence - TINY:
                break
        return tuple(sorted(out))

    # --- what next ----------------------------------------------------------

    def endpoint_runs(self) -> int:
        """Runs the bad endpoint needs: `repeat`; `max_runs` once the target
        is known to be flaky (to measure its rate), or when none of `repeat`
        > 1 runs showed it (a rare target: asking for repeats says it may
        be flaky)."""
        pol, t = self.policy, self.tally(self.n)
        if self.flaky or (pol.repeat > 1 and not t.bad):
            return pol.max_runs
        return pol.repeat

    def next(self) -> Next | Done:
        pol, n = self.policy, self.n
        if not pol.endpoints_first and pol.repeat == 1 and not self.flaky:
            lazy = self.next_as_needed()
            if lazy is not None:
                return lazy
        bad_end = self.tally(n)
        if bad_end.skip and not bad_end.bad:
            return Done(Outcome.UNTESTABLE, message="the bad endpoint cannot be tested: "
                        + (bad_end.reasons[0] if bad_end.reasons else "skipped"))
        want = self.endpoint_runs()
        if bad_end.runs < want:
            why = ("the bad endpoint: is the target there?" if not bad_end.runs else
                   f"the bad endpoint again: the target is flaky, measuring its rate "
                   f"({bad_end.runs} of {want} runs)")
            return Next(n, want - bad_end.runs, False, why)
        if not bad_end.bad:
            return Done(Outcome.NOT_REPRODUCED,
                        message=f"the target did not appear in {bad_end.runs} run(s) of the "
                                "bad endpoint")
        good_end = self.tally(0)
        if good_end.bad:
            return Done(Outcome.GOOD_IS_BAD, culprit=0,
                        message=f"the target appeared on the good endpoint too ({good_end.bad} "
                                f"of {good_end.runs} run(s))")
        if good_end.skip:
            return Done(Outcome.UNTESTABLE, message="the good endpoint cannot be tested: "
                        + (good_end.reasons[0] if good_end.reasons else "skipped"))
        if good_end.runs < pol.repeat:
            return Next(0, pol.repeat - good_end.runs, True, "the good endpoint: is the "
                        "target absent?")
        last = self.tally(self.last) if self.last is not None else None
        if last is not None and 0 < self.last < n and last.verdict is Verdict.GOOD \
                and last.runs < pol.repeat:
            # a step runs `repeat` times unless the target shows: its runs
            # disagreeing is how a flaky target is noticed
            return Next(self.last, pol.repeat - last.runs, True,
                        f"run {last.runs + 1} of {pol.repeat} of this step")
        post = self.posterior()
        best = max(range(n + 1), key=lambda c: (post[c], -c))
        if post[best] >= pol.confidence - TINY:
            if best == 0:
                return Done(Outcome.GOOD_IS_BAD, culprit=0, confidence=post[0],
                            message="the target is most likely present on the good endpoint")
            return Done(Outcome.FOUND, best, post[best], (best,))
        cdf, acc = [], 0.0
        for x in post:
            acc += x
            cdf.append(acc)
        testable, capped = [], []
        for i in range(n):
            if not TINY < cdf[i] < 1 - TINY or self.tally(i).skip:
                continue
            (capped if self.tally(i).runs >= pol.max_runs else testable).append(i)
        if testable:
            i = min(testable, key=lambda j: (round(abs(cdf[j] - 0.5), 9), j))
            left = pol.max_runs - self.tally(i).runs
            return Next(i, min(pol.repeat, left), True,
                        f"splits the candidates {cdf[i]:.2f} / {1 - cdf[i]:.2f}")
        cands = self.credible(post)
        if capped:
            return Done(Outcome.LOW_CONFIDENCE, best, post[best], cands,
                        f"--max-runs {pol.max_runs} reached before --confidence "
                        f"{pol.confidence:g}", self.max_runs_needed(capped))
        return Done(Outcome.AMBIGUOUS, best, post[best], cands,
                    "the revisions left between the last good and the first bad could not "
                    "be tested (skipped)")

    def next_as_needed(self) -> Next | Done | None:
        """Binary search over every outcome at once, for a deterministic
        target: the culprit c in 0..n, or c = n + 1 for "the bad endpoint
        does not show it". A good run at i rules out c <= i, a bad run
        rules out c > i, so each run halves the n + 2 outcomes: at most
        ceil(log2(n + 2)) runs in all, endpoints included, which is
        ceil(log2 n) + 1 or less for n >= 2 (endpoints first take
        ceil(log2 n) + 2 when n is a power of two). Every verdict still
        rests on runs: a culprit c on a bad run of c and a good run of
        c - 1, "not reproduced" on a good run of n, "good is bad" on a bad
        run of 0. None when runs contradict each other (a good run above a
        bad one: the target is flaky, or the history not monotonic): the
        general search, endpoints first, takes over."""
        n = self.n
        lo = max((i for i, t in self.tallies.items() if t.good and not t.bad), default=-1)
        hi = self.first_bad() if any(t.bad for t in self.tallies.values()) else n + 1
        if lo >= hi:
            return None
        if hi == lo + 1:
            if hi == n + 1:
                return Done(Outcome.NOT_REPRODUCED,
                            message=f"the target did not appear in {self.tally(n).runs} "
                                    "run(s) of the bad endpoint")
            if hi == 0:
                return Done(Outcome.GOOD_IS_BAD, culprit=0,
                            message=f"the target appeared on the good endpoint too "
                                    f"({self.tally(0).bad} of {self.tally(0).runs} run(s))")
            return Done(Outcome.FOUND, hi, 1.0, (hi,))
        # testing i splits the outcomes lo+1..hi into lo+1..i and i+1..hi
        testable = [i for i in range(lo + 1, min(hi, n + 1)) if not self.tally(i).skip]
        if testable:
            i = min(testable, key=lambda j: (abs((j - lo) - (hi - j)), j))
            what = ("the bad endpoint" if i == n else "the good endpoint" if i == 0
                    else f"splits the {hi - lo} outcomes left {i - lo} / {hi - i}")
            return Next(i, 1, True, what)
        for end, name, open_end in ((n, "bad", hi == n + 1), (0, "good", lo == -1)):
            t = self.tally(end)
            if open_end and t.skip:
                return Done(Outcome.UNTESTABLE,
                            message=f"the {name} endpoint cannot be tested: "
                                    + (t.reasons[0] if t.reasons else "skipped"))
        cands = tuple(range(lo + 1, hi + 1))
        return Done(Outcome.AMBIGUOUS, cands[0], 1 / len(cands), cands,
                    "the revisions left between the last good and the first bad could not "
                    "be tested (skipped)")

    def max_runs_needed(self, capped: list[int]) -> int:
        """The --max-runs that would reach the confidence had each capped
        revision (run --max-runs times, all good) more good runs: an estimate."""
        have = max(self.tally(i).runs for i in capped)
        for extra in range(1, 1000):
            more = Search(self.n, self.policy, self._observations()
                          + [Observation(i, Verdict.GOOD) for i in capped for _ in range(extra)])
            if max(more.posterior()) >= self.policy.confidence - TINY:
                return have + extra
        return have + 1000

    def _observations(self) -> list[Observation]:
        out: list[Observation] = []
        for i, t in self.tallies.items():
            out += [Observation(i, Verdict.GOOD)] * t.good
            out += [Observation(i, Verdict.BAD)] * t.bad
            out += [Observation(i, Verdict.SKIP)] * t.skip
        return out
