"""Seeded synthetic geography for the benchmarks: a jittered square lattice with rook adjacency
and lognormal workload, written as an ordinary scenario (tables + YAML) into a folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def lattice(side: int, seed: int = 0, jitter: float = 0.0, sigma: float = 0.5,
            width: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Units (``unit_id, x, y, workload``) on a ``side x width`` lattice (square by default),
    each point moved by up to ``jitter / 2`` in each direction, and its rook edges."""
    rng = np.random.default_rng(seed)
    width = width or side
    n = side * width
    rows, cols = np.divmod(np.arange(n), width)
    units = pd.DataFrame({
        "unit_id": np.arange(n),
        "x": cols + jitter * rng.uniform(-0.5, 0.5, n),
        "y": rows + jitter * rng.uniform(-0.5, 0.5, n),
        "workload": np.round(10.0 * rng.lognormal(0.0, sigma, n), 3),
    })
    index = np.arange(n).reshape(side, width)
    edges = np.vstack([np.column_stack([index[:, :-1].ravel(), index[:, 1:].ravel()]),
                       np.column_stack([index[:-1, :].ravel(), index[1:, :].ravel()])])
    return units, pd.DataFrame(edges, columns=["a", "b"])


def write_districting(folder: Path, units: pd.DataFrame, edges: pd.DataFrame, territories: int,
                      tolerance: float, time_limit: float, solver: str = "cpsat",
                      seed: int = 0, measures: tuple[str, ...] = ("workload",),
                      compactness: str = "travel", potential: str = "workload",
                      name: str | None = None) -> Path:
    """The territory-design scenario of ``units`` and ``edges`` with the benchmark's solver
    settings (see :func:`allocator.districting.write_districting_scenario`)."""
    from allocator.districting import write_districting_scenario

    return write_districting_scenario(
        folder, units, edges, territories=territories, tolerance=tolerance, measures=measures,
        compactness=compactness, potential=potential, name=name or f"lattice{len(units)}",
        settings={"solver": {"time_limit": time_limit, "seed": seed, "name": solver}})


def solve_districting(units: pd.DataFrame, edges: pd.DataFrame, territories: int,
                      tolerance: float, time_limit: float, solver: str = "cpsat", seed: int = 0,
                      **options):
    """Solve it through the ordinary interface; the result, each unit's territory label (in
    the order of ``units``) and the wall seconds of loading and solving."""
    import tempfile
    import time
    import warnings

    from allocator.scenario import load_scenario
    from allocator.solve import solve

    with tempfile.TemporaryDirectory() as tmp:
        path = write_districting(Path(tmp), units, edges, territories, tolerance, time_limit,
                                 solver, seed, **options)
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = solve(load_scenario(path))
        elapsed = time.perf_counter() - started
    labels = result.plan.units["territory_id"].astype("category").cat.codes.to_numpy()
    return result, labels, elapsed


def territory_metrics(units: pd.DataFrame, edges: pd.DataFrame, labels: np.ndarray
                      ) -> dict[str, float]:
    """Balance, contiguity and compactness of a partition, the same way for every method.

    Compactness: sum over territories of ``min_c sum_i w_i d(i, c)``, the workload-weighted
    distance to the territory's best central unit (straight-line).
    """
    import networkx as nx

    labels = np.asarray(labels)
    w = units["workload"].to_numpy(float)
    xy = units[["x", "y"]].to_numpy(float)
    parts = np.unique(labels)
    mean = w.sum() / len(parts)
    index = np.array([w[labels == p].sum() / mean for p in parts])
    graph = nx.Graph()
    graph.add_nodes_from(range(len(units)))
    graph.add_edges_from(edges[["a", "b"]].to_numpy().tolist())
    contiguous = sum(nx.is_connected(graph.subgraph(np.flatnonzero(labels == p).tolist()))
                     for p in parts)
    compactness = 0.0
    for p in parts:
        members = np.flatnonzero(labels == p)
        d = np.sqrt(((xy[members, None, :] - xy[None, members, :]) ** 2).sum(-1))
        compactness += float((w[members][None, :] * d).sum(axis=1).min())
    return {"territories": len(parts), "balance_min": float(index.min()),
            "balance_max": float(index.max()), "contiguous": int(contiguous),
            "compactness": compactness}


def free_centre_bound(units: pd.DataFrame, edges: pd.DataFrame, territories: int,
                      tolerance: float, labels: np.ndarray, objective: float, seconds: float):
    """The bound of :mod:`allocator.pmedian_bound` (balanced p-median LP, free centres) for
    this geography, started from a plan's travel (``labels``, value ``objective``) and given
    ``seconds`` of wall time: the same bound the solver reports, with more time than its last
    tenth of the limit."""
    import dataclasses
    import tempfile
    import warnings

    from allocator import clock
    from allocator.alignment import AlignmentProblem
    from allocator.pmedian_bound import pmedian_lp_bound
    from allocator.scenario import load_scenario

    with tempfile.TemporaryDirectory() as tmp:
        path = write_districting(Path(tmp), units, edges, territories, tolerance, seconds)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scenario = load_scenario(path)
    problem = AlignmentProblem.from_scenario(scenario)
    problem = dataclasses.replace(problem, travel_rate=scenario.units["workload"].to_numpy(float))
    alpha = np.zeros(problem.n)
    for part in np.unique(labels):
        members = np.flatnonzero(labels == part)
        travel = problem.cost(members[None, :], members[:, None])  # row: from a centre
        alpha[members] = travel[int(np.argmin(travel.sum(axis=1)))]
    return pmedian_lp_bound(problem, territories, objective, clock.now() + seconds, alpha=alpha,
                            max_pairs=10**12)
