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
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from allocator.exceptions import InputError
from allocator.solve import SolveResult

if TYPE_CHECKING:
    from allocator.scenario import Scenario

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


def write_run(result: SolveResult, models_dir: str | Path, model_writer=None, *,
              suffix: str = "", write_extra=None, record_extra: dict | None = None) -> Path:
    """Write the run folder and return its path. ``model_writer(path)`` writes ``model.mps``;
    ``write_extra(folder)`` adds files of a particular kind of run, ``record_extra`` its keys
    of ``result.json``, and ``suffix`` ends its run id."""
    from allocator.maps import write_map, write_territory_polygons

    plan = result.plan
    base = Path(models_dir) / plan.scenario.name
    base.mkdir(parents=True, exist_ok=True)
    run_id = new_run_id(result) + suffix
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
        if write_extra is not None:
            write_extra(tmp)
        final, run_id = _free_name(base, run_id)
        record = result_record(result, run_id)
        record.update(_plain(record_extra or {}))
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


# --- reading a run folder back ------------------------------------------------------------------

#: The files a complete run folder always has (``model.mps`` is optional: a writer may skip it).
REQUIRED_RUN_FILES = ("result.json", "assignment.csv", "territories.csv", "headcount.csv",
                      "quotas.csv")

# identifiers stay text (FIPS codes such as "01001" keep their leading zero)
_ID_COLUMNS = {"unit_id": str, "territory_id": str, "rep_id": str, "site_unit": str,
               "home_unit": str, "rep_ids": str, "region": str, "name": str, "kind": str}


@dataclass(frozen=True)
class RunRecord:
    """A run folder read back: its ``result.json`` and plan tables, as written by :func:`write_run`.

    Reporting, evaluation and mid-year re-optimisation start from here rather than from a live
    :class:`SolveResult`, so that they work on any run folder, long after the solve.
    """

    path: Path
    run_id: str
    result: dict[str, Any]
    assignment: pd.DataFrame
    territories: pd.DataFrame
    headcount: pd.DataFrame
    quotas: pd.DataFrame
    scenario_file: Path | None

    @property
    def scenario_name(self) -> str:
        return str(self.result.get("scenario", self.path.parent.name))

    @property
    def reps(self) -> pd.DataFrame:
        """The reps of the plan (the head-count table less the released reps)."""
        return self.headcount[self.headcount["kind"] != "released"].reset_index(drop=True)

    def load_scenario(self) -> "Scenario":
        """The scenario this run solved, loaded again from its file.

        Raises :class:`InputError` if the file is gone. (The recorded ``scenario_sha256`` covers
        the solve's option overrides too, so it is not compared here.)
        """
        from allocator.scenario import load_scenario

        if self.scenario_file is None:
            raise InputError(
                "the run's scenario file was not found (looked relative to the working folder "
                "and to the run folder's project root)",
                file=str(self.path / "result.json"), column="scenario_file",
                value=self.result.get("scenario_file"))
        return load_scenario(self.scenario_file)


def read_run(path: str | Path) -> RunRecord:
    """Read a run folder; an incomplete or foreign folder is an :class:`InputError`."""
    folder = Path(path)
    if not folder.is_dir():
        raise InputError("run folder not found", file=str(folder))
    if folder.name.startswith(".tmp-"):
        raise InputError("this is an unfinished run folder (a solve was interrupted)",
                         file=str(folder))
    missing = [name for name in REQUIRED_RUN_FILES if not (folder / name).is_file()]
    if missing:
        raise InputError(f"not a complete run folder: missing {', '.join(missing)}",
                         file=str(folder))
    try:
        result = json.loads((folder / "result.json").read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"result.json is not valid JSON: {err}",
                         file=str(folder / "result.json")) from None
    if not isinstance(result, dict):
        raise InputError("result.json does not hold a record", file=str(folder / "result.json"))
    for key in ("run_id", "scenario", "scenario_file", "kpis"):
        if key not in result:
            raise InputError("missing key", file=str(folder / "result.json"), column=key)
    tables = {}
    needed = {
        "assignment": ["unit_id", "territory_id", "rep_id", "potential", "workload",
                       "effort_hours", "expected_sales"],
        "territories": ["territory_id", "rep_ids", "n_reps", "workload", "potential",
                        "expected_sales", "quota"],
        "headcount": ["rep_id", "kind", "territory_id", "start_month", "effective_hours",
                      "expected_sales", "quota"],
        "quotas": ["rep_id", "territory_id", *[f"{m:02d}" for m in range(1, 13)], "annual"],
    }
    for name, columns in needed.items():
        tables[name] = read_run_table(folder / f"{name}.csv", columns)
    return RunRecord(path=folder, run_id=str(result["run_id"]), result=result,
                     scenario_file=_find_scenario_file(folder, result["scenario_file"]), **tables)


def read_run_table(file: Path, columns: list[str], ids: dict | None = None):
    """A table of a run folder with ``columns`` required; id columns (``ids``, default the
    plan tables' ids) stay text, and an empty numeric cell is missing, not zero."""
    import pandas as pd

    ids = _ID_COLUMNS if ids is None else ids
    try:
        frame = pd.read_csv(file, dtype=ids, keep_default_na=False,
                            na_values={c: [""] for c in columns if c not in ids})
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise InputError(f"cannot read run table: {err}", file=str(file)) from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"missing column(s) {missing}", file=str(file), column=missing[0])
    return frame


def _find_scenario_file(folder: Path, recorded: str) -> Path | None:
    """The scenario file as recorded; a relative path is tried against the working folder and
    against the project root of a run folder laid out as ``<root>/models/<scenario>/<run>``."""
    candidate = Path(recorded)
    if candidate.is_absolute():
        return candidate if candidate.is_file() else None
    for base in (Path.cwd(), folder.resolve().parent.parent.parent):
        if (base / candidate).is_file():
            return base / candidate
    return None
