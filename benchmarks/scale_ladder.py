"""Scale ladder: balanced, contiguous, compact territories on seeded lattices up to ZIP scale.

Usage::

    python benchmarks/scale_ladder.py [--sizes 1000,10000,40000] [--solver cpsat]

Each size runs in its own child process (so that its peak memory is its own): a jittered
lattice with lognormal workload (``benchmarks/synthetic.py``), +-5 % workload balance, every
territory contiguous, minimising workload x distance to the territory centre. Printed per size:
wall time, peak resident memory, the plan's balance and contiguity (re-checked here with
networkx), compactness, and the gap to the bound the solver reports: the balanced p-median LP
with free centres (``allocator.pmedian_bound``, found within the limit), or, above its size
cap (about 2,500 units at 20 territories), the LP of the alignment with the plan's centres,
which bounds that plan's centres only; the line says which.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

# side, width, territories, time limit; at 40,000 units the wall ran 1.5 x the counted work
# (355 s for 240), so its limit is 180 s to stay within 5 minutes (264 s measured)
LADDER = {1000: (40, 25, 20, 30.0), 10000: (100, 100, 100, 60.0),
          40000: (200, 200, 500, 180.0)}


def child(units_count: int, solver: str, time_limit: float | None) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    import synthetic

    side, width, territories, limit = LADDER[units_count]
    units, edges = synthetic.lattice(side, width=width, jitter=0.3)
    result, labels, elapsed = synthetic.solve_districting(units, edges, territories, 0.05,
                                                          time_limit or limit, solver)
    metrics = synthetic.territory_metrics(units, edges, labels)
    print(json.dumps({
        "units": len(units), "territories": territories, "solver": solver,
        "time_limit_s": time_limit or limit, "wall_s": round(elapsed, 1),
        "peak_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "objective": result.objective, "bound": result.bound, "gap": result.gap,
        "bound_kind": result.binding.split("; bound: ")[-1],
        **metrics}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,40000")
    parser.add_argument("--solver", default="cpsat", help="comma-separated: cpsat,highs,cbc")
    parser.add_argument("--time-limit", type=float, help="override the ladder's limits")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.solver, args.time_limit)
        return 0
    rows = []
    for solver in args.solver.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            command = [sys.executable, __file__, "--child", str(size), "--solver", solver]
            if args.time_limit:
                command += ["--time-limit", str(args.time_limit)]
            out = subprocess.run(command, capture_output=True, text=True)
            if out.returncode != 0:
                print(f"{size} units, {solver}: failed\n{out.stderr[-2000:]}", flush=True)
                continue
            row = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"{row['units']:>6} units x {row['territories']:>3} ({solver}): "
                  f"{row['wall_s']:6.1f} s (limit {row['time_limit_s']:.0f}), "
                  f"{row['peak_mib']:5d} MiB, balance {row['balance_min']:.3f}-"
                  f"{row['balance_max']:.3f}, contiguous {row['contiguous']}/"
                  f"{row['territories']}, compactness {row['objective']:,.0f}, "
                  f"gap {row['gap']:.3%} to the {row['bound_kind']}", flush=True)
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
