"""Open-source baselines side by side on seeded lattices: ours, METIS and GerryChain.

Usage (needs the ``bench`` extra: ``pip install -e '.[bench]'``)::

    python benchmarks/baselines.py [--sizes 400,1600,4900] [--tolerances 0.03,0.05,0.10]

Lattices of 20 x 20, 40 x 40 and 70 x 70 units (rook adjacency, lognormal workload) are cut into
10, 20 and 50 territories, at each balance tolerance, by:

- ours: ``strategy.objective: balance`` with ``compactness: travel`` through the ordinary
  scenario interface (10 / 20 / 30 s limits);
- METIS (``pymetis``) with its contiguity option and ``ufactor`` set to the tolerance (the call
  behind commercial "territory balancing"); METIS bounds only the heaviest part;
- GerryChain's recursive spanning-tree partition with ``epsilon`` set to the tolerance.

Every partition is measured the same way (``synthetic.territory_metrics``): workload balance
(smallest and largest territory over the mean), contiguous territories, compactness (sum of
workload x distance to each territory's best central unit) and time. The last columns are the
ratios of our compactness and time to each baseline's, and our gap to the LP bound of the
alignment with our centres.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
import synthetic  # noqa: E402

SIZES = {400: (20, 10, 10.0), 1600: (40, 20, 20.0), 4900: (70, 50, 30.0)}


def ours(units, edges, k, tolerance, limit, solver, seed):
    result, labels, elapsed = synthetic.solve_districting(units, edges, k, tolerance, limit,
                                                          solver, seed)
    return labels, elapsed, result.gap


def metis(units, edges, k, tolerance, seed):
    import pymetis

    n = len(units)
    adjacency = [[] for _ in range(n)]
    for a, b in edges[["a", "b"]].to_numpy():
        adjacency[a].append(int(b))
        adjacency[b].append(int(a))
    options = pymetis.Options(ufactor=max(1, int(round(tolerance * 1000))), seed=seed, contig=1)
    weights = np.round(units["workload"].to_numpy() * 1000).astype(int).tolist()
    started = time.perf_counter()
    _, labels = pymetis.part_graph(k, adjacency=adjacency, vweights=weights, options=options)
    return np.asarray(labels), time.perf_counter() - started


def gerrychain(units, edges, k, tolerance, seed):
    from gerrychain import Graph
    from gerrychain.tree import recursive_tree_part

    graph = nx.Graph()
    for row in units.itertuples():
        graph.add_node(int(row.unit_id), workload=float(row.workload))
    graph.add_edges_from(edges[["a", "b"]].to_numpy().tolist())
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        chain_graph = Graph.from_networkx(graph)
        plan = recursive_tree_part(chain_graph, range(k), units["workload"].sum() / k,
                                   "workload", tolerance, rng=seed)
    labels = np.array([plan[i] for i in range(len(units))])
    return labels, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="400,1600,4900")
    parser.add_argument("--tolerances", default="0.03,0.05,0.10")
    parser.add_argument("--solver", default="cpsat")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--csv", type=Path)
    args = parser.parse_args()
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        side, k, limit = SIZES[size]
        units, edges = synthetic.lattice(side, seed=args.seed)
        for tolerance in (float(t) for t in args.tolerances.split(",")):
            found = {}
            labels, elapsed, gap = ours(units, edges, k, tolerance, limit, args.solver, args.seed)
            found["ours"] = (labels, elapsed)
            found["metis"] = metis(units, edges, k, tolerance, args.seed)
            try:
                found["gerrychain"] = gerrychain(units, edges, k, tolerance, args.seed)
            except Exception as err:  # a baseline's failure is a result, not a crash
                print(f"  gerrychain failed: {err}")
            measured = {}
            for method, (labels, elapsed) in found.items():
                m = synthetic.territory_metrics(units, edges, labels)
                m.update(method=method, units=size, k=k, tolerance=tolerance,
                         time_s=round(elapsed, 3),
                         within_tolerance=bool(m["balance_min"] >= 1 - tolerance - 1e-9
                                               and m["balance_max"] <= 1 + tolerance + 1e-9))
                measured[method] = m
                print(f"{size:>5} units x {k:>2}, +-{tolerance:.0%} {method:10s}: balance "
                      f"{m['balance_min']:.3f}-{m['balance_max']:.3f} "
                      f"(within: {m['within_tolerance']}), contiguous {m['contiguous']}/"
                      f"{m['territories']}, compactness {m['compactness']:,.0f}, "
                      f"{elapsed:.3f} s", flush=True)
            base = measured["ours"]
            base["gap_to_lp"] = gap
            for method, m in measured.items():
                if method != "ours":
                    base[f"compactness_vs_{method}"] = base["compactness"] / m["compactness"]
            print(f"{'':>5}        ours/METIS compactness "
                  f"{base.get('compactness_vs_metis', np.nan):.3f}, ours/GerryChain "
                  f"{base.get('compactness_vs_gerrychain', np.nan):.3f}, our gap to LP bound "
                  f"{gap:.3%}", flush=True)
            rows.extend(measured.values())
    table = pd.DataFrame(rows)
    if args.csv:
        table.to_csv(args.csv, index=False)
    ok = table[table["method"] == "ours"]
    print(f"\nours within tolerance and contiguous in {int((ok['within_tolerance'] & (ok['contiguous'] == ok['territories'])).sum())}"
          f"/{len(ok)} cases; mean compactness ratio to METIS "
          f"{ok['compactness_vs_metis'].mean():.3f}, to GerryChain "
          f"{ok.get('compactness_vs_gerrychain', pd.Series(dtype=float)).mean():.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
