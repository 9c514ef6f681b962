"""Tiny instances whose optimum is found by brute force, compared with every solver.

Every staffing (which existing reps stay, how many hires at each site) and every assignment of the
units to the open territories is enumerated; the feasible plans (head count range, balance per
rep, contiguity, site inside its territory, reps per territory, budget) are evaluated with the
engine's own ``make_plan`` (margin x expected sales - total cost). The solver's answer must be
feasible, no better than that optimum, and within the configured gap of it.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import networkx as nx
import numpy as np
import pulp
import pytest

from allocator.alignment import AlignmentProblem, Staffing
from allocator.checker import check_plan
from allocator.exceptions import InfeasibleError
from allocator.plan import make_plan
from allocator.scenario import load_scenario
from allocator.solve import solve
from allocator.solvers import solve_mip
from conftest import SOLVERS, write_scenario

# Each instance: the options of ``write_scenario`` and, for the infeasible one, the expectation.
INSTANCES = [
    {
        # one rep, two one-place hire sites: choose 1-3 reps; the budget pays for at most two
        "id": "grid2x3-choose-1to3-budget-binds",
        "rows": 2, "cols": 3,
        "workload": [300, 400, 500, 350, 450, 400],
        "potential": [1.2e6, 0.8e6, 1.0e6, 0.9e6, 1.5e6, 0.7e6],
        "settings": {"strategy": {"budget": 300000}},
        # by hand: 3 plans of one rep (R1, or R1 let go for a hire at U3 or at U6); of two reps
        # (each territory within [960, 1440] h): R1+U3 {U1,U2,U4} or {U1,U4,U5}; R1+U6
        # {U1,U2,U3}, {U1,U2,U4} or {U1,U4,U5}; U3+U6 {U1,U2,U3}: 6; three reps cost 330,000
        "feasible_plans": 9,
    },
    {
        # exactly two territories: two existing reps kept, no hire places
        "id": "grid2x3-two-territories",
        "rows": 2, "cols": 3,
        "workload": [200, 500, 300, 400, 300, 500],
        "potential": [0.6e6, 1.4e6, 0.9e6, 1.1e6, 0.5e6, 1.3e6],
        "reps": [{"rep_id": "R1", "home_unit": "U1", "annual_cost": 90000},
                 {"rep_id": "R2", "home_unit": "U6", "annual_cost": 95000, "productivity": 1.1}],
        "sites": [],
        "settings": {"strategy": {"budget": 400000, "headcount": {"min": 2, "max": 2}},
                     "reps": {"lock": "keep"},
                     "alignment": {"balance": [{"measure": "workload", "tolerance": 0.25}]}},
        # by hand: R1's territory within [825, 1375] h, both parts connected:
        # {U1,U2,U3}, {U1,U2,U4} or {U1,U4,U5} ({U1,U2,U5} cuts U4 off)
        "feasible_plans": 3,
    },
    {
        # a 2 x 4 strip: two existing reps (one may go), up to two hires at one site
        "id": "grid2x4-keep-or-release",
        "rows": 2, "cols": 4,
        "workload": [250, 300, 350, 300, 400, 250, 300, 350],
        "potential": [0.5e6, 0.9e6, 0.7e6, 1.6e6, 0.4e6, 1.1e6, 0.8e6, 0.6e6],
        "reps": [{"rep_id": "R1", "home_unit": "U1", "annual_cost": 140000},
                 {"rep_id": "R2", "home_unit": "U8", "annual_cost": 95000}],
        "sites": [("U4", 2)],
        "settings": {"strategy": {"budget": 420000, "headcount": {"min": 1, "max": 3}},
                     "alignment": {"balance": [{"measure": "workload", "tolerance": 0.3}]}},
    },
    {
        # exactly two reps in two territories, chosen among two existing reps and three sites
        "id": "grid2x4-two-of-five-sites",
        "rows": 2, "cols": 4,
        "workload": [300, 350, 250, 400, 300, 350, 300, 250],
        "potential": [0.7e6, 1.2e6, 0.6e6, 0.9e6, 1.3e6, 0.5e6, 1.0e6, 0.8e6],
        "reps": [{"rep_id": "R1", "home_unit": "U1", "annual_cost": 120000},
                 {"rep_id": "R2", "home_unit": "U8", "annual_cost": 100000}],
        "sites": [("U3", 1), ("U5", 1), ("U6", 1)],
        "settings": {"strategy": {"budget": 400000, "headcount": {"min": 2, "max": 2}},
                     "alignment": {"balance": [{"measure": "workload", "tolerance": 0.2}]}},
    },
    {
        # U1 holds more work than one rep may carry (3 reps: mean 767 h, at most 920 h per rep):
        # its territory needs a team of two, R1 and the hire at U1
        "id": "grid2x3-heavy-unit-needs-a-team",
        "rows": 2, "cols": 3,
        "workload": [1000, 250, 300, 250, 200, 300],
        "potential": [2.4e6, 0.6e6, 0.9e6, 0.7e6, 0.5e6, 0.8e6],
        "sites": [("U1", 1), ("U3", 1), ("U6", 1)],
        "settings": {"strategy": {"budget": 400000, "headcount": {"min": 3, "max": 3}},
                     "alignment": {"balance": [{"measure": "workload", "tolerance": 0.2}]}},
    },
    {
        # infeasible by construction: the budget does not pay for the minimum head count
        "id": "grid2x2-budget-below-minimum",
        "rows": 2, "cols": 2,
        "workload": [300, 300, 300, 300],
        "potential": [1e6, 1e6, 1e6, 1e6],
        "sites": [("U4", 1)],
        "settings": {"strategy": {"budget": 150000, "headcount": {"min": 2, "max": 2}}},
        "infeasible": True,
    },
]


def _options(instance: dict) -> dict:
    return {k: v for k, v in instance.items() if k not in {"id", "infeasible", "feasible_plans"}}


def _edge_graph(rows: int, cols: int) -> nx.Graph:
    """The grid's rook graph, built here independently of the scenario files."""
    graph = nx.grid_2d_graph(rows, cols)
    return nx.relabel_nodes(graph, {(r, c): r * cols + c for r, c in graph.nodes})


