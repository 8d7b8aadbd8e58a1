"""The search of a bisection, pure: deterministic (binary search, at most
ceil(log2 N) steps between the endpoints), skips, flaky targets with a
simulated reproduction rate, and the endpoints checked first."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings, strategies as st

from lab.bisect.search import (Done, Next, Observation, Outcome, Policy, Search, Verdict,
                               wilson_lower)


def bisect(n: int, culprit: int, *, rate: float = 1.0, policy: Policy = Policy(),
           skip=(), rng: random.Random | None = None, limit: int = 10_000):
    """Run the search against a simulated regression: a run of index i shows
    the target with probability `rate` when i >= culprit, never before;
    indices in `skip` cannot be tested. Returns (Done, indices in order, runs)."""
    rng = rng or random.Random(0)
    obs: list[Observation] = []
    order: list[int] = []
    for _ in range(limit):
        act = Search(n, policy, obs).next()
        if isinstance(act, Done):
            return act, order, len(obs)
        assert isinstance(act, Next) and 0 <= act.index <= n and act.runs >= 1
        if act.index not in order:
            order.append(act.index)
        if act.index in skip:
            obs.append(Observation(act.index, Verdict.SKIP, "build: does not build"))
        else:
            bad = act.index >= culprit and rng.random() < rate
            obs.append(Observation(act.index, Verdict.BAD if bad else Verdict.GOOD))
    raise AssertionError("the search did not end")


def test_endpoints_first_bad_then_good_then_halves():
    done, order, runs = bisect(8, 3)
    assert order[:2] == [8, 0]
    assert order[2:] == [4, 2, 3]
    assert done.outcome is Outcome.FOUND and done.culprit == 3 and done.confidence == 1.0
    assert runs == 5


def test_two_culprits_next_to_each_other_share_every_step():
    """The fixture series puts its WARN at 3 and its pin leak at 4 of 8: both
    bisections test the same revisions, so the second builds nothing."""
    assert bisect(8, 3)[1] == bisect(8, 4)[1] == [8, 0, 4, 2, 3]


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=1, max_value=300), st.data())
def test_deterministic_culprit_in_at_most_log2_steps(n, data):
    """Between the endpoints, at most ceil(log2 N) build-and-test steps; the
    two endpoint checks come first (ceil(log2 N) + 2 in all: the issue's
    ceil(log2 N) + 1 is --endpoints as-needed's, tested below)."""
    culprit = data.draw(st.integers(min_value=1, max_value=n))
    done, order, runs = bisect(n, culprit)
    assert done.outcome is Outcome.FOUND and done.culprit == culprit
    assert done.confidence == 1.0
    search_steps = len(order) - 2
    assert search_steps <= math.ceil(math.log2(n))
    assert runs == len(order)             # deterministic: one run per step


def test_a_skipped_midpoint_moves_to_its_neighbour():
    done, order, _ = bisect(8, 6, skip={4})
    assert done.outcome is Outcome.FOUND and done.culprit == 6
    assert 4 in order and order.index(4) == 2          # tried, skipped
    assert order[3] in (3, 5)


def test_skips_around_the_culprit_leave_candidates():
    done, order, _ = bisect(8, 5, skip={4, 5})
    assert done.outcome is Outcome.AMBIGUOUS
    assert set(done.candidates) == {4, 5, 6} and 5 in done.candidates
    assert "skipped" in done.message


def test_the_bad_endpoint_without_the_target_stops_before_anything_else():
    done, order, runs = bisect(8, culprit=99)
    assert done.outcome is Outcome.NOT_REPRODUCED and order == [8] and runs == 1


def test_a_rare_target_gets_max_runs_on_the_bad_endpoint_when_repeats_were_asked():
    done, order, runs = bisect(8, culprit=99, policy=Policy(repeat=3, max_runs=7))
    assert done.outcome is Outcome.NOT_REPRODUCED and runs == 7
    assert "7 run(s)" in done.message


def test_the_good_endpoint_showing_the_target_stops():
    done, order, _ = bisect(8, culprit=0)
    assert done.outcome is Outcome.GOOD_IS_BAD and order == [8, 0]


def test_an_endpoint_that_cannot_be_tested_stops_with_its_reason():
    done, _, _ = bisect(8, 3, skip={8})
    assert done.outcome is Outcome.UNTESTABLE and "bad endpoint" in done.message
    assert "does not build" in done.message
    done, _, _ = bisect(8, 3, skip={0})
    assert done.outcome is Outcome.UNTESTABLE and "good endpoint" in done.message


def test_infrastructure_runs_are_not_counted():
    obs = [Observation(8, Verdict.INFRA), Observation(8, Verdict.INFRA)]
    act = Search(8, Policy(), obs).next()
    assert isinstance(act, Next) and act.index == 8
    assert Search(8, Policy(), obs + [Observation(8, Verdict.BAD)]).next().index == 0


def test_each_step_runs_repeat_times_unless_the_target_shows():
    pol = Policy(repeat=3, max_runs=10)
    done, order, runs = bisect(8, 3, policy=pol)
    assert done.outcome is Outcome.FOUND and done.culprit == 3
    # bad endpoint 3, good endpoint 3, 4 bad at once, 2 good x3, 3 bad at once
    assert runs == 3 + 3 + 1 + 3 + 1


def test_disagreeing_runs_make_the_target_flaky_and_the_endpoint_is_measured():
    pol = Policy(repeat=3, max_runs=10)
    obs = [Observation(8, v) for v in (Verdict.BAD, Verdict.GOOD, Verdict.BAD)]
    s = Search(8, pol, obs)
    assert s.flaky and s.rate < 1
    act = s.next()
    assert act.index == 8 and act.runs == 7 and "flaky" in act.why


def test_wilson_lower_bound():
    assert wilson_lower(0, 0) == 0.0
    assert 0.3 < wilson_lower(5, 10) < 0.5
    assert wilson_lower(10, 10) < 1.0
    assert wilson_lower(50, 100) > wilson_lower(5, 10)


@pytest.mark.parametrize("seed", range(3))
def test_flaky_half_the_runs_names_the_culprit_nine_times_in_ten(seed):
    rng = random.Random(seed)
    pol = Policy(repeat=3, max_runs=10, confidence=0.95)
    right, stated = 0, []
    for _ in range(40):
        culprit = rng.randint(1, 8)
        done, _, _ = bisect(8, culprit, rate=0.5, policy=pol, rng=rng)
        assert done.outcome in (Outcome.FOUND, Outcome.LOW_CONFIDENCE)
        right += done.culprit == culprit
        if done.outcome is Outcome.FOUND:
            stated.append(done.confidence)
            assert done.confidence >= 0.95
    assert right >= 36, right


def test_low_confidence_says_what_max_runs_would_reach_it():
    rng = random.Random(7)
    pol = Policy(repeat=2, max_runs=4, confidence=0.99)
    outcomes = [bisect(8, 5, rate=0.3, policy=pol, rng=rng)[0] for _ in range(10)]
    low = [d for d in outcomes if d.outcome is Outcome.LOW_CONFIDENCE]
    assert low, [d.outcome for d in outcomes]
    for d in low:
        assert d.max_runs_needed and d.max_runs_needed > 4
        assert d.confidence < 0.99 and d.culprit in d.candidates
        assert "--max-runs 4" in d.message


def test_posterior_is_a_distribution_and_deterministic_goods_rule_out():
    s = Search(8, Policy(), [Observation(8, Verdict.BAD), Observation(0, Verdict.GOOD),
                             Observation(4, Verdict.GOOD)])
    post = s.posterior()
    assert abs(sum(post) - 1) < 1e-9
    assert post[:5] == [0.0] * 5 and all(abs(x - 0.25) < 1e-9 for x in post[5:])


def test_policy_is_checked():
    with pytest.raises(ValueError):
        Policy(repeat=0)
    with pytest.raises(ValueError):
        Policy(repeat=5, max_runs=3)
    with pytest.raises(ValueError):
        Policy(confidence=1.0)


# --- --endpoints as-needed: one binary search over every outcome ------------

AS_NEEDED = Policy(endpoints_first=False)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=2, max_value=300), st.data())
def test_as_needed_finds_the_culprit_in_at_most_log2_plus_one_steps(n, data):
    """The issue's bound, endpoints included: ceil(log2 N) + 1 build-and-test
    steps for a deterministic regression in N patches (N >= 2)."""
    culprit = data.draw(st.integers(min_value=1, max_value=n))
    done, order, runs = bisect(n, culprit, policy=AS_NEEDED)
    assert done.outcome is Outcome.FOUND and done.culprit == culprit
    assert len(order) <= math.ceil(math.log2(n)) + 1
    assert runs == len(order)
    # the verdict rests on runs: the culprit ran bad, the one before it good
    assert culprit in order and culprit - 1 in order


