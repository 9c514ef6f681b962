"""The ``allocator`` command: help, validate, solve (run folder contents), exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from allocator.cli import main
from allocator.runs import RUN_FILES
from conftest import TEXAS

RESULT_KEYS = {"status", "objective", "bound", "gap", "runtime_s", "solver", "seed",
               "scenario_sha256", "versions", "kpis"}
KPI_KEYS = {"headcount", "hires", "expected_sales", "contribution", "cost", "budget_used",
            "workload_index_max", "workload_index_min", "balance_tolerance"}
ASSIGNMENT_COLUMNS = {"unit_id", "territory_id", "rep_id"}
TERRITORY_COLUMNS = {"territory_id", "rep_ids", "n_reps", "n_units", "workload", "potential",
                     "expected_sales", "quota"}


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize("command", [[], ["validate"], ["solve"], ["demo"]],
                         ids=["main", "validate", "solve", "demo"])
def test_help(command):
    result = run(*command, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    if command in (["solve"], ["demo"]):
        for option in ("--solver", "--time-limit", "--gap", "--seed", "--threads",
                       "--models-dir", "--json", "--quiet"):
            assert option in result.output
    if not command:
        for sub in ("validate", "solve", "demo"):
            assert sub in result.output


def test_validate_texas_json():
    result = run("validate", TEXAS, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["units"] == 254
    assert summary["scenario"] == "texas"
    reps = (Path(TEXAS).parent / "texas" / "reps.csv").read_text().strip().splitlines()
    assert summary["existing_reps"] == len(reps) - 1  # one line per rep after the header


def test_validate_texas_text():
    result = run("validate", TEXAS)
    assert result.exit_code == 0, result.output
    assert "valid" in result.output and "254 units" in result.output


def test_validate_broken_scenario(make_scenario):
    path = make_scenario()
    units = path.parent / "units.csv"
    units.write_text(units.read_text().replace("U3,Unit U3", "U2,Unit U3"))
    result = run("validate", path)
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "units.csv" in result.output and "row 4" in result.output and "'U2'" in result.output


def test_validate_missing_scenario(tmp_path):
    result = run("validate", tmp_path / "absent.yaml")
    assert result.exit_code == 2
    assert "absent.yaml" in result.output and "Traceback" not in result.output


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """One ``solve --json`` of a tiny scenario: (models dir, CLI result, run folder)."""
    from conftest import write_scenario

    folder = tmp_path_factory.mktemp("cli")
    path = write_scenario(folder / "scenario", workload=[300, 400, 500, 350, 450, 400],
                          potential=[1.2e6, 0.8e6, 1.0e6, 0.9e6, 1.5e6, 0.7e6])
    models = folder / "models"
    result = run("solve", path, "--models-dir", models, "--json", "--time-limit", 5,
                 "--seed", 3)
    runs = [p for p in (models / "tiny").iterdir()] if (models / "tiny").exists() else []
    return path, models, result, runs


def test_solve_json(cli_run):
    _, models, result, runs = cli_run
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert RESULT_KEYS <= set(record)
    assert KPI_KEYS <= set(record["kpis"])
    assert record["status"] in {"optimal", "feasible"}
    assert record["seed"] == 3
    assert record["solver"] == "cpsat"
    assert record["gap"] >= 0 and record["bound"] >= record["objective"] - 1e-6
    assert record["runtime_s"] > 0
    assert len(record["scenario_sha256"]) == 64
    assert record["versions"]["python"]
    assert len(runs) == 1
    # stdout is the run folder's result.json
    assert json.loads((runs[0] / "result.json").read_text()) == record


def test_run_folder_files(cli_run):
    _, _, result, runs = cli_run
    folder = runs[0]
    for name in (*RUN_FILES, "territories.gpkg"):
        assert (folder / name).is_file() and (folder / name).stat().st_size > 0, name
    assert (folder / "rep_plans").is_dir()
    assert (folder / "model.mps").read_text().lstrip().startswith(("NAME", "*"))
    assert (folder / "map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_folder_tables(cli_run):
    _, _, _, runs = cli_run
    folder = runs[0]
    record = json.loads((folder / "result.json").read_text())
    assignment = pd.read_csv(folder / "assignment.csv", dtype=str)
    territories = pd.read_csv(folder / "territories.csv", dtype={"territory_id": str})
    headcount = pd.read_csv(folder / "headcount.csv", dtype=str)
    quotas = pd.read_csv(folder / "quotas.csv", dtype={"rep_id": str})
    assert ASSIGNMENT_COLUMNS <= set(assignment.columns)
    assert TERRITORY_COLUMNS <= set(territories.columns)
    assert sorted(assignment["unit_id"]) == [f"U{k}" for k in range(1, 7)]
    assert set(assignment["territory_id"]) == set(territories["territory_id"])
    assert territories["n_units"].sum() == 6
    assert territories["n_reps"].sum() == record["kpis"]["headcount"]
    working = headcount[headcount["kind"] != "released"]
    assert len(working) == record["kpis"]["headcount"]
    # one personal plan per rep of the plan, named after the rep
    plans = sorted(p.stem for p in (folder / "rep_plans").glob("*.md"))
    assert plans == sorted(working["rep_id"])
    assert sorted(quotas["rep_id"]) == plans
    for rep_id in plans:
        text = (folder / "rep_plans" / f"{rep_id}.md").read_text()
        assert rep_id in text and "Monthly targets" in text


def test_solving_twice_gives_two_run_folders(cli_run):
    path, models, _, first = cli_run
    second = run("solve", path, "--models-dir", models, "--quiet", "--time-limit", 5,
                 "--seed", 3)
    assert second.exit_code == 0, second.output
    folders = sorted(p for p in (models / "tiny").iterdir())
    assert len(folders) == 2 and first[0] in folders
    assert not [p for p in (models / "tiny").iterdir() if p.name.startswith(".tmp-")]
    assert all((p / "result.json").is_file() for p in folders)
    assert "run:" in second.output and "status" in second.output


def test_infeasible_budget_exits_3(make_scenario, tmp_path):
    # the budget (150,000) pays for one rep; the minimum head count is three
    path = make_scenario(settings={"strategy": {"budget": 150000,
                                                "headcount": {"min": 3, "max": 3}}})
    result = run("solve", path, "--models-dir", tmp_path / "models", "--quiet",
                 "--time-limit", 5)
    assert result.exit_code == 3, result.output
    assert "budget" in result.output
    assert "Traceback" not in result.output
    models = tmp_path / "models"
    assert not models.exists() or not any(models.rglob("result.json"))
