"""The free-centre bound of travel compactness never exceeds an exact optimum.

Tiny lattices are written as ordinary scenarios; the balanced p-median they relax (every unit a
possible centre, contiguity dropped) is solved exactly as a MIP on every solver, and its LP
relaxation by HiGHS, to compare the Lagrangian bound with.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pulp
import pytest
from conftest import SOLVERS, write_districting
from scipy.optimize import linprog

from allocator.alignment import AlignmentProblem
from allocator import pmedian_bound
from allocator.pmedian_bound import (
    _Lagrangian,
    fractional_knapsack,
    lagrangian_centres,
    pmedian_lp_bound,
)
from allocator.scenario import load_scenario
from allocator.solvers import solve_mip


def lattice_problem(folder: Path, xy: np.ndarray, workload: np.ndarray, customers: np.ndarray,
                    territories: int, tolerance: float) -> AlignmentProblem:
    """A districting scenario over points ``xy`` (edges join points one apart), as the search
    sees it: distance weighed by workload."""
    n = len(xy)
    ids = [f"U{k}" for k in range(n)]
    units = pd.DataFrame({"unit_id": ids, "x": xy[:, 0], "y": xy[:, 1], "workload": workload,
                          "customers": customers})
    far = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))
    a, b = np.nonzero(np.triu(np.isclose(far, 1.0)))
    edges = pd.DataFrame({"a": [ids[i] for i in a], "b": [ids[j] for j in b]})
    write_districting(folder, units, edges, territories=territories, tolerance=tolerance,
                      compactness="travel", name="bound", islands="nearest")
    scenario = load_scenario(folder / "scenario.yaml")
    problem = AlignmentProblem.from_scenario(scenario)
    return dataclasses.replace(problem, travel_rate=scenario.units["workload"].to_numpy(float))


def pmedian_model(problem: AlignmentProblem, territories: int, relax: bool = False
                  ) -> pulp.LpProblem:
    """The balanced p-median over all unit pairs (every measure balanced)."""
    n = problem.n
    cost = problem.cost(np.arange(n)[:, None], np.arange(n)[None, :])
    kind = pulp.LpContinuous if relax else pulp.LpBinary
    model = pulp.LpProblem("pmedian", pulp.LpMinimize)
    x = [[pulp.LpVariable(f"x_{i}_{j}", 0, 1, kind) for j in range(n)] for i in range(n)]
    y = [pulp.LpVariable(f"y_{j}", 0, 1, kind) for j in range(n)]
    model += pulp.lpSum(float(cost[i, j]) * x[i][j] for i in range(n) for j in range(n))
    for i in range(n):
        model += pulp.lpSum(x[i]) == 1
    model += pulp.lpSum(y) == territories
    mean = problem.measures.sum(axis=0) / territories
    for j in range(n):
        for m in range(problem.measures.shape[1]):
            load = pulp.lpSum(float(problem.measures[i, m]) * x[i][j] for i in range(n))
            model += load >= float((1 - problem.tolerance[m]) * mean[m]) * y[j]
            model += load <= float((1 + problem.tolerance[m]) * mean[m]) * y[j]
        for i in range(n):
            model += x[i][j] <= y[j]
    return model


@pytest.fixture(scope="module")
def lattice(tmp_path_factory) -> AlignmentProblem:
    """36 units on a 6 x 6 lattice with lognormal workload, 4 territories within 10 %."""
    rng = np.random.default_rng(3)
    xy = np.array([(c, r) for r in range(6) for c in range(6)], dtype=float)
    workload = np.round(10 * rng.lognormal(0, 0.5, len(xy)), 2)
    customers = rng.integers(2, 6, len(xy)).astype(float)
    return lattice_problem(tmp_path_factory.mktemp("lattice"), xy, workload, customers, 4, 0.1)


@pytest.fixture(scope="module")
def lp_value(lattice) -> float:
    outcome = solve_mip(pmedian_model(lattice, 4, relax=True), "highs", time_limit=60, gap=0.0,
                        seed=0, threads=1, warm_start=False)
    assert outcome.status == "optimal"
    return float(outcome.objective)


@pytest.mark.parametrize("solver", SOLVERS)
def test_bound_never_exceeds_the_exact_optimum(lattice, lp_value, solver):
    model = pmedian_model(lattice, 4)
    outcome = solve_mip(model, solver, time_limit=60, gap=0.0, seed=0, threads=1,
                        warm_start=False)
    assert outcome.status == "optimal"
    optimum = outcome.objective
    # the step target is a plan's value, not the optimum: the bound must find its own way
    result = pmedian_lp_bound(lattice, 4, upper=1.2 * optimum, max_iterations=400)
    assert 0 < result.bound <= lp_value * (1 + 1e-9) <= optimum * (1 + 1e-9)
    assert result.bound >= 0.97 * lp_value  # and it gets close to the LP


def test_a_stopped_search_still_bounds(lattice, lp_value):
    for steps in (1, 2, 5, 20):
        result = pmedian_lp_bound(lattice, 4, upper=2 * lp_value, max_iterations=steps)
        assert result.iterations == steps
        assert 0 <= result.bound <= lp_value * (1 + 1e-9)
    # a deadline already passed gives one evaluation, still a bound
    late = pmedian_lp_bound(lattice, 4, upper=2 * lp_value, deadline=-1.0)
    assert late.stopped_by == "deadline" and late.bound <= lp_value * (1 + 1e-9)


def test_tight_case_reaches_the_optimum(tmp_path):
    """Four separated 2 x 2 blocks of equal workload: the LP is integral, so the bound
    reaches the optimum, each block around its own centre."""
    blocks = [(0, 0), (10, 0), (0, 10), (10, 10)]
    xy = np.array([(bx + dx, by + dy) for bx, by in blocks for dy in (0, 1) for dx in (0, 1)],
                  dtype=float)
    problem = lattice_problem(tmp_path, xy, np.full(16, 5.0), np.full(16, 2.0), 4, 0.05)
    model = pmedian_model(problem, 4)
    outcome = solve_mip(model, "highs", time_limit=60, gap=0.0, seed=0, threads=1,
                        warm_start=False)
    assert outcome.status == "optimal"
    optimum = outcome.objective
    assert optimum == pytest.approx(4 * 5.0 * (2 + np.sqrt(2)))  # each block from a corner
    result = pmedian_lp_bound(problem, 4, upper=optimum * 1.5, max_iterations=500)
    assert optimum * (1 - 1e-3) <= result.bound <= optimum * (1 + 1e-9)


def test_fractional_knapsack_matches_linprog():
    rng = np.random.default_rng(1)
    for _ in range(60):
        n, rows = int(rng.integers(2, 30)), int(rng.integers(1, 4))
        reduced = rng.normal(size=(rows, n))
        weight = rng.uniform(0, 2, n)
        weight[rng.random(n) < 0.1] = 0.0
        lower = rng.uniform(0, weight.sum() / 2)
        upper = lower + rng.uniform(0, weight.sum() / 2)
        full, z = fractional_knapsack(reduced, weight, lower, upper)
        partial, _ = fractional_knapsack(reduced, weight, lower, upper,
                                         prefix=int(rng.integers(1, n + 1)))
        np.testing.assert_allclose(partial, full, atol=1e-9)
        for row in range(rows):
            exact = linprog(reduced[row], A_ub=np.vstack([weight, -weight]),
                            b_ub=[upper, -lower], bounds=[(0, 1)] * n)
            assert full[row] == pytest.approx(exact.fun, abs=1e-7)
            assert lower - 1e-9 <= weight @ z[row] <= upper + 1e-9


@pytest.fixture(scope="module")
def wider(tmp_path_factory) -> AlignmentProblem:
    """144 units on a 12 x 12 lattice, 12 territories within 5 %: large enough that each
    centre's knapsack is first priced over its nearest units only."""
    rng = np.random.default_rng(5)
    xy = np.array([(c, r) for r in range(12) for c in range(12)], dtype=float)
    workload = np.round(10 * rng.lognormal(0, 0.5, len(xy)), 2)
    return lattice_problem(tmp_path_factory.mktemp("wider"), xy, workload,
                           np.ones(len(xy)), 12, 0.05)