def test_as_needed_on_the_fixture_takes_four_steps_not_five():
    done, order, _ = bisect(8, 3, policy=AS_NEEDED)
    assert done.culprit == 3 and len(order) == 4
    assert len(bisect(8, 3)[1]) == 5          # endpoints first: 2 + ceil(log2 8)


def test_as_needed_a_target_that_never_shows_ends_on_a_good_run_of_the_bad_endpoint():
    done, order, _ = bisect(8, 99, policy=AS_NEEDED)
    assert done.outcome is Outcome.NOT_REPRODUCED
    assert order[-1] == 8 and len(order) <= 4


def test_as_needed_a_target_already_on_the_good_endpoint_ends_on_its_bad_run():
    done, order, _ = bisect(8, 0, policy=AS_NEEDED)
    assert done.outcome is Outcome.GOOD_IS_BAD and done.culprit == 0
    assert order[-1] == 0


def test_as_needed_untestable_endpoints_and_skips():
    assert bisect(8, 99, policy=AS_NEEDED, skip={8})[0].outcome is Outcome.UNTESTABLE
    done = bisect(8, 1, policy=AS_NEEDED, skip={0})[0]
    assert done.outcome is Outcome.UNTESTABLE and "good endpoint" in done.message
    done = bisect(8, 5, policy=AS_NEEDED, skip={4, 5})[0]
    assert done.outcome is Outcome.AMBIGUOUS and set(done.candidates) == {4, 5, 6}
    done = bisect(8, 6, policy=AS_NEEDED, skip={4})[0]
    assert done.outcome is Outcome.FOUND and done.culprit == 6


def test_as_needed_falls_back_to_the_general_search_when_runs_disagree():
    """A good run above a bad one (a flaky target under --repeat 1): the
    endpoints-first search takes over instead of naming a culprit."""
    obs = [Observation(4, Verdict.BAD), Observation(6, Verdict.GOOD)]
    act = Search(8, AS_NEEDED, obs).next()
    assert isinstance(act, Next) and act.index == 8
