"""Delivery territory design (DTDP) group-1 instances against their published results.

Usage::

    python benchmarks/dtdp.py PATH/TO/dtdp [--time-limit 60] [--only planar500_G0,...]

``PATH/TO/dtdp`` holds ``group1/*.graphml`` and ``published/`` (the VNS of Aly et al. 2024 and
the LNS of Pereira & Vila). The problem: 10 territories; each of the three activities
(``n_customers``, ``demand``, ``workload``) of every territory within +-5 % of its mean; every
territory connected; minimise the largest territory diameter (largest shortest-path distance by
``distance`` over the whole graph between two units of a territory).

Each instance goes through the engine's ordinary interface: a scenario file (units, edges with
lengths, every unit a possible centre; ``synthetic.write_districting``) written to a temporary
folder, loaded and solved with
``strategy.objective: balance`` and ``alignment.compactness: diameter``. The plan is then
re-checked here, independently of the engine (networkx shortest paths, balance from the graph's
own attributes). Instances are read from where they are; nothing is copied.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
import synthetic  # noqa: E402

from allocator.exceptions import AllocatorError  # noqa: E402

ACTIVITIES = ("workload", "n_customers", "demand")
TOLERANCE = 0.05
TERRITORIES = 10


def graph_tables(graph: nx.Graph) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The instance's units (position and the three activities) and edges with their length."""
    nodes = sorted(graph.nodes, key=int)
    units = pd.DataFrame({
        "unit_id": nodes,
        "x": [graph.nodes[v]["x"] for v in nodes],
        "y": [graph.nodes[v]["y"] for v in nodes],
        **{a: [graph.nodes[v][a] for v in nodes] for a in ACTIVITIES},
    })
    edges = pd.DataFrame([(a, b, d["distance"]) for a, b, d in graph.edges(data=True)],
                         columns=["a", "b", "length"])
    return units, edges


def recheck(graph: nx.Graph, assignment: dict[str, str]) -> tuple[bool, float, list[str]]:
    """Feasibility and objective from the graph alone."""
    problems = []
    territories: dict[str, list[str]] = {}
    for unit, territory in assignment.items():
        territories.setdefault(territory, []).append(unit)
    if len(territories) != TERRITORIES or set(assignment) != set(graph.nodes):
        problems.append("wrong number of territories or units")
    for a in ACTIVITIES:
        total = sum(graph.nodes[v][a] for v in graph.nodes)
        mean = total / TERRITORIES
        for t, members in territories.items():
            load = sum(graph.nodes[v][a] for v in members)
            if abs(load - mean) > TOLERANCE * mean + 1e-9:
                problems.append(f"{t}: {a} {load} outside +-5% of {mean:.1f}")
    for t, members in territories.items():
        if not nx.is_connected(graph.subgraph(members)):
            problems.append(f"{t} not connected")
    lengths = dict(nx.all_pairs_dijkstra_path_length(graph, weight="distance"))
    diameter = max(max(lengths[u][v] for u in members for v in members)
                   for members in territories.values())
    return not problems, float(diameter), problems


def published(folder: Path) -> pd.DataFrame:
    rows = []
    for line in (folder / "lns.results.txt").read_text().splitlines():
        match = re.search(r"group1/(\S+)\.txt .* t (\d+) obj: ([\d.]+) penalty: ([\d.]+)", line)
        if match and float(match.group(4)) == 0:
            rows.append(dict(instance=match.group(1), source=f"lns{match.group(2)}",
                             objective=float(match.group(3))))
    for level in ("low", "medium", "high"):
        for line in (folder / f"vns.{level}.results.txt").read_text().splitlines():
            match = re.search(r"(planar\S+)\.graphml Best objective: ([\d.]+) Infeasibility: "
                              r"([\d.e-]+)", line)
            if match and float(match.group(3)) == 0:
                rows.append(dict(instance=match.group(1), source="vns",
                                 objective=float(match.group(2))))
    frame = pd.DataFrame(rows)
    return frame.groupby(["instance", "source"])["objective"].min().unstack()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="folder with group1/ and published/")
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--solver", default="cpsat")
    parser.add_argument("--only", default="", help="comma-separated instance names")
    parser.add_argument("--csv", type=Path, help="also write the table here")
    args = parser.parse_args()
    reference = published(args.folder / "published")
    files = sorted((args.folder / "group1").glob("*.graphml"))
    if args.only:
        files = [f for f in files if f.stem in args.only.split(",")]
    rows = []
    for file in files:
        graph = nx.read_graphml(file)
        units, edges = graph_tables(graph)
        started, cpu_started = time.perf_counter(), time.process_time()
        try:
            result, _, elapsed = synthetic.solve_districting(
                units, edges, TERRITORIES, TOLERANCE, args.time_limit, args.solver, args.seed,
                measures=ACTIVITIES, compactness="diameter", potential="demand", name="dtdp")
        except AllocatorError as err:  # recorded, and the other instances go on
            result, elapsed = None, time.perf_counter() - started
            problems = [str(err)]
        cpu = time.process_time() - cpu_started  # of loading and solving; the check comes after
        if result is not None:
            units = result.plan.units
            feasible, diameter, problems = recheck(
                graph, dict(zip(units["unit_id"].astype(str), units["territory_id"])))
        else:
            feasible, diameter = False, float("nan")
        ref = reference.loc[file.stem] if file.stem in reference.index else pd.Series(dtype=float)
        row = dict(instance=file.stem, feasible=feasible, objective=round(diameter, 3),
                   lns60=ref.get("lns60"), lns600=ref.get("lns600"), vns=ref.get("vns"),
                   time_s=round(elapsed, 1),
                   # CPU seconds: the wall time of a quiet machine, when the machine is shared
                   cpu_s=round(cpu, 1),
                   termination=result.termination if result is not None else "error")
        row["ratio_lns60"] = diameter / row["lns60"] if row["lns60"] else np.nan
        row["ratio_lns600"] = diameter / row["lns600"] if row["lns600"] else np.nan
        row["ratio_vns"] = diameter / row["vns"] if row["vns"] else np.nan
        rows.append(row)
        print(f"{file.stem:14s} feasible={feasible!s:5s} diameter {diameter:7.3f}  "
              f"LNS60 {row['lns60']}  LNS600 {row['lns600']}  VNS {row['vns']}  "
              f"ratio/LNS60 {row['ratio_lns60']:.3f}  {elapsed:5.1f} s ({row['cpu_s']} s CPU, "
              f"{row['termination']})"
              + (f"  {problems[:2]}" if problems else ""), flush=True)
    table = pd.DataFrame(rows)
    print()
    print(f"instances {len(table)}, feasible {int(table['feasible'].sum())}")
    for column in ("ratio_lns60", "ratio_lns600", "ratio_vns", "time_s", "cpu_s"):
        print(f"mean {column}: {table[column].mean():.4f}")
    if args.csv:
        table.to_csv(args.csv, index=False)
    return 0 if table["feasible"].all() else 1


if __name__ == "__main__":
    sys.exit(main())
