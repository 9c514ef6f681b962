"""Batch wall time: a 12-scenario sweep of the one-state scenario, serial against ``--jobs 2``.

Usage::

    python benchmarks/batch_parallel.py [--scenario scenarios/texas.yaml] [--time-limit 30]
                                        [--jobs 2] [--no-dask] [--keep DIR]

The same sweep (budget x balance tolerance x margin, 12 scenarios) runs three times in this one
command, each into its own fresh models folder: on a local pool of one worker (the serial
baseline), on a pool of ``--jobs`` workers, and on a Dask local cluster of ``--jobs`` single-
threaded workers. It prints the wall time of each, the ratio parallel / serial (target: at most
0.7 on 2 cores), and whether every scenario got the same assignment under all three executors
(same seed, same plan).

The solves count their work rather than wall seconds (``solver.deterministic``), so a busy
machine slows them down without changing their plans; the comparison checks exactly that.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from allocator.batching import run_batch

SWEEP = {
    "strategy.budget": [3.0e6, 3.5e6, 4.0e6],
    "alignment.tolerance": [0.08, 0.10],
    "strategy.margin": [0.55, 0.60],
}


def assignments(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {row.label: pd.read_csv(Path(row.run_folder) / "assignment.csv", dtype=str)
            [["unit_id", "territory_id", "rep_id"]]
            for row in table.itertuples() if row.status != "error"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", default="scenarios/texas.yaml")
    parser.add_argument("--time-limit", type=float, default=30.0,
                        help="seconds per scenario (default 30)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--no-dask", action="store_true", help="skip the Dask local cluster run")
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep run folders and comparisons here (default: a temporary folder)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="batch-bench-") as scratch:
        root = args.keep or Path(scratch)
        runs = [("serial (pool of 1)", dict(jobs=1)),
                (f"pool of {args.jobs}", dict(jobs=args.jobs))]
        if not args.no_dask:
            runs.append((f"Dask local, {args.jobs} workers", dict(dask_local=args.jobs)))
        results = {}
        for position, (name, executor) in enumerate(runs):
            folder = root / f"run{position}"
            started = time.perf_counter()
            outcome = run_batch(args.scenario, sweep=SWEEP, models_dir=folder / "models",
                                out=folder / "out", time_limit=args.time_limit, **executor)
            wall = time.perf_counter() - started
            table = outcome.comparison
            results[name] = (wall, table)
            print(f"{name:28s} {wall:7.1f} s  {len(outcome.solved)} solved, "
                  f"{len(outcome.failed)} failed", flush=True)

        serial_wall, serial = results[runs[0][0]]
        parallel_wall, _ = results[runs[1][0]]
        ratio = parallel_wall / serial_wall
        print(f"\n{len(serial)} scenarios, time limit {args.time_limit:g} s each")
        print(f"ratio {runs[1][0]} / serial: {ratio:.2f} (target <= 0.70: "
              f"{'met' if ratio <= 0.70 else 'NOT met'})")
        for name, (wall, _) in results.items():
            print(f"  {name:28s} {wall / serial_wall:.2f} x serial")

        reference = assignments(serial)
        identical = {label: True for label in reference}
        for name, (_, table) in list(results.items())[1:]:
            other = assignments(table)
            for label, frame in reference.items():
                identical[label] &= label in other and other[label].equals(frame)
        same = sum(identical.values())
        print(f"identical assignments under all {len(results)} executors: {same} of "
              f"{len(serial)} scenarios")
        for label, ok in identical.items():
            if not ok:
                print(f"  differs: {label}")
        summary = serial[["label", "status", "headcount", "contribution", "gap"]].copy()
        for name, (_, table) in list(results.items())[1:]:
            summary[f"contribution ({name})"] = table["contribution"].to_numpy()
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            print(summary.to_string(index=False))
    return 0 if ratio <= 0.70 else 1


if __name__ == "__main__":
    sys.exit(main())
