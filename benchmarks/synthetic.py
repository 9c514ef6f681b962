"""Seeded synthetic geography for the benchmarks: a jittered square lattice with rook adjacency
and lognormal workload, written as an ordinary scenario (tables + YAML) into a folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml


def lattice(side: int, seed: int = 0, jitter: float = 0.0, sigma: float = 0.5
            ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Units (``unit_id, x, y, workload``) on a ``side x side`` lattice and its rook edges."""
    rng = np.random.default_rng(seed)
    rows, cols = np.divmod(np.arange(side * side), side)
    units = pd.DataFrame({
        "unit_id": np.arange(side * side),
        "x": cols + jitter * rng.uniform(-0.5, 0.5, side * side),
        "y": rows + jitter * rng.uniform(-0.5, 0.5, side * side),
        "workload": np.round(10.0 * rng.lognormal(0.0, sigma, side * side), 3),
    })
    index = np.arange(side * side).reshape(side, side)
    edges = np.vstack([np.column_stack([index[:, :-1].ravel(), index[:, 1:].ravel()]),
                       np.column_stack([index[:-1, :].ravel(), index[1:, :].ravel()])])
    return units, pd.DataFrame(edges, columns=["a", "b"])


def write_districting(folder: Path, units: pd.DataFrame, edges: pd.DataFrame, territories: int,
                      tolerance: float, time_limit: float, solver: str = "cpsat",
                      seed: int = 0) -> Path:
    """A scenario asking for ``territories`` balanced, contiguous, compact territories (every
    unit a possible centre), minimising workload x distance to the centre."""
    folder.mkdir(parents=True, exist_ok=True)
    table = units.assign(potential=units["workload"], last_year_sales=units["workload"])
    table.to_csv(folder / "units.csv", index=False)
    edges.to_csv(folder / "edges.csv", index=False)
    pd.DataFrame({"unit_id": units["unit_id"], "max_hires": 1}).to_csv(folder / "sites.csv",
                                                                       index=False)
    settings = {
        "name": f"lattice{len(units)}",
        "units": {"table": "units.csv", "x": "x", "y": "y", "lon": None, "lat": None,
                  "coordinates": "planar"},
        "adjacency": {"source": "edges", "edges": "edges.csv", "islands": "error"},
        "hiring": {"sites": {"table": "sites.csv"}},
        "strategy": {"objective": "balance",
                     "headcount": {"min": territories, "max": territories}},
        "alignment": {"balance": [{"measure": "workload", "tolerance": tolerance}],
                      "contiguity": True, "compactness": "travel",
                      "max_reps_per_territory": 1},
        "solver": {"time_limit": time_limit, "seed": seed, "name": solver},
    }
    path = folder / "scenario.yaml"
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    return path
