"""Run folders: ``models/<scenario>/<run-id>/``, written atomically and never over an earlier run.

Everything is written into a hidden temporary sibling folder first; the folder is renamed into
place only when complete. A crash or a kill leaves at most a ``.tmp-*`` folder, which readers
ignore, and never a partial run folder.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from allocator.solve import SolveResult

RUN_FILES = ("result.json", "assignment.csv", "territories.csv", "headcount.csv", "quotas.csv",
             "model.mps", "map.png")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("territory-allocator", "ortools", "highspy", "pulp", "pandas", "geopandas",
                 "numpy", "shapely"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def new_run_id(result: SolveResult) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"{stamp}-{result.plan.scenario.sha256[:8]}-s{result.seed}"


def result_record(result: SolveResult, run_id: str) -> dict[str, Any]:
    plan = result.plan
    scenario = plan.scenario
    return {
        "run_id": run_id,
        "scenario": scenario.name,
        "scenario_file": scenario.source,
        "scenario_sha256": scenario.sha256,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "status": result.status,
        "termination": result.termination,
        "objective_sense": "max contribution" if scenario.settings.strategy.objective ==
        "max_contribution" else "max of minus cost",
        "objective": result.objective,
        "bound": result.bound,
        "gap": result.gap,
        "runtime_s": round(result.runtime_s, 3),
        "solver": result.solver,
        "seed": result.seed,
        "threads": scenario.settings.solver.threads,
        "time_limit_s": scenario.settings.solver.time_limit,
        "gap_limit": scenario.settings.solver.gap,
        "binding": result.binding,
        "kpis": _plain(plan.kpis),
        "costs": _plain(plan.costs),
        "sizing": _plain(result.sizing.replace({np.nan: None}).to_dict(orient="records")),
        "versions": versions(),
        "log": result.log,
    }


def write_run(result: SolveResult, models_dir: str | Path, model_writer=None) -> Path:
    """Write the run folder and return its path. ``model_writer(path)`` writes ``model.mps``."""
    from allocator.maps import write_map, write_territory_polygons

    plan = result.plan
    base = Path(models_dir) / plan.scenario.name
    base.mkdir(parents=True, exist_ok=True)
    run_id = new_run_id(result)
    tmp = base / f".tmp-{run_id}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        plan.units.to_csv(tmp / "assignment.csv", index=False)
        plan.territories.to_csv(tmp / "territories.csv", index=False)
        headcount_table(plan).to_csv(tmp / "headcount.csv", index=False)
        plan.quotas.to_csv(tmp / "quotas.csv", index=False)
        write_rep_plans(plan, tmp / "rep_plans")
        if model_writer is not None:
            model_writer(tmp / "model.mps")
        write_territory_polygons(plan, tmp / "territories.gpkg")
        write_map(plan, tmp / "map.png")
        final, run_id = _free_name(base, run_id)
        record = result_record(result, run_id)
        (tmp / "result.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        _fsync_tree(tmp)
        os.rename(tmp, final)  # atomic on one file system; fails rather than overwrite
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _free_name(base: Path, run_id: str) -> tuple[Path, str]:
    candidate, k = run_id, 1
    while (base / candidate).exists():
        k += 1
        candidate = f"{run_id}-{k}"
    return base / candidate, candidate


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())


def headcount_table(plan) -> Any:
    """Kept reps, hires and released reps, with cost, hours, expected sales and quota."""
    import pandas as pd

    reps = plan.reps[["rep_id", "name", "kind", "territory_id", "home_unit", "start_month",
                      "hours", "cost", "expected_sales", "quota", "attainability"]].copy()
    reps = reps.rename(columns={"hours": "effective_hours", "cost": "plan_year_cost"})
    scenario = plan.scenario
    kept = set(reps["rep_id"])
    released = scenario.reps[~scenario.reps["rep_id"].isin(kept)]
    if len(released):
        unit_ids = scenario.units["unit_id"].to_numpy()
        release_cost = scenario.settings.reps.release_cost if scenario.settings.reps else 0.0
        extra = pd.DataFrame({"rep_id": released["rep_id"], "name": released["name"],
                              "kind": "released", "territory_id": "",
                              "home_unit": unit_ids[released["home"]], "start_month": 0,
                              "effective_hours": 0.0, "plan_year_cost": release_cost,
                              "expected_sales": 0.0, "quota": 0.0, "attainability": np.nan})
        reps = pd.concat([reps, extra], ignore_index=True)
    return reps


def write_rep_plans(plan, folder: Path) -> None:
    """One personal plan per rep: territory, units with effort hours, monthly targets."""
    folder.mkdir()
    units = plan.units
    months = plan.quotas.set_index("rep_id")
    for rep in plan.reps.itertuples():
        members = units[units["territory_id"] == rep.territory_id]
        share = rep.hours / plan.reps.loc[plan.reps["territory"] == rep.territory, "hours"].sum()
        q = months.loc[rep.rep_id]
        lines = [
            f"# Personal plan: {rep.rep_id} ({rep.name})",
            "",
            f"- Territory: {rep.territory_id}, based at unit {rep.home_unit}",
            f"- Kind: {rep.kind}; starts in month {rep.start_month}",
            f"- Effective selling hours: {rep.hours:,.0f} ({share:.0%} of the territory's)",
            f"- Expected sales: {rep.expected_sales:,.2f}",
            f"- Annual quota: {rep.quota:,.2f} (attainability {rep.attainability:.2f} x expected)",
            "",
            "## Monthly targets",
            "",
            "| month | target |",
            "|---|---:|",
            *[f"| {m} | {q[m]:,.2f} |" for m in [c for c in months.columns if c.isdigit()]],
            "",
            "## Units and effort",
            "",
            "| unit | name | effort hours | expected sales | potential |",
            "|---|---|---:|---:|---:|",
            *[f"| {u.unit_id} | {u.name} | {u.effort_hours * share:,.1f} | "
              f"{u.expected_sales * share:,.2f} | {u.potential:,.0f} |"
              for u in members.itertuples()],
            "",
        ]
        (folder / f"{rep.rep_id}.md").write_text("\n".join(lines), encoding="utf-8")


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return None if not np.isfinite(v) else v
    if isinstance(value, np.bool_):
        return bool(value)
    return value
