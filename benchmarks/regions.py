"""Planning scenarios between Texas and the nation: the nine Census divisions of the demo.

Usage::

    python benchmarks/regions.py [--time-limit 60] [--only "West South Central,Mountain"]

Each division is cut out of the embedded default scenario (``scenarios/us_counties.yaml``) into
a temporary folder, nothing written into the repository: its counties (with their polygons, so
the adjacency is the real one), the existing reps based there, its hire sites, and the national
budget and head-count range scaled by the division's share of the workload. Each is solved in
turn with the default solver settings and printed: counties, whether the whole model fits the
solver (``exact_max_pairs``: branching on heavy units then tightens the bound), head count,
objective, bound, gap, wall time. The last line names the largest division solved to a gap of
1 % or less.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "scenarios" / "us_counties.yaml"

# US Census Bureau divisions (contiguous states and DC)
DIVISIONS = {
    "New England": ["CT", "ME", "MA", "NH", "RI", "VT"],
    "Middle Atlantic": ["NJ", "NY", "PA"],
    "East North Central": ["IL", "IN", "MI", "OH", "WI"],
    "West North Central": ["IA", "KS", "MN", "MO", "NE", "ND", "SD"],
    "South Atlantic": ["DE", "DC", "FL", "GA", "MD", "NC", "SC", "VA", "WV"],
    "East South Central": ["AL", "KY", "MS", "TN"],
    "West South Central": ["AR", "LA", "OK", "TX"],
    "Mountain": ["AZ", "CO", "ID", "MT", "NV", "NM", "UT", "WY"],
    "Pacific": ["CA", "OR", "WA"],
}


def read_national() -> dict:
    """The demo scenario's settings and tables, read once for every division."""
    settings = yaml.safe_load(SCENARIO.read_text(encoding="utf-8"))
    base = SCENARIO.parent
    geometry = settings["units"]["geometry"]
    return dict(
        settings=settings,
        units=pd.read_csv(base / settings["units"]["table"], dtype={"unit_id": str}),
        reps=pd.read_csv(base / settings["reps"]["table"], dtype={"home_unit": str}),
        sites=pd.read_csv(base / settings["hiring"]["sites"]["table"], dtype={"unit_id": str}),
        shapes=gpd.read_file(base / geometry["file"], layer=geometry["layer"]))


def write_division(national: dict, name: str, states: list[str], folder: Path,
                   time_limit: float) -> Path:
    """The division's scenario in ``folder``; returns its YAML path."""
    settings = copy.deepcopy(national["settings"])
    units, reps, sites, shapes = (national[k] for k in ("units", "reps", "sites", "shapes"))
    geometry = settings["units"]["geometry"]
    mine = units[units["state"].isin(states)]
    ids = set(mine["unit_id"])
    share = float(mine["workload"].sum() / units["workload"].sum())
    mine.to_csv(folder / "units.csv", index=False)
    reps[reps["home_unit"].isin(ids)].to_csv(folder / "reps.csv", index=False)
    sites[sites["unit_id"].isin(ids)].to_csv(folder / "hire_sites.csv", index=False)
    shapes[shapes[geometry["id"]].astype(str).isin(ids)].to_file(
        folder / "counties.gpkg", layer=geometry["layer"], driver="GPKG")
    settings["name"] = name.lower().replace(" ", "_")
    settings["description"] = f"{name} (Census division), cut out of us_counties"
    settings["units"]["table"] = "units.csv"
    settings["units"]["geometry"]["file"] = "counties.gpkg"
    settings["reps"]["table"] = "reps.csv"
    settings["hiring"]["sites"]["table"] = "hire_sites.csv"
    strategy = settings["strategy"]
    strategy["budget"] = round(strategy["budget"] * share, -3)
    strategy["headcount"] = {"min": max(1, math.floor(strategy["headcount"]["min"] * share)),
                             "max": max(2, math.ceil(strategy["headcount"]["max"] * share))}
    settings["solver"]["time_limit"] = time_limit
    # one thread, as measured: every division fits the whole model, where a second thread would
    # only be a second CP-SAT worker (whose race makes the plan depend on the machine's load)
    settings["solver"]["threads"] = 1
    path = folder / f"{settings['name']}.yaml"
    path.write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--only", default="", help="comma-separated division names")
    args = parser.parse_args()

    from allocator import load_scenario
    from allocator.alignment import AlignmentProblem
    from allocator.checker import check_plan
    from allocator.exceptions import AllocatorError
    from allocator.solve import solve, whole_model_fits

    national = read_national()
    chosen = [d.strip() for d in args.only.split(",") if d.strip()] or list(DIVISIONS)
    rows, failed = [], []
    for name in chosen:
        with tempfile.TemporaryDirectory() as tmp:
            path = write_division(national, name, DIVISIONS[name], Path(tmp), args.time_limit)
            scenario = load_scenario(path)
            small = whole_model_fits(AlignmentProblem.from_scenario(scenario))
            started = time.perf_counter()
            try:
                result = solve(scenario)
            except AllocatorError as error:
                print(f"{name:20s} {scenario.n_units:5d} counties  no plan: {error}", flush=True)
                failed.append(name)
                continue
            wall = time.perf_counter() - started
        problems = check_plan(result.plan)
        row = dict(division=name, units=scenario.n_units, small=small,
                   headcount=result.plan.kpis["headcount"], objective=result.objective,
                   bound=result.bound, gap=result.gap, wall=wall, checked=not problems)
        rows.append(row)
        print(f"{name:20s} {row['units']:5d} counties  {'whole model' if small else 'large map'}"
              f"  {row['headcount']:3d} reps  objective {row['objective']:14,.0f}  bound "
              f"{row['bound']:14,.0f}  gap {row['gap']:6.2%}  {wall:5.1f} s  "
              f"{result.termination}  checker {'ok' if not problems else problems[:2]}",
              flush=True)
    within = [r for r in rows if r["gap"] <= 0.01 and r["checked"]]
    if within:
        top = max(within, key=lambda r: r["units"])
        print(f"largest solved to a gap of 1 % or less: {top['division']} ({top['units']} "
              f"counties, {top['gap']:.2%}, {top['wall']:.0f} s wall)")
    else:
        print("no division solved to a gap of 1 % or less")
    sys.exit(0 if not failed and all(r["checked"] for r in rows) else 1)


if __name__ == "__main__":
    main()