def brute_force(scenario, rows: int, cols: int):
    """(best objective, best plan, number of feasible plans) over every staffing and assignment."""
    s = scenario.settings
    problem = AlignmentProblem.from_scenario(scenario)
    graph = _edge_graph(rows, cols)
    n = scenario.n_units
    workload = scenario.units["workload"].to_numpy(float)
    tolerance = s.alignment.balance[0].tolerance
    homes = [int(h) for h in scenario.reps["home"]]
    hire_sites = [(int(u), int(m)) for u, m in zip(scenario.sites["unit"],
                                                     scenario.sites["max_hires"]) if m > 0]
    must_keep = s.reps is not None and s.reps.lock == "keep"
    best_value, best_plan, feasible = -math.inf, None, 0
    keep_options = [(True,)] if must_keep else [(False, True)]
    for kept_flags in itertools.product(*(keep_options * len(homes))):
        kept = [r for r, flag in enumerate(kept_flags) if flag]
        for hires in itertools.product(*(range(m + 1) for _, m in hire_sites)):
            headcount = len(kept) + sum(hires)
            if not s.strategy.headcount.min <= headcount <= s.strategy.headcount.max:
                continue
            sites = sorted({homes[r] for r in kept} | {u for (u, _), h in zip(hire_sites, hires)
                                                       if h > 0})
            position = {u: t for t, u in enumerate(sites)}
            reps_at = [[r for r in kept if homes[r] == u] for u in sites]
            hires_at = np.zeros(len(sites), dtype=np.int64)
            for (u, _), h in zip(hire_sites, hires):
                if h:
                    hires_at[position[u]] += h
            n_reps = np.array([len(r) for r in reps_at]) + hires_at
            if (n_reps > s.alignment.max_reps_per_territory).any():
                continue
            staffing = Staffing(np.array(sites, dtype=np.int64), reps_at, hires_at)
            free = [i for i in range(n) if i not in position]
            mean = workload.sum() / headcount
            for choice in itertools.product(range(len(sites)), repeat=len(free)):
                assignment = np.empty(n, dtype=np.int64)
                for u, t in position.items():
                    assignment[u] = t
                assignment[free] = choice
                load = np.bincount(assignment, weights=workload, minlength=len(sites))
                index = load / n_reps / mean
                if np.abs(index - 1).max() > tolerance + 1e-9:
                    continue
                if not all(nx.is_connected(graph.subgraph(np.flatnonzero(assignment == t)
                                                          .tolist()))
                           for t in range(len(sites))):
                    continue
                plan = make_plan(scenario, problem, staffing, assignment)
                if plan.costs["total"] > s.strategy.budget:
                    continue
                feasible += 1
                if plan.objective() > best_value:
                    best_value, best_plan = plan.objective(), plan
    return best_value, best_plan, feasible


