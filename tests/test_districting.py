"""Objective 'balance': fixed head count, several balance measures, travel or diameter.

Tiny grids are solved through the ordinary scenario files and compared with the optimum found
by enumerating every partition; every plan also passes the plan checker.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from conftest import SOLVERS, write_districting

from allocator.alignment import AlignmentProblem
from allocator.checker import check_plan
from allocator.cli import main
from allocator.districting import alignment_lp_bound
from allocator.exceptions import InfeasibleError, InputError
from allocator.scenario import load_scenario
from allocator.solve import solve

WORKLOAD = [4, 6, 5, 5, 7, 3, 5, 5]  # a 2 x 4 grid, row-major
CUSTOMERS = [2, 3, 3, 2, 2, 3, 2, 3]


def write(folder: Path, compactness: str, *, lengths: list[float] | None = None,
          tolerance: float = 0.2, territories: int = 2, solver: str = "cpsat",
          extra: dict | None = None) -> Path:
    rows, cols = 2, 4
    ids = [f"U{k + 1}" for k in range(rows * cols)]
    units = pd.DataFrame({"unit_id": ids, "x": [10.0 * (k % cols) for k in range(8)],
                          "y": [10.0 * (k // cols) for k in range(8)], "workload": WORKLOAD,
                          "customers": CUSTOMERS})
    edges = [(ids[r * cols + c], ids[r * cols + c + 1]) for r in range(rows)
             for c in range(cols - 1)] + [(ids[c], ids[cols + c]) for c in range(cols)]
    frame = pd.DataFrame(edges, columns=["a", "b"])
    if lengths is not None:
        frame["length"] = lengths
    settings = {"solver": {"time_limit": 4, "seed": 0, "name": solver}}
    for key, value in (extra or {}).items():
        settings[key] = {**settings.get(key, {}), **value}
    return write_districting(folder, units, frame, territories=territories, tolerance=tolerance,
                             compactness=compactness, settings=settings)


def partitions(scenario, territories: int):
    """Every balanced, contiguous partition of the units into ``territories`` parts."""
    n = scenario.n_units
    graph = nx.Graph(list(map(tuple, scenario.edges)))
    measures = [scenario.units[b.measure].to_numpy(float) for b in
                scenario.settings.alignment.balance]
    tolerance = [b.tolerance for b in scenario.settings.alignment.balance]
    for labels in itertools.product(range(territories), repeat=n - 1):
        labels = (0, *labels)  # the first unit's territory is 0: no relabelled duplicates
        if len(set(labels)) != territories:
            continue
        parts = [[i for i in range(n) if labels[i] == t] for t in range(territories)]
        if not all(nx.is_connected(graph.subgraph(p)) for p in parts):
            continue
        if all(abs(m[p].sum() / (m.sum() / territories) - 1) <= tau + 1e-12
               for m, tau in zip(measures, tolerance, strict=True) for p in parts):
            yield parts


def best_travel(scenario, territories: int) -> float:
    xy = scenario.units[["unit_id"]].assign(
        x=scenario.coordinates.points[:, 0], y=scenario.coordinates.points[:, 1])
    pos = xy[["x", "y"]].to_numpy()
    w = scenario.units["workload"].to_numpy(float)
    best = math.inf
    for parts in partitions(scenario, territories):
        cost = 0.0
        for p in parts:
            d = np.sqrt(((pos[p][:, None, :] - pos[p][None, :, :]) ** 2).sum(-1))
            cost += float((w[p][None, :] * d).sum(axis=1).min())
        best = min(best, cost)
    return best


def best_diameter(scenario, territories: int, weight: str | None) -> float:
    graph = nx.Graph()
    lengths = scenario.edge_length if scenario.edge_length is not None else np.ones(
        len(scenario.edges))
    for (a, b), length in zip(scenario.edges, lengths, strict=True):
        graph.add_edge(int(a), int(b), length=float(length))
    dist = dict(nx.all_pairs_dijkstra_path_length(graph, weight="length"))
    return min(max(max(dist[u][v] for u in p for v in p) for p in parts)
               for parts in partitions(scenario, territories))


@pytest.mark.parametrize("solver", SOLVERS)
def test_travel_reaches_the_enumerated_optimum(tmp_path, solver):
    scenario = load_scenario(write(tmp_path, "travel", solver=solver))
    result = solve(scenario)
    assert check_plan(result.plan) == []
    assert result.plan.kpis["territories"] == 2
    assert result.plan.territories["n_reps"].tolist() == [1, 1]
    assert result.objective == pytest.approx(best_travel(scenario, 2), rel=1e-9)
    # the bound is a lower bound of the plan with these centres, and of the optimum found here
    assert result.bound <= result.objective * (1 + 1e-9)
    assert result.gap == pytest.approx((result.objective - result.bound) / result.objective)


def test_diameter_reaches_the_enumerated_optimum_by_path_length(tmp_path):
    lengths = [1.0, 5.0, 1.0, 1.0, 1.0, 1.0, 2.0, 1.0, 1.0, 3.0]
    scenario = load_scenario(write(tmp_path, "diameter", lengths=lengths))
    result = solve(scenario)
    assert check_plan(result.plan) == []
    optimum = best_diameter(scenario, 2, "length")
    assert result.plan.kpis["max_diameter"] == pytest.approx(optimum)
    assert result.objective == pytest.approx(optimum)
    assert result.bound is None and result.gap is None  # no bound is claimed for diameters
    assert result.plan.territories["diameter"].max() == pytest.approx(optimum)


def test_lp_bound_never_exceeds_the_best_assignment_with_those_centres(tmp_path):
    scenario = load_scenario(write(tmp_path, "travel"))
    result = solve(scenario)
    problem = AlignmentProblem.from_scenario(scenario)
    problem.travel_rate = scenario.units["workload"].to_numpy(float)
    staffing = result.plan.staffing
    bound = alignment_lp_bound(problem, staffing)
    # the best balanced, contiguous assignment to these two centres, by enumeration
    sites = staffing.sites
    pos = scenario.coordinates.points
    w = problem.travel_rate
    best = math.inf
    for parts in partitions(scenario, 2):
        for order in (parts, parts[::-1]):
            if all(sites[t] in order[t] for t in range(2)):
                best = min(best, sum(float((w[p] * np.hypot(*(pos[p] - pos[sites[t]]).T)).sum())
                                     for t, p in enumerate(order)))
    assert bound <= best * (1 + 1e-9)
    assert bound >= 0.5 * best  # and it is not vacuous


def test_cli_solves_a_balance_scenario(tmp_path):
    path = write(tmp_path, "travel")
    result = CliRunner().invoke(main, ["solve", str(path), "--models-dir",
                                       str(tmp_path / "models"), "--json"])
    assert result.exit_code == 0, result.output
    assert '"objective_sense"' in result.output


def test_lengths_are_checked(tmp_path):
    path = write(tmp_path, "diameter", lengths=[1.0, -2.0] + [1.0] * 8)
    with pytest.raises(InputError) as caught:
        load_scenario(path)
    assert caught.value.row == 3 and caught.value.column == "length"
    assert "edges.csv" in str(caught.value)


def test_length_needs_an_edges_table(tmp_path):
    path = write(tmp_path, "diameter", lengths=[1.0] * 10)
    data = yaml.safe_load(path.read_text())
    data["adjacency"]["source"] = "geometry"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(InputError, match="adjacency.length"):
        load_scenario(path)


@pytest.mark.parametrize("change, message", [
    ({"strategy": {"headcount": {"min": 2, "max": 3}}}, "must equal headcount.max"),
    ({"strategy": {"objective": "max_contribution", "target_growth": 0.1}}, "needs strategy.budget"),
])
def test_inconsistent_balance_settings_are_input_errors(tmp_path, change, message):
    path = write(tmp_path, "travel", extra=change)
    with pytest.raises(InputError, match=message):
        load_scenario(path)


def test_more_territories_than_units_is_diagnosed(tmp_path):
    path = write(tmp_path, "travel", territories=9, extra={"strategy": {"headcount":
                                                                         {"min": 9, "max": 9}}})
    with pytest.raises(InfeasibleError) as caught:
        solve(load_scenario(path))
    assert ("9 reps need at least 9 territories of at most 1 reps, but there are only 8 units"
            in caught.value.diagnosis)


def test_the_search_restarts_from_the_lagrangians_centres(tmp_path):
    """A 2 x 5 grid into three territories: the search restarts from the free-centre
    Lagrangian's centres, and the bound it reports lies below the optimum found by enumerating
    every balanced, contiguous partition (the plan itself may stop above it: location-allocation
    ends at centres that are their territories' medians, here 379.09 against 369.70)."""
    rng = np.random.default_rng(4)
    ids = [f"U{k}" for k in range(10)]
    units = pd.DataFrame({"unit_id": ids, "x": [10.0 * (k % 5) for k in range(10)],
                          "y": [10.0 * (k // 5) for k in range(10)],
                          "workload": np.round(rng.uniform(3, 7, 10), 2), "customers": 1.0})
    edges = pd.DataFrame([(ids[r * 5 + c], ids[r * 5 + c + 1]) for r in range(2)
                          for c in range(4)] + [(ids[c], ids[5 + c]) for c in range(5)],
                         columns=["a", "b"])
    path = write_districting(tmp_path, units, edges, territories=3, tolerance=0.25,
                             compactness="travel",
                             settings={"solver": {"time_limit": 4, "seed": 0}})
    scenario = load_scenario(path)
    notes: list[str] = []
    result = solve(scenario, progress=notes.append)
    assert any("from the Lagrangian's centres" in note for note in notes)
    assert check_plan(result.plan) == []
    optimum = best_travel(scenario, 3)
    assert result.objective >= optimum * (1 - 1e-9)
    assert "free centres" in result.binding
    assert 0 < result.bound <= optimum * (1 + 1e-9)
    assert result.gap == pytest.approx((result.objective - result.bound) / result.objective)
