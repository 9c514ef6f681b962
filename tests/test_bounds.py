"""The LP bound of head counts and head-count ranges (allocator.bounds).

A bound is only useful if it is valid: it must never fall below a plan that exists. These tests
compare it with brute-force optima, with itself under pruning, warm re-use and strong links, and
check that infeasibility is proven for every pair set, not just the pruned one.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_optimum import FEASIBLE, optima  # noqa: F401  (the module-scoped fixture)

from allocator import clock
from allocator.alignment import AlignmentProblem
from allocator.bounds import HeadcountLp, headcount_lp_bound
from allocator.sizing import response_curve


def _bound(scenario, lo, hi=None, model=None, **options):
    problem = AlignmentProblem.from_scenario(scenario)
    curve = response_curve(scenario)
    with clock.running(clock.SearchClock(False, math.inf)):
        return headcount_lp_bound(scenario, problem, lo, curve, headcount_hi=hi, model=model,
                                  time_limit=60.0, **options)


@pytest.mark.parametrize("instance", FEASIBLE, ids=[i["id"] for i in FEASIBLE])
def test_range_and_head_count_bounds_cover_the_optimum(optima, instance):  # noqa: F811
    scenario, optimum, plan, _ = optima[instance["id"]]
    spec = scenario.settings.strategy.headcount
    n = plan.kpis["headcount"]
    tiny = 1e-6 * max(1.0, abs(optimum))
    whole = _bound(scenario, spec.min, spec.max)
    own = _bound(scenario, n)
    weak = _bound(scenario, n, strong_links=False)
    assert whole.feasible and own.feasible and own.exact
    # every bound is above the best plan; the range's is above its members', links tighten
    assert own.value >= optimum - tiny
    assert whole.value >= own.value - tiny
    assert weak.value >= own.value - tiny


def test_warm_reuse_gives_the_bound_of_a_fresh_model(texas):
    """Pairs and links priced in for one range stay valid for the next, and set_range restores
    every coefficient: a re-used model ends at the same exact LP value as a fresh one."""
    problem = AlignmentProblem.from_scenario(texas)
    curve = response_curve(texas)
    with clock.running(clock.SearchClock(False, math.inf)):
        shared = HeadcountLp(texas, problem, curve)
        first = [headcount_lp_bound(texas, problem, lo, curve, headcount_hi=hi, model=shared)
                 for lo, hi in [(12, 12), (8, 30), (13, 16)]]
        again = headcount_lp_bound(texas, problem, 12, curve, model=shared)
        fresh = headcount_lp_bound(texas, problem, 12, curve)
    assert all(b.exact for b in first + [again, fresh])
    assert again.value == pytest.approx(fresh.value, rel=1e-7)
    assert first[0].value == pytest.approx(fresh.value, rel=1e-7)
    # a range holding 12 is bounded at least as high as 12 alone
    assert first[1].value >= fresh.value * (1 - 1e-9)
    assert again.links > 0  # the strong links were needed


def test_pruned_start_reaches_the_bound_of_all_pairs(texas):
    """Column generation from each unit's two nearest sites ends at the LP over every pair."""
    all_sites = len(texas.sites)
    pruned = _bound(texas, 12, start_k=2)
    full = _bound(texas, 12, start_k=all_sites)
    assert pruned.exact and full.exact
    assert pruned.columns < full.columns
    assert pruned.value == pytest.approx(full.value, rel=1e-7)


def test_infeasible_head_count_is_proven_for_every_pair(texas):
    """17 reps cannot be paid once travel is counted: the pruned LP is infeasible, and the
    Farkas ray proves it for all pairs without adding them; the LP over all pairs agrees."""
    pruned = _bound(texas, 17, start_k=2)
    full = _bound(texas, 17, start_k=len(texas.sites))
    assert not pruned.feasible and pruned.value == -np.inf
    assert not full.feasible
    assert pruned.columns < full.columns


def test_time_out_returns_a_valid_bound_or_none(texas, texas_result):
    """A bound cut short by its work limit is the previous round's Farley bound (or infinite):
    never below the best plan of that head count."""
    n = texas_result.plan.kpis["headcount"]
    problem = AlignmentProblem.from_scenario(texas)
    curve = response_curve(texas)
    with clock.running(clock.SearchClock(True, math.inf)):
        short = headcount_lp_bound(texas, problem, n, curve, time_limit=0.05, max_rounds=2)
    assert not short.exact
    assert short.value >= texas_result.objective * (1 - 1e-9)


def test_lagrangian_of_other_ranges_is_weak_duality_safe(texas):
    """The Lagrangian bound of a range from another solve's duals never falls below that
    range's exact LP (weak duality), and at the solved range itself it is the LP value."""
    problem = AlignmentProblem.from_scenario(texas)
    curve = response_curve(texas)
    with clock.running(clock.SearchClock(False, math.inf)):
        shared = HeadcountLp(texas, problem, curve)
        solved = headcount_lp_bound(texas, problem, 12, curve, model=shared)
        assert solved.exact
        shared.set_range(12, 12)
        assert shared.lagrangian_bound() == pytest.approx(solved.value, rel=1e-7)
        for lo, hi in [(8, 11), (13, 16), (14, 14)]:
            shared.set_range(lo, hi)
            lagrangian = shared.lagrangian_bound()
            exact = headcount_lp_bound(texas, problem, lo, curve, headcount_hi=hi)
            assert exact.exact
            assert lagrangian >= exact.value * (1 - 1e-9)
            assert np.isfinite(lagrangian)


@pytest.mark.parametrize("instance", FEASIBLE, ids=[i["id"] for i in FEASIBLE])
def test_lagrangian_covers_the_optimum(optima, instance):  # noqa: F811
    scenario, optimum, _, _ = optima[instance["id"]]
    spec = scenario.settings.strategy.headcount
    problem = AlignmentProblem.from_scenario(scenario)
    curve = response_curve(scenario)
    with clock.running(clock.SearchClock(False, math.inf)):
        model = HeadcountLp(scenario, problem, curve)
        headcount_lp_bound(scenario, problem, spec.min, curve, model=model)
        model.set_range(spec.min, spec.max)
        assert model.lagrangian_bound() >= optimum - 1e-6 * max(1.0, abs(optimum))
