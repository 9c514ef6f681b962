"""Re-solves of neighbourhoods that weigh sales as well as travel (allocator.improve)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from allocator import clock
from allocator.alignment import AlignmentProblem, LocalSearch, align
from allocator.formulation import build_subproblem
from allocator.improve import TerritorySales, lns, sales_moves
from allocator.checker import assert_plan
from allocator.plan import make_plan


def test_territory_value_is_the_plans_margin_on_sales_less_travel(texas, texas_result):
    plan = texas_result.plan
    problem = AlignmentProblem.from_scenario(texas)
    sales = TerritorySales(problem, plan.staffing)
    margin = texas.settings.strategy.margin
    expected = margin * plan.kpis["expected_sales"] - plan.costs["travel"]
    assert sales.value(plan.assignment) == pytest.approx(expected, rel=1e-9)


def test_priced_resolves_never_lose_value_nor_break_the_budget(texas, texas_result):
    """Started from the solved plan, re-solves priced by each territory's hour price keep only
    what raises the margin on sales less travel, within the budget's room."""
    plan = texas_result.plan
    problem = AlignmentProblem.from_scenario(texas)
    sales = TerritorySales(problem, plan.staffing)
    spec = texas.settings.solver
    with clock.running(clock.SearchClock(True, math.inf)):
        assignment, stats = lns(problem, plan.staffing, plan.assignment, spec, clock.now() + 15.0,
                                np.random.default_rng(1))
    assert stats["resolves"] > 0
    after = make_plan(texas, problem, plan.staffing, assignment)
    assert sales.value(assignment) >= sales.value(plan.assignment) - 1e-6
    assert after.objective() >= plan.objective() - 1e-6
    assert after.costs["total"] <= texas.settings.strategy.budget * (1 + 1e-12)


def test_prices_enter_the_objective_of_a_resolve(texas, texas_result):
    """With prices, a unit's objective coefficient differs between territories by more than
    travel: the conjugate value of the unit at each territory's price."""
    plan = texas_result.plan
    problem = AlignmentProblem.from_scenario(texas)
    sales = TerritorySales(problem, plan.staffing)
    ends = plan.assignment[texas.edges]
    border = texas.edges[np.flatnonzero(ends[:, 0] != ends[:, 1])[0]]
    terrs = sorted(int(t) for t in plan.assignment[border])
    prices = sales.prices(plan.assignment, terrs)
    plain = build_subproblem(problem, plan.staffing, plan.assignment, terrs)
    priced = build_subproblem(problem, plan.staffing, plan.assignment, terrs, prices=prices,
                              margin=texas.settings.strategy.margin)
    assert len(terrs) == 2 and all(p > 0 for p in prices.values())
    plain_cost = {var.name: c for var, c in plain.model.objective.items()}
    priced_cost = {var.name: c for var, c in priced.model.objective.items()}
    assert plain_cost.keys() == priced_cost.keys()
    reward = {name: plain_cost[name] - priced_cost[name] for name in plain_cost}
    # a reward is never negative (each unit's least value is taken off), and some pairs earn one
    assert min(reward.values()) >= -1e-6
    assert max(reward.values()) > 1.0


def test_sales_moves_gain_exactly_what_they_claim_and_keep_the_plan_valid(texas, texas_result):
    """From a balanced alignment that minimised travel only, single moves judged on the true
    sales raise the margin on sales less travel by exactly the gain they report, and the plan
    stays balanced, connected and within the budget."""
    plan = texas_result.plan
    problem = AlignmentProblem.from_scenario(texas)
    start, _ = align(problem, plan.staffing, texas.settings.alignment.candidates, True)
    travel_only = LocalSearch(problem, plan.staffing, start)
    travel_only.run()
    assert travel_only.violation() <= 1e-9
    sales = TerritorySales(problem, plan.staffing)
    with clock.running(clock.SearchClock(True, math.inf)):
        moved, stats = sales_moves(problem, plan.staffing, travel_only.assignment, math.inf)
    assert stats["sales_moves"] > 0 and stats["sales_gain"] > 0
    gained = sales.value(moved) - sales.value(travel_only.assignment)
    assert gained == pytest.approx(stats["sales_gain"], rel=1e-6)
    after = make_plan(texas, problem, plan.staffing, moved)
    assert LocalSearch(problem, plan.staffing, moved).violation() <= 1e-9
    assert after.costs["total"] <= texas.settings.strategy.budget * (1 + 1e-12)
    assert_plan(after)  # each unit once, balance, contiguity, budget, quotas
