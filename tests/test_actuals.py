"""Run folders read back, the actuals reader (every error names file, row, column, value) and the
seeded synthetic actuals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from allocator.actuals import (SYNTHETIC_SOURCE, read_actuals, rep_month_weights,
                               simulate_actuals)
from allocator.cli import main
from allocator.exceptions import InputError
from allocator.runs import read_run


@pytest.fixture(scope="module")
def run(tiny_run):
    return read_run(tiny_run)


@pytest.fixture(scope="module")
def scenario(run):
    return run.load_scenario()


# --- read_run -------------------------------------------------------------------------------------

def test_read_run_gives_the_tables_and_the_scenario(tiny_run, run, scenario):
    record = json.loads((tiny_run / "result.json").read_text())
    assert run.run_id == record["run_id"] == tiny_run.name
    assert run.result["kpis"]["headcount"] == len(run.reps) == 4
    assert list(run.assignment["unit_id"]) == [f"U{k}" for k in range(1, 13)]
    assert run.quotas["annual"].sum() == pytest.approx(run.territories["quota"].sum())
    assert scenario.name == "tiny" and scenario.n_units == 12
    with pytest.raises(Exception):
        run.run_id = "other"  # frozen


def test_read_run_keeps_identifiers_as_text(tmp_path, tiny_run):
    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy)
    table = pd.read_csv(copy / "assignment.csv", dtype=str)
    table["unit_id"] = ["0" + u for u in table["unit_id"]]
    table.to_csv(copy / "assignment.csv", index=False)
    assert read_run(copy).assignment["unit_id"].iloc[0] == "0U1"


@pytest.mark.parametrize("damage, message", [
    (lambda f: (f / "quotas.csv").unlink(), "missing quotas.csv"),
    (lambda f: (f / "result.json").write_text("{not json"), "not valid JSON"),
    (lambda f: (f / "territories.csv").write_text("territory_id\nT1\n"), "missing column"),
])
def test_read_run_rejects_an_incomplete_folder(tmp_path, tiny_run, damage, message):
    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy)
    damage(copy)
    with pytest.raises(InputError, match=message):
        read_run(copy)


def test_read_run_rejects_missing_and_unfinished_folders(tmp_path):
    with pytest.raises(InputError, match="run folder not found"):
        read_run(tmp_path / "nothing")
    (tmp_path / ".tmp-x").mkdir()
    with pytest.raises(InputError, match="unfinished"):
        read_run(tmp_path / ".tmp-x")


# --- read_actuals ---------------------------------------------------------------------------------

def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_unit_actuals_fill_absent_cells_with_zero(tmp_path, run, scenario):
    path = write(tmp_path / "a.csv", "unit_id,month,sales,hours\nU1,2027-01,100.5,3\n"
                                     "U2,2027-02,50,2\nU1,2027-02,20,1\n")
    actuals = read_actuals(path, run, scenario)
    assert (actuals.level, actuals.through, actuals.year) == ("unit", 2, 2027)
    assert len(actuals.table) == 12 * 2 and actuals.filled_zero == 21
    assert actuals.table["sales"].sum() == pytest.approx(170.5)
    assert actuals.has_hours and not actuals.has_calls and not actuals.synthetic


def test_rep_actuals_read_from_xlsx(tmp_path, run, scenario):
    frame = pd.DataFrame({"rep_id": ["R1", "NEW-U6-1"], "month": ["2027-01", "2027-01"],
                          "sales": [10.0, 0.0]})
    frame.to_excel(tmp_path / "a.xlsx", index=False)
    actuals = read_actuals(tmp_path / "a.xlsx", run, scenario)
    assert actuals.level == "rep" and set(actuals.table["id"]) == set(run.reps["rep_id"])


@pytest.mark.parametrize("text, row, column, value, message", [
    ("unit_id,month,sales\nU1,2027-01,1\nU99,2027-01,2\n", 3, "unit_id", "U99", "unknown unit"),
    ("rep_id,month,sales\nR1,2027-01,1\nR7,2027-01,2\n", 3, "rep_id", "R7", "unknown rep"),
    ("unit_id,month,sales\nU1,2026-12,1\n", 2, "month", "2026-12", "outside the plan year 2027"),
    ("unit_id,month,sales\nU1,2027-13,1\n", 2, "month", "2027-13", "YYYY-MM"),
    ("unit_id,month,sales\nU1,Jan 2027,1\n", 2, "month", "Jan 2027", "YYYY-MM"),
    ("unit_id,month,sales\nU1,2027-01,1\nU2,2027-01,-5\n", 3, "sales", "-5", ">= 0"),
    ("unit_id,month,sales\nU1,2027-01,\n", 2, "sales", "", "finite"),
    ("unit_id,month,sales\nU1,2027-01,nan\n", 2, "sales", "nan", "finite"),
    ("unit_id,month,sales,calls\nU1,2027-01,1,many\n", 2, "calls", "many", "finite"),
    ("unit_id,month,sales\nU1,2027-01,1\nU2,2027-01,1\nU1,2027-01,3\n", 4, "month",
     "U1 2027-01", "duplicate"),
    ("unit_id,month,sales\n,2027-01,1\n", 2, "unit_id", "", "empty identifier"),
])
def test_bad_actuals_name_file_row_column_value(tmp_path, run, scenario, text, row, column, value,
                                                message):
    path = write(tmp_path / "bad.csv", text)
    with pytest.raises(InputError, match=message) as caught:
        read_actuals(path, run, scenario)
    err = caught.value
    assert (err.file, err.row, err.column, err.value) == (str(path), row, column, value)


@pytest.mark.parametrize("text, column, message", [
    ("unit_id,month,sales\nU1,2027-01,1\nU1,2027-03,1\n", "month", "no rows for month.*2027-02"),
    ("unit_id,rep_id,month,sales\nU1,R1,2027-01,1\n", "rep_id", "not both"),
    ("unit,month,sales\nU1,2027-01,1\n", "unit_id", "needs a unit_id or a rep_id"),
    ("unit_id,month\nU1,2027-01\n", "sales", "missing column"),
    ("unit_id,month,sales,region\nU1,2027-01,1,TX\n", "region", "unknown column"),
])
def test_bad_actuals_tables(tmp_path, run, scenario, text, column, message):
    with pytest.raises(InputError, match=message) as caught:
        read_actuals(write(tmp_path / "bad.csv", text), run, scenario)
    assert caught.value.column == column


# --- synthetic actuals ----------------------------------------------------------------------------

def test_simulated_actuals_are_seeded_labelled_and_follow_the_plan(tmp_path, run, scenario):
    first = simulate_actuals(run, "2027-06", seed=3, scenario=scenario)
    again = simulate_actuals(run, "2027-06", seed=3, scenario=scenario)
    other = simulate_actuals(run, "2027-06", seed=4, scenario=scenario)
    pd.testing.assert_frame_equal(first, again)
    assert not first["sales"].equals(other["sales"])
    assert first["source"].str.startswith(SYNTHETIC_SOURCE).all()
    assert sorted(first["month"].unique()) == [f"2027-{m:02d}" for m in range(1, 7)]
    assert len(first) == 12 * 6
    # the hires of the team territory start in March: nothing is sold there before, by anyone
    # but the team, so the team territory's January sales come from no rep at all
    team = run.assignment.loc[run.assignment["territory_id"] == "T-NEW-U6-1", "unit_id"]
    in_team = first["unit_id"].isin(team)
    assert first.loc[in_team & first["month"].isin(["2027-01", "2027-02"]), "sales"].sum() == 0
    assert first.loc[in_team & (first["month"] == "2027-03"), "sales"].sum() > 0
    # ramp: March and April (half productivity) sell less than May in the team territory
    by_month = first[in_team].groupby("month")["sales"].sum()
    assert by_month["2027-03"] < by_month["2027-05"] and by_month["2027-04"] < by_month["2027-05"]
    # the file reads back as actuals, marked synthetic
    path = tmp_path / "synthetic.csv"
    first.to_csv(path, index=False)
    actuals = read_actuals(path, run, scenario)
    assert actuals.synthetic and actuals.through == 6 and actuals.has_calls


def test_simulated_sales_average_to_the_plan(run, scenario):
    """Over many seeds the mean of the synthetic sales is the plan's expected sales to date."""
    weights = rep_month_weights(run)
    reps = run.reps.set_index("rep_id")
    expected = float((reps["expected_sales"] * weights.loc[reps.index, 1:6].sum(axis=1)).sum())
    totals = [simulate_actuals(run, 6, seed=s, scenario=scenario)["sales"].sum()
              for s in range(60)]
    assert np.mean(totals) == pytest.approx(expected, rel=0.03)
    assert np.std(totals) > 0.01 * expected  # and they do vary


def test_simulate_actuals_cli(tmp_path, tiny_run, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    result = runner.invoke(main, ["simulate-actuals", str(tiny_run), "--through", "2027-04",
                                  "--seed", "1", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    path = Path(summary["actuals"])
    assert path == Path("reports") / "tiny" / tiny_run.name / "actuals_synthetic.csv"
    assert len(pd.read_csv(path)) == summary["rows"] == 48
    out = tmp_path / "mine.csv"
    result = runner.invoke(main, ["simulate-actuals", str(tiny_run), "--out", str(out)])
    assert result.exit_code == 0 and out.is_file() and "2027-01..2027-06" in result.output
    bad = runner.invoke(main, ["simulate-actuals", str(tiny_run), "--through", "2028-01"])
    assert bad.exit_code == 2 and "outside the plan year" in bad.output
    missing = runner.invoke(main, ["simulate-actuals", str(tmp_path / "no-run")])
    assert missing.exit_code == 2 and "run folder not found" in missing.output
    assert runner.invoke(main, ["simulate-actuals", "--help"]).exit_code == 0