@pytest.fixture(scope="module")
def optima(tmp_path_factory) -> dict:
    """Scenario and brute-force optimum of every instance, computed once per module."""
    out = {}
    for instance in INSTANCES:
        folder = tmp_path_factory.mktemp(instance["id"])
        scenario = load_scenario(write_scenario(Path(folder), **_options(instance)))
        out[instance["id"]] = (scenario, *brute_force(scenario, instance["rows"],
                                                      instance["cols"]))
    return out


FEASIBLE = [i for i in INSTANCES if not i.get("infeasible")]
INFEASIBLE = [i for i in INSTANCES if i.get("infeasible")]
COMPARED = FEASIBLE


@pytest.mark.parametrize("instance", FEASIBLE, ids=[i["id"] for i in FEASIBLE])
def test_brute_force_optimum_is_a_sound_plan(optima, instance):
    scenario, value, plan, feasible = optima[instance["id"]]
    assert feasible > 0 and plan is not None
    if "feasible_plans" in instance:  # the enumeration itself, against a count made by hand
        assert feasible == instance["feasible_plans"]
    assert check_plan(plan) == []
    assert value == pytest.approx(plan.kpis["contribution"])


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("instance", COMPARED, ids=[i["id"] for i in COMPARED])
def test_solver_reaches_brute_force_optimum(optima, instance, solver):
    scenario, optimum, _, _ = optima[instance["id"]]
    gap = scenario.settings.solver.gap
    result = solve(scenario, solver=solver, time_limit=5, seed=0)
    tiny = 1e-6 * max(1.0, abs(optimum))
    assert result.solver == solver
    assert result.status in {"optimal", "feasible"}
    assert result.status == "optimal" or result.gap <= gap
    assert check_plan(result.plan) == []
    assert result.objective == pytest.approx(result.plan.objective(), rel=1e-12)
    # no plan beats the enumerated optimum, and the answer is within the configured gap of it
    assert result.objective <= optimum + tiny
    assert result.objective >= optimum - gap * abs(optimum) - tiny
    if result.status == "optimal":
        assert result.objective >= optimum - tiny
    # the reported bound is a true upper bound of the optimum
    assert result.bound >= optimum - tiny


@pytest.mark.parametrize("instance", INFEASIBLE, ids=[i["id"] for i in INFEASIBLE])
def test_infeasible_instance(optima, instance):
    scenario, value, plan, feasible = optima[instance["id"]]
    assert feasible == 0 and plan is None and value == -math.inf
    for solver in SOLVERS:
        with pytest.raises(InfeasibleError) as caught:
            solve(scenario, solver=solver, time_limit=5)
        assert caught.value.diagnosis
        assert any("budget" in line for line in caught.value.diagnosis)


@pytest.mark.parametrize("solver", ["highs", "cbc"])
def test_node_limit_stops_the_search_with_its_best_plan_and_bound(solver):
    """A multi-dimensional knapsack that takes many nodes to prove: stopped after three nodes,
    the solver hands back a feasible plan, a bound at least as good, and says it is not
    proven; without the limit it is proven optimal and lies between the two."""
    rng = np.random.default_rng(3)
    n = 20  # CP-SAT proves it in a fraction of a second; three nodes do not
    weights = rng.integers(100, 1000, size=(4, n))
    values = weights.mean(axis=0) + rng.integers(-5, 6, size=n)

    def knapsack() -> tuple[pulp.LpProblem, list[pulp.LpVariable]]:
        model = pulp.LpProblem("knapsack", pulp.LpMaximize)
        take = [pulp.LpVariable(f"take_{i}", cat="Binary") for i in range(n)]
        model += pulp.lpSum(float(v) * x for v, x in zip(values, take, strict=True))
        for row in weights:
            model += pulp.lpSum(int(w) * x for w, x in zip(row, take, strict=True)) \
                <= int(row.sum()) // 3
        return model, take

    model, take = knapsack()
    stopped = solve_mip(model, solver, time_limit=60, gap=0.0, seed=0, threads=1,
                        warm_start=False, node_limit=3)
    chosen = np.array([x.varValue for x in take]) > 0.5
    assert stopped.status == "feasible"
    assert (weights[:, chosen].sum(axis=1) <= weights.sum(axis=1) // 3).all()
    assert stopped.objective == pytest.approx(values[chosen].sum())
    model, _ = knapsack()
    proven = solve_mip(model, "cpsat", time_limit=60, gap=0.0, seed=0, threads=1,
                       warm_start=False)
    assert proven.status == "optimal"
    assert stopped.objective <= proven.objective + 1e-6
    if stopped.bound is not None:  # CBC does not report its bound through PuLP
        assert stopped.bound >= proven.objective - 1e-6
