"""Open-source baselines side by side on seeded lattices: ours, METIS and GerryChain.

Usage (needs the ``bench`` extra: ``pip install -e '.[bench]'``)::

    python benchmarks/baselines.py [--sizes 400,1600,4900] [--tolerances 0.03,0.05,0.10]

Lattices of 20 x 20, 40 x 40 and 70 x 70 units (rook adjacency, lognormal workload) are cut into
10, 20 and 50 territories, at each balance tolerance, by:

- ours: ``strategy.objective: balance`` with ``compactness: travel`` through the ordinary
  scenario interface (20 / 30 / 30 s limits);
- METIS (``pymetis``) with its contiguity option and ``ufactor`` set to the tolerance (the call
  behind commercial "territory balancing"); METIS bounds only the heaviest part;
- GerryChain's recursive spanning-tree partition with ``epsilon`` set to the tolerance, and
  its short-burst optimiser (ReCom bursts of 10 steps, ``--burst-seconds``, 60 by default)
  minimising the same compactness from that partition;
- PySAL ``spopt``: AZP and region k-means (contiguous regions over the coordinates, no balance
  tolerance) and the p-median (``PMedian`` on CBC, workload x distance, neither balance nor
  contiguity). Each runs in a child process stopped after ``--spopt-cap`` seconds; a method too
  slow at a size is skipped with the reason printed.

Every partition is measured the same way (``synthetic.territory_metrics``): workload balance
(smallest and largest territory over the mean), contiguous territories, compactness (sum of
workload x distance to each territory's best central unit) and time. The last columns are the
ratios of our compactness and time to each baseline's, and our gap to two bounds of the
balanced p-median LP with free centres (:mod:`allocator.pmedian_bound`): the one the solver
reports (found in the last tenth of its limit) and the same search given ``--bound-seconds``
more.
"""

from __future__ import annotations

import argparse
import multiprocessing
import queue as queue_module
import sys
import time
import warnings
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
import synthetic  # noqa: E402

# side, territories, our time limit (the search uses all of it: local search, then the
# Lagrangian's restarts)
SIZES = {400: (20, 10, 20.0), 1600: (40, 20, 30.0), 4900: (70, 50, 30.0)}


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


def gerrychain_bursts(units, edges, k, tolerance, seed, seconds=60.0, burst_length=10):
    """GerryChain's short-burst optimiser (``SingleMetricOptimizer.short_bursts``) from its
    recursive tree partition: ReCom steps within the tolerance, every part contiguous, each
    burst restarting from the best plan so far, minimising the compactness measured for every
    method (workload x distance to each part's best central unit), for ``seconds``."""
    from functools import partial

    from gerrychain import Graph, Partition
    from gerrychain.constraints import contiguous, within_percent_of_ideal_population
    from gerrychain.optimization import SingleMetricOptimizer
    from gerrychain.proposals import recom
    from gerrychain.tree import recursive_tree_part
    from gerrychain.updaters import Tally

    graph = nx.Graph()
    for row in units.itertuples():
        graph.add_node(int(row.unit_id), workload=float(row.workload))
    graph.add_edges_from(edges[["a", "b"]].to_numpy().tolist())
    xy = units[["x", "y"]].to_numpy(float)
    w = units["workload"].to_numpy(float)
    part_cost: dict[frozenset, float] = {}  # ReCom redraws two parts a step: cache the rest

    def cost(nodes: frozenset) -> float:
        if nodes not in part_cost:
            members = np.fromiter(nodes, dtype=np.int64)
            d = np.sqrt(((xy[members, None, :] - xy[None, members, :]) ** 2).sum(-1))
            part_cost[nodes] = float((w[members][None, :] * d).sum(axis=1).min())
        return part_cost[nodes]

    def compactness(partition) -> float:
        return sum(cost(frozenset(nodes)) for nodes in partition.parts.values())

    started = time.perf_counter()
    ideal = w.sum() / k
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        chain_graph = Graph.from_networkx(graph)
        start = recursive_tree_part(chain_graph, range(k), ideal, "workload", tolerance,
                                    rng=seed)
        initial = Partition(chain_graph, start, updaters={"workload": Tally("workload")})
        proposal = partial(recom, pop_col="workload", pop_target=ideal, epsilon=tolerance,
                           node_repeats=2)
        balanced = within_percent_of_ideal_population(initial, tolerance, pop_key="workload")
        optimiser = SingleMetricOptimizer(proposal, [balanced, contiguous], initial,
                                          compactness, maximize=False, rng=seed)
        for _ in optimiser.short_bursts(burst_length, 10**9):
            if time.perf_counter() - started > seconds:
                break
        best = optimiser.best_part
    labels = np.array([best.assignment[i] for i in range(len(units))])
    return labels, time.perf_counter() - started


def azp(units, edges, k, tolerance, seed):
    import geopandas as gpd
    from libpysal.weights import W
    from spopt.region import AZP

    frame = gpd.GeoDataFrame(units.copy(), geometry=gpd.points_from_xy(units["x"], units["y"]))
    model = AZP(frame, _weights(units, edges, W), ["x", "y"], n_clusters=k, random_state=seed)
    started = time.perf_counter()
    model.solve()
    return np.asarray(model.labels_), time.perf_counter() - started


def region_kmeans(units, edges, k, tolerance, seed):
    from libpysal.weights import W
    from spopt.region import RegionKMeansHeuristic

    model = RegionKMeansHeuristic(units[["x", "y"]].to_numpy(), k, _weights(units, edges, W),
                                  seed=seed)
    started = time.perf_counter()
    model.solve()
    return np.asarray(model.labels_), time.perf_counter() - started