def test_pricing_over_the_nearest_units_is_exact(wider, monkeypatch):
    """The Lagrangian priced over each centre's nearest units (with the check that no farther
    unit could enter) equals the Lagrangian priced over all units, at multipliers near a plan
    and far from any, so the bound stays a bound."""
    near = _Lagrangian(wider, 12)
    assert near.near is not None and near.near.shape[1] < wider.n
    monkeypatch.setattr(pmedian_bound, "NEAR_FACTOR", 10**9)
    full = _Lagrangian(wider, 12)
    assert full.near is None
    rng = np.random.default_rng(2)
    start = near.radius_start()
    partly_exact = False
    for scale in (0.2, 0.8, 1.0, 1.5, 3.0, 8.0):
        alpha = start * scale * rng.uniform(0.5, 1.5, wider.n)
        value, gradient = near(alpha)
        partly_exact |= bool(near.exact.any())
        value_full, gradient_full = full(alpha)
        assert value == pytest.approx(value_full, rel=1e-9, abs=1e-6)
        np.testing.assert_allclose(near.values, full.values, rtol=1e-9, atol=1e-6)
    assert partly_exact  # the nearest units alone did answer somewhere


def test_lagrangian_centres_are_apart(wider):
    """The centres read off the Lagrangian are ``headcount`` distinct units, no two of them
    neighbours (the plain cheapest knapsacks would often put two side by side)."""
    result = pmedian_lp_bound(wider, 12, upper=1.0e9, max_iterations=300,
                              alpha=_Lagrangian(wider, 12).radius_start())
    centres = lagrangian_centres(wider, 12, result.alpha)
    assert len(np.unique(centres)) == 12
    # no two centres are neighbours: their knapsacks would overlap
    gaps = np.hypot(*(wider.scenario.coordinates.points[centres][:, None, :]
                      - wider.scenario.coordinates.points[centres][None, :, :]
                      ).transpose(2, 0, 1))
    assert gaps[~np.eye(12, dtype=bool)].min() > 1.0 + 1e-9
