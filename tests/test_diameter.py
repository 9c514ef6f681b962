"""The min-max diameter search on a small lattice with path lengths.

Its contiguity shortcut is compared with networkx on every unit of random partitions, and a
search from a balanced start must end balanced, contiguous, no wider than it began, with the
same plan from the same seed.
"""

from __future__ import annotations

import dataclasses

import networkx as nx
import numpy as np
import pandas as pd
import pytest
from conftest import write_districting

from allocator import clock
from allocator.alignment import AlignmentProblem, Staffing, balance_violation
from allocator.diameter import DiameterSearch, diameters, unit_distances
from allocator.scenario import load_scenario

ROWS, COLS, TERRITORIES = 8, 8, 4


@pytest.fixture(scope="module")
def lattice(tmp_path_factory):
    """An 8 x 8 rook lattice with random edge lengths and two workloads, 4 territories +-10 %."""
    folder = tmp_path_factory.mktemp("lattice")
    rng = np.random.default_rng(3)
    ids = [f"U{k}" for k in range(ROWS * COLS)]
    units = pd.DataFrame({"unit_id": ids, "x": [float(k % COLS) for k in range(ROWS * COLS)],
                          "y": [float(k // COLS) for k in range(ROWS * COLS)],
                          "workload": rng.integers(5, 15, ROWS * COLS),
                          "customers": rng.integers(1, 6, ROWS * COLS)})
    edges = [(r * COLS + c, r * COLS + c + 1) for r in range(ROWS) for c in range(COLS - 1)]
    edges += [(r * COLS + c, (r + 1) * COLS + c) for r in range(ROWS - 1) for c in range(COLS)]
    lengths = pd.DataFrame({"a": [ids[a] for a, _ in edges], "b": [ids[b] for _, b in edges],
                            "length": rng.uniform(0.5, 1.5, len(edges))})
    write_districting(folder, units, lengths, territories=TERRITORIES, tolerance=0.1,
                      compactness="diameter", name="lattice")
    scenario = load_scenario(folder / "scenario.yaml")
    graph = nx.Graph(edges)
    return scenario, graph


def quadrants() -> np.ndarray:
    """Four 4 x 4 blocks: contiguous, and a start that is usually out of balance."""
    cells = np.arange(ROWS * COLS)
    return (cells // COLS >= ROWS // 2) * 2 + (cells % COLS >= COLS // 2)


def search_from(scenario, assignment: np.ndarray, seed: int) -> DiameterSearch:
    problem = dataclasses.replace(AlignmentProblem.from_scenario(scenario))
    sites = np.array([int(np.flatnonzero(assignment == t)[0]) for t in range(TERRITORIES)])
    staffing = Staffing(sites, [[] for _ in range(TERRITORIES)],
                        np.ones(TERRITORIES, dtype=np.int64))
    return DiameterSearch(problem, staffing, assignment, unit_distances(scenario),
                          np.random.default_rng(seed))


def test_contiguity_shortcut_agrees_with_networkx(lattice):
    scenario, graph = lattice
    rng = np.random.default_rng(7)
    for _ in range(5):
        # a random contiguous partition: grow territories from random seeds
        assignment = np.full(ROWS * COLS, -1)
        frontier = list(rng.choice(ROWS * COLS, TERRITORIES, replace=False))
        for t, unit in enumerate(frontier):
            assignment[unit] = t
        while (assignment < 0).any():
            unit = int(rng.choice(np.flatnonzero(assignment >= 0)))
            free = [v for v in graph[unit] if assignment[v] < 0]
            if free:
                assignment[free[int(rng.integers(len(free)))]] = assignment[unit]
        search = search_from(scenario, assignment, 0)
        for unit in range(ROWS * COLS):
            t = int(assignment[unit])
            rest = [v for v in np.flatnonzero(assignment == t) if v != unit]
            expected = len(rest) > 0 and nx.is_connected(graph.subgraph(rest))
            assert search._connected_without(t, unit) == expected, (unit, t)


def test_search_ends_balanced_contiguous_and_no_wider(lattice):
    scenario, graph = lattice
    start = quadrants()
    plans = []
    for _ in range(2):
        search = search_from(scenario, start, seed=11)
        before = diameters(search.dist, start, TERRITORIES).max()
        with clock.running(clock.SearchClock(True, 1.0)):
            staffing, assignment = search.run(0.2)
        plans.append(assignment.copy())
        assert balance_violation(search.problem, staffing, assignment) <= 1e-9
        for t in range(TERRITORIES):
            members = np.flatnonzero(assignment == t)
            assert staffing.sites[t] in members
            assert nx.is_connected(graph.subgraph(members.tolist()))
        # the quadrants may be out of balance; then any balanced plan is the first found
        if balance_violation(search.problem, staffing, start) <= 1e-9:
            assert diameters(search.dist, assignment, TERRITORIES).max() <= before + 1e-9
        assert search.max_diameter() == pytest.approx(
            diameters(search.dist, assignment, TERRITORIES).max())
    np.testing.assert_array_equal(plans[0], plans[1])  # same seed, same plan