def pmedian(units, edges, k, tolerance, seed):
    import pulp
    from spopt.locate import PMedian

    xy = units[["x", "y"]].to_numpy(float)
    distance = np.sqrt(((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1))
    started = time.perf_counter()
    model = PMedian.from_cost_matrix(distance, units["workload"].to_numpy(float), k)
    # CBC: through PuLP's HiGHS interface this model came back fractional yet "Optimal"
    model.solve(pulp.PULP_CBC_CMD(msg=False, threads=1))
    assigned = [list(facilities) for facilities in model.cli2fac]
    if any(len(facilities) != 1 for facilities in assigned):
        raise RuntimeError("p-median: a unit assigned to other than one facility")
    return np.array([facilities[0] for facilities in assigned]), time.perf_counter() - started


def _weights(units, edges, W):
    neighbours = {i: [] for i in range(len(units))}
    for a, b in edges[["a", "b"]].to_numpy():
        neighbours[int(a)].append(int(b))
        neighbours[int(b)].append(int(a))
    return W(neighbours, silence_warnings=True)


SPOPT = {"azp": azp, "region_kmeans": region_kmeans, "pmedian": pmedian}
# sizes above which a method is not tried (measured: minutes or memory beyond the cap)
SPOPT_LIMIT = {"azp": 1600, "region_kmeans": 4900, "pmedian": 400}


def _child(method, args, queue):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        queue.put(SPOPT[method](*args))


def capped(method, args, seconds):
    """Run a baseline in a child process; ``None`` and the reason when it passes the cap."""
    context = multiprocessing.get_context("spawn")  # no solver state inherited
    queue = context.Queue()
    process = context.Process(target=_child, args=(method, args, queue))
    process.start()
    try:
        return queue.get(timeout=seconds), ""
    except queue_module.Empty:  # past the cap, or the child failed
        return None, (f"no answer within {seconds:.0f} s" if process.is_alive()
                      else f"failed (exit code {process.exitcode})")
    finally:
        if process.is_alive():
            process.kill()
        process.join()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="400,1600,4900")
    parser.add_argument("--tolerances", default="0.03,0.05,0.10")
    parser.add_argument("--solver", default="cpsat")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--csv", type=Path)
    parser.add_argument("--spopt", default="azp,region_kmeans,pmedian",
                        help="spopt methods to run ('' for none)")
    parser.add_argument("--spopt-cap", type=float, default=240.0)
    parser.add_argument("--burst-seconds", type=float, default=60.0,
                        help="seconds of GerryChain's short-burst optimiser (0: skip)")
    parser.add_argument("--bound-seconds", type=float, default=60.0,
                        help="seconds for the free-centre bound after the solve (0: skip)")
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
            if args.burst_seconds > 0:
                try:
                    found["gerrychain_bursts"] = gerrychain_bursts(
                        units, edges, k, tolerance, args.seed, args.burst_seconds)
                except Exception as err:
                    print(f"  gerrychain short bursts failed: {err}")
            for method in filter(None, args.spopt.split(",")):
                if size > SPOPT_LIMIT[method]:
                    print(f"  spopt {method} skipped at {size} units: above "
                          f"{SPOPT_LIMIT[method]} it takes longer than the cap")
                    continue
                answer, reason = capped(method, (units, edges, k, tolerance, args.seed),
                                        args.spopt_cap)
                if answer is None:
                    print(f"  spopt {method} at {size} units: {reason}")
                else:
                    found[method] = answer
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
            base["gap_in_solve"] = gap
            if args.bound_seconds > 0:
                more = synthetic.free_centre_bound(units, edges, k, tolerance,
                                                   found["ours"][0], base["compactness"],
                                                   args.bound_seconds)
                base["bound"] = more.bound
                base["gap_to_bound"] = (base["compactness"] - more.bound) / base["compactness"]
                print(f"{'':>5}        free-centre bound {more.bound:,.0f} after "
                      f"{more.iterations} steps ({more.seconds:.0f} s, {more.stopped_by}): "
                      f"gap {base['gap_to_bound']:.3%}", flush=True)
            for method, m in measured.items():
                if method != "ours":
                    base[f"compactness_vs_{method}"] = base["compactness"] / m["compactness"]
            ratios = ", ".join(f"ours/{method} {base[f'compactness_vs_{method}']:.3f}"
                               for method in measured if method != "ours")
            print(f"{'':>5}        compactness {ratios}; gap to the bound found in the solve "
                  f"{gap:.3%}", flush=True)
            rows.extend(measured.values())
    table = pd.DataFrame(rows)
    if args.csv:
        table.to_csv(args.csv, index=False)
    ok = table[table["method"] == "ours"]
    ratios = ", ".join(f"{column[len('compactness_vs_'):]} {ok[column].mean():.3f}"
                       for column in ok.columns if column.startswith("compactness_vs_"))
    print(f"\nours within tolerance and contiguous in "
          f"{int((ok['within_tolerance'] & (ok['contiguous'] == ok['territories'])).sum())}"
          f"/{len(ok)} cases; mean compactness ratio ours/baseline: {ratios}")
    if "gap_to_bound" in ok:
        for size, group in ok.groupby("units"):
            print(f"{size} units: gap to the free-centre bound {group['gap_to_bound'].min():.2%}"
                  f" to {group['gap_to_bound'].max():.2%} (in the solve "
                  f"{group['gap_in_solve'].min():.2%} to {group['gap_in_solve'].max():.2%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
