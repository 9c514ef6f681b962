"""Bad input: every problem is an InputError naming the file, and where known row, column, value.

Rows count as a spreadsheet counts them: the header is row 1, the first record row 2.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from allocator.cli import main
from allocator.exceptions import InputError
from allocator.scenario import load_scenario
from conftest import DATA


def set_cell(csv: Path, row: int, column: str, value: str) -> None:
    """Overwrite one cell of a CSV file; ``row`` counts the header as row 1."""
    lines = csv.read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    cells = lines[row - 1].split(",")
    cells[header.index(column)] = value
    lines[row - 1] = ",".join(cells)
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")


def drop_column(csv: Path, column: str) -> None:
    rows = [line.split(",") for line in csv.read_text(encoding="utf-8").splitlines()]
    k = rows[0].index(column)
    csv.write_text("\n".join(",".join(r[:k] + r[k + 1:]) for r in rows) + "\n", encoding="utf-8")


def edit_yaml(path: Path, edit) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def load_error(path: Path) -> InputError:
    with pytest.raises(InputError) as caught:
        load_scenario(path)
    return caught.value


def test_tiny_scenario_loads(make_scenario):
    """The base of every case below is valid: each failure comes from the one break made."""
    scenario = load_scenario(make_scenario())
    assert scenario.n_units == 6
    assert len(scenario.edges) == 7
    assert list(scenario.reps["rep_id"]) == ["R1"]


def test_missing_scenario_file(tmp_path):
    err = load_error(tmp_path / "nowhere.yaml")
    assert err.file.endswith("nowhere.yaml")
    assert "nowhere.yaml" in str(err) and "not found" in str(err)


def test_missing_table_file(make_scenario):
    path = make_scenario()
    (path.parent / "reps.csv").unlink()
    err = load_error(path)
    assert Path(err.file).name == "reps.csv"
    assert "reps.csv" in str(err) and "not found" in str(err)


def test_missing_column(make_scenario):
    path = make_scenario()
    drop_column(path.parent / "units.csv", "workload")
    err = load_error(path)
    assert Path(err.file).name == "units.csv"
    assert err.column == "workload"
    assert "units.csv" in str(err) and "workload" in str(err)


def test_missing_column_from_data_folder():
    err = load_error(DATA / "missing_workload.yaml")
    assert Path(err.file).name == "units_missing_workload.csv"
    assert err.column == "workload"
    assert "units_missing_workload.csv" in str(err)


@pytest.mark.parametrize("column", ["potential", "workload", "last_year_sales"])
@pytest.mark.parametrize("value, problem", [
    ("abc", "not a finite number"),
    ("NaN", "not a finite number"),
    ("", "not a finite number"),
    ("inf", "not a finite number"),
    ("-inf", "not a finite number"),
    ("1e400", "not a finite number"),
    ("-5", ">= 0"),
])
def test_bad_number_in_units(make_scenario, column, value, problem):
    path = make_scenario()
    set_cell(path.parent / "units.csv", 4, column, value)  # the third record
    err = load_error(path)
    assert (Path(err.file).name, err.row, err.column, err.value) == ("units.csv", 4, column, value)
    text = str(err)
    assert "units.csv" in text and "row 4" in text and f"'{column}'" in text
    assert repr(value) in text and problem in text


@pytest.mark.parametrize("column, value, problem", [
    ("annual_cost", "-100", ">= 0"),
    ("capacity_hours", "0", "> 0"),
    ("productivity", "x1", "not a finite number"),
])
def test_bad_number_in_reps(make_scenario, column, value, problem):
    path = make_scenario()
    set_cell(path.parent / "reps.csv", 2, column, value)
    err = load_error(path)
    assert (Path(err.file).name, err.row, err.column, err.value) == ("reps.csv", 2, column, value)
    assert problem in str(err) and "reps.csv" in str(err) and "row 2" in str(err)


def test_fractional_hire_places(make_scenario):
    path = make_scenario()
    set_cell(path.parent / "hire_sites.csv", 3, "max_hires", "1.5")
    err = load_error(path)
    assert (Path(err.file).name, err.row, err.column, err.value) == \
        ("hire_sites.csv", 3, "max_hires", "1.5")
    assert "whole number" in str(err)


def test_duplicate_unit_id(make_scenario):
    path = make_scenario()
    set_cell(path.parent / "units.csv", 6, "unit_id", "U2")  # U5 renamed to U2
    err = load_error(path)
    assert (Path(err.file).name, err.row, err.column, err.value) == ("units.csv", 6, "unit_id", "U2")
    assert "duplicate" in str(err) and "row 6" in str(err) and "'U2'" in str(err)


def test_empty_unit_id(make_scenario):
    path = make_scenario()
    set_cell(path.parent / "units.csv", 3, "unit_id", "")
    err = load_error(path)
    assert (Path(err.file).name, err.row, err.column) == ("units.csv", 3, "unit_id")


def test_unknown_rep_home_unit(make_scenario):
    path = make_scenario(reps=[{"rep_id": "R1", "home_unit": "U1", "annual_cost": 90000},
                               {"rep_id": "R2", "home_unit": "U99", "annual_cost": 90000}])
    err = load_error(path)
    assert (Path(err.file).name, err.row, err.column, err.value) == \
        ("reps.csv", 3, "home_unit", "U99")
    assert "unknown home unit" in str(err) and "'U99'" in str(err)


def test_unknown_unit_in_edge_list(make_scenario):
    path = make_scenario()
    set_cell(path.parent / "edges.csv", 5, "b", "U42")
    err = load_error(path)
    assert (Path(err.file).name, err.row, err.column, err.value) == ("edges.csv", 5, "b", "U42")
    assert "unknown unit" in str(err)


def test_self_loop_in_edge_list(make_scenario):
    path = make_scenario()
    set_cell(path.parent / "edges.csv", 2, "b", "U1")  # first edge U1-U2 becomes U1-U1
    err = load_error(path)
    assert (Path(err.file).name, err.row) == ("edges.csv", 2)
    assert "itself" in str(err)


def test_unknown_hire_site(make_scenario):
    path = make_scenario()
    set_cell(path.parent / "hire_sites.csv", 2, "unit_id", "NOPE")
    err = load_error(path)
    assert (Path(err.file).name, err.row, err.column, err.value) == \
        ("hire_sites.csv", 2, "unit_id", "NOPE")


def test_yaml_syntax_error():
    err = load_error(DATA / "bad_syntax.yaml")
    assert Path(err.file).name == "bad_syntax.yaml"
    assert "YAML syntax error" in str(err) and "bad_syntax.yaml" in str(err)
    # the bracket opened on line 6 is still open where the parser meets the ':' of line 7
    assert err.row == 7
    assert f"row {err.row}" in str(err)


def test_yaml_syntax_error_in_generated_file(make_scenario):
    path = make_scenario()
    lines = path.read_text(encoding="utf-8").splitlines()
    at = next(k for k, line in enumerate(lines) if line.startswith("strategy:"))
    lines[at] = "strategy: : :"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    err = load_error(path)
    assert err.row == at + 1
    assert path.name in str(err) and f"row {at + 1}" in str(err)


def test_scenario_file_not_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n", encoding="utf-8")
    err = load_error(path)
    assert "list.yaml" in str(err) and "mapping" in str(err)


def test_unknown_setting_key():
    err = load_error(DATA / "unknown_key.yaml")
    assert Path(err.file).name == "unknown_key.yaml"
    assert err.column == "strategy.budgett"
    assert "strategy.budgett" in str(err) and "unknown_key.yaml" in str(err)


def test_unknown_top_level_key(make_scenario):
    path = make_scenario()
    edit_yaml(path, lambda d: d.update(colour="red"))
    err = load_error(path)
    assert err.column == "colour" and err.value == "red"
    assert path.name in str(err) and "'red'" in str(err)


def test_headcount_min_above_max():
    err = load_error(DATA / "headcount_min_above_max.yaml")
    assert Path(err.file).name == "headcount_min_above_max.yaml"
    assert err.column == "strategy.headcount"
    text = str(err)
    assert "headcount_min_above_max.yaml" in text
    assert "headcount.min 7" in text and "headcount.max 3" in text


def test_tolerance_out_of_range():
    err = load_error(DATA / "tolerance_out_of_range.yaml")
    assert Path(err.file).name == "tolerance_out_of_range.yaml"
    assert err.column == "alignment.balance.0.tolerance"
    assert err.value == 1.5
    assert "tolerance_out_of_range.yaml" in str(err) and "1.5" in str(err)


@pytest.mark.parametrize("section, changes, column", [
    ("alignment", {"balance": [{"measure": "workload", "tolerance": 0.0}]},
     "alignment.balance.0.tolerance"),
    ("strategy", {"budget": -1}, "strategy.budget"),
    ("strategy", {"budget": "lots"}, "strategy.budget"),
    ("strategy", {"margin": 1.5}, "strategy.margin"),
    ("response", {"floor": 0.7, "ceiling": 0.6}, "response"),
    ("quotas", {"seasonality": [1, 1, 1]}, "quotas.seasonality"),
])
def test_invalid_setting_values(make_scenario, section, changes, column):
    path = make_scenario()
    edit_yaml(path, lambda d: d[section].update(changes))
    err = load_error(path)
    assert err.column == column
    assert path.name in str(err)


def test_invalid_setting_through_with_settings(make_scenario):
    scenario = load_scenario(make_scenario())
    with pytest.raises(InputError) as caught:
        scenario.with_settings(strategy={"headcount": {"min": 4, "max": 2}})
    assert "headcount.min 4" in str(caught.value)
    with pytest.raises(InputError) as caught:
        scenario.with_settings(alignment={"balance": [{"measure": "workload", "tolerance": 2}]})
    assert caught.value.column == "alignment.balance.0.tolerance"


def test_every_workload_zero(make_scenario):
    path = make_scenario(workload=[0] * 6)
    err = load_error(path)
    assert (Path(err.file).name, err.column) == ("units.csv", "workload")


@pytest.mark.parametrize("break_it, needle", [
    (lambda p: set_cell(p.parent / "units.csv", 3, "potential", "lots"), "'lots'"),
    (lambda p: set_cell(p.parent / "reps.csv", 2, "home_unit", "U77"), "'U77'"),
    (lambda p: (p.parent / "edges.csv").unlink(), "edges.csv"),
    (lambda p: edit_yaml(p, lambda d: d["strategy"].update(headcount={"min": 5, "max": 1})),
     "headcount.min 5"),
], ids=["non-numeric", "unknown-home", "missing-file", "headcount"])
def test_cli_exit_code_2(make_scenario, break_it, needle):
    path = make_scenario()
    break_it(path)
    for command in (["validate", str(path)], ["solve", str(path), "--quiet",
                                              "--models-dir", str(path.parent / "models")]):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 2, result.output
        assert needle in result.output
        assert "Traceback" not in result.output
        assert not (path.parent / "models").exists()
