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
from allocator.branching import HeadcountBranching
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


@pytest.mark.parametrize("instance", FEASIBLE, ids=[i["id"] for i in FEASIBLE])
def test_branching_bound_covers_the_optimum(optima, instance):  # noqa: F811
    """Branched to the end, the bound stays above the brute-force optimum and at or below the
    LP's; the fixings are undone after each node (the LP of the head count is unchanged)."""
    scenario, optimum, plan, _ = optima[instance["id"]]
    n = plan.kpis["headcount"]
    problem = AlignmentProblem.from_scenario(scenario)
    curve = response_curve(scenario)
    tiny = 1e-6 * max(1.0, abs(optimum))
    with clock.running(clock.SearchClock(False, math.inf)):
        model = HeadcountLp(scenario, problem, curve, teams=True)
        lp = headcount_lp_bound(scenario, problem, n, curve, model=model)
        tree = HeadcountBranching(model, n, lp.value)
        steps = 0
        while tree.step(math.inf):
            steps += 1
            assert steps < 10_000
        again = headcount_lp_bound(scenario, problem, n, curve, model=model)
    # it stops once a leaf that splits no unit holds the largest bound
    top = max(tree.leaves, key=lambda leaf: leaf.bound)
    assert lp.exact and top.solved and top.unit < 0
    assert optimum - tiny <= tree.bound() <= lp.value + tiny
    assert again.value == pytest.approx(lp.value, rel=1e-9)
    if instance["id"] == "grid2x3-heavy-unit-needs-a-team":
        # the LP shares U1 out over sites; placed whole, its site needs the team of two
        assert tree.expanded >= 1 and tree.bound() < lp.value - tiny


def test_branching_closes_most_of_the_texas_gap(texas):
    """Harris County (2.5 reps' work at 14 reps) split over four sites: one level of branching
    on its site lowers the bound of 14 reps by more than 0.3 %; plans found at 14 reps stay
    below it."""
    problem = AlignmentProblem.from_scenario(texas)
    curve = response_curve(texas)
    with clock.running(clock.SearchClock(False, math.inf)):
        model = HeadcountLp(texas, problem, curve, teams=True)
        lp = headcount_lp_bound(texas, problem, 14, curve, model=model)
        tree = HeadcountBranching(model, 14, lp.value)
        tree.expand_root(math.inf)
    harris = int(np.argmax(problem.measures[:, 0]))
    assert tree.expanded == 1 and all(leaf.fixed[0][0] == harris for leaf in tree.leaves)
    assert tree.bound() < 0.997 * lp.value
    # the staffing of the best leaf gives Harris's site a team of at least three
    keep, hire = tree.staffing()
    best = max(tree.leaves, key=lambda leaf: leaf.bound)
    site = best.fixed[0][1]
    staffed = hire[site] + keep[model.rep_site == site].sum()
    assert staffed >= 3 - 1e-6


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


def test_price_rows_tighten_the_bound_and_leave_no_site_loose(texas, texas_result):
    """Rows at each site's own price lower the LP (the grid of prices was loose), keep it above
    the best plan, and at the end no site's sales exceed its tightest conjugate bound."""
    n = texas_result.plan.kpis["headcount"]
    problem = AlignmentProblem.from_scenario(texas)
    curve = response_curve(texas)
    with clock.running(clock.SearchClock(False, math.inf)):
        model = HeadcountLp(texas, problem, curve)
        tight = headcount_lp_bound(texas, problem, n, curve, model=model, max_rounds=1000)
        grid = headcount_lp_bound(texas, problem, n, curve, price_rows=False)
    assert tight.exact and grid.exact
    assert len(model.cut_site) > 0
    assert tight.value < grid.value * (1 - 1e-4)
    assert tight.value >= texas_result.objective * (1 - 1e-9)
    x = np.asarray(model.h.getSolution().col_value)
    loose, _ = model.loose_prices(x, 1e-6 * tight.parts["sales"])
    assert len(loose) == 0


def test_tightest_price_is_the_minimum_over_a_fine_grid():
    """The bisection's price gives a conjugate bound no fine grid of prices beats."""
    from allocator.response import conjugate, tightest_prices
    from allocator.settings import ResponseSpec

    spec = ResponseSpec()
    rng = np.random.default_rng(3)
    potential = rng.lognormal(11, 1, 40)
    workload = rng.lognormal(3, 0.5, 40)
    unit = np.arange(40)
    group = np.repeat([0, 1], 20)
    weight = rng.uniform(0.2, 1.0, 40)
    hours = np.array([0.3, 1.5]) * np.bincount(group, weights=weight * workload)
    lam = tightest_prices(potential, workload, hours, unit, group, weight, spec)

    def bound(g, price):
        members = group == g
        return price * hours[g] + float(weight[members]
                                        @ conjugate(potential[members], workload[members],
                                                    price, spec))

    for g in (0, 1):
        fine = np.geomspace(lam[g] / 50, lam[g] * 50, 2001)
        assert bound(g, lam[g]) <= min(bound(g, p) for p in fine) * (1 + 1e-9)


def test_head_count_ranges_never_straddle_a_manager_step(texas):
    """A range pays the managers of its smallest head count: the ranges that bound the open
    head counts each lie within one number of managers, and they meet at every step."""
    from allocator.sizing import economics, size_bounds
    from allocator.solve import bound_ranges

    problem = AlignmentProblem.from_scenario(texas)
    curve = response_curve(texas)
    econ = economics(texas)
    with clock.running(clock.SearchClock(False, math.inf)):
        model = HeadcountLp(texas, problem, curve)
        headcount_lp_bound(texas, problem, 12, curve, model=model)  # duals for the Lagrangian
        bounds = size_bounds(texas, curve)
        # every feasible head count open (a plan worth nothing), a second for range LPs
        ranges = bound_ranges(texas, problem, curve, bounds, {}, 0.0, 0.0, clock.now() + 1.0,
                              lambda message: None, model)
    labels = {label for _, label in ranges.values()}
    spans = sorted(tuple(int(v) for v in label.split("-")) if "-" in label
                   else (int(label), int(label)) for label in labels)
    assert len(spans) >= 3
    for lo, hi in spans:
        assert econ.managers(lo) == econ.managers(hi), (lo, hi)
    limits = texas.settings.strategy.headcount
    steps = [n for n in range(limits.min + 1, limits.max + 1)
             if econ.managers(n) != econ.managers(n - 1)]
    starts = {lo for lo, _ in spans}
    assert steps and all(n in starts for n in steps if n in ranges), (steps, spans)
