"""Evaluation figures on a hand-computed case, the response recalibration, and the CLI.

The hand case: two territories over units U1..U4 and three reps, actuals for January and
February 2027.

- T1 (units U1, U2, base U1 in region N): rep A, quota 100 a month (1,200 a year), expected
  1,320 a year. Actuals U1 90 + 100, U2 30 + 20: 240.
- T2 (units U3, U4, base U3 in region S): rep B, quota 50 a month (600), expected 540, and
  hire C starting in February, quota 0 then 50 a month (550), expected 440. Actuals U3 40 + 50,
  U4 February 30 (no January row: zero): 120.

By hand: quota to date A 200, B 100, C 50; expected to date A 1,320 x 2/12 = 220,
B 540 x 2/12 = 90, C 440 x 50/550 = 40. T2's 120 is split by quota to date 100 : 50, so B 80 and
C 40. Attainment A 240/200 = 1.2, B 0.8, C 0.8. Gap = territory part + performance part:
A 40 = 20 + 20, B -20 = -10 + -10, C -10 = -10 + 0. Projection A 240 + 1.2 x 1,000 = 1,440.
Plan accuracy: T1 |240 - 220| / 240 = 1/12, T2 |120 - 130| / 120 = 1/12, MAPE 1/12;
bias (350 - 360) / 360 = -1/36. One rep in three at or above quota.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from allocator.actuals import read_actuals
from allocator.cli import main
from allocator.evaluate import Thresholds, evaluate, write_evaluation
from allocator.exceptions import InputError
from allocator.runs import RunRecord, read_run
from allocator.settings import ResponseSpec

MONTHS = [f"{m:02d}" for m in range(1, 13)]


@pytest.fixture
def hand_run(tmp_path) -> RunRecord:
    assignment = pd.DataFrame({
        "unit_id": ["U1", "U2", "U3", "U4"], "name": ["one", "two", "three", "four"],
        "region": ["N", "N", "S", "S"], "territory_id": ["T1", "T1", "T2", "T2"],
        "rep_id": ["A", "A", "B", "B"], "potential": [4000.0, 2000.0, 3000.0, 1000.0],
        "workload": [100.0, 50.0, 80.0, 40.0], "effort_hours": [120.0, 60.0, 90.0, 30.0],
        "expected_sales": [900.0, 420.0, 700.0, 280.0]})
    territories = pd.DataFrame({
        "territory_id": ["T1", "T2"], "site_unit": ["U1", "U3"], "rep_ids": ["A", "B;C"],
        "n_reps": [1, 2], "workload_per_rep_index": [1.2, 0.8], "workload": [150.0, 120.0],
        "potential": [6000.0, 4000.0], "expected_sales": [1320.0, 980.0],
        "quota": [1200.0, 1150.0]})
    headcount = pd.DataFrame({
        "rep_id": ["A", "B", "C"], "name": ["Rep A", "Rep B", "new hire"],
        "kind": ["existing", "existing", "hire"], "territory_id": ["T1", "T2", "T2"],
        "home_unit": ["U1", "U3", "U3"], "start_month": [1, 1, 2],
        "effective_hours": [180.0, 70.0, 50.0], "expected_sales": [1320.0, 540.0, 440.0],
        "quota": [1200.0, 600.0, 550.0]})
    quota_rows = [["A", "T1", *[100.0] * 12, 1200.0], ["B", "T2", *[50.0] * 12, 600.0],
                  ["C", "T2", 0.0, *[50.0] * 11, 550.0]]
    quotas = pd.DataFrame(quota_rows, columns=["rep_id", "territory_id", *MONTHS, "annual"])
    return RunRecord(path=tmp_path, run_id="hand", result={"scenario": "hand", "kpis": {}},
                     assignment=assignment, territories=territories, headcount=headcount,
                     quotas=quotas, scenario_file=None)


def unit_actuals(folder: Path) -> Path:
    path = folder / "actuals.csv"
    path.write_text("unit_id,month,sales,calls,hours\n"
                    "U1,2027-01,90,10,12\nU1,2027-02,100,10,12\nU2,2027-01,30,4,6\n"
                    "U2,2027-02,20,4,6\nU3,2027-01,40,5,8\nU3,2027-02,50,6,9\n"
                    "U4,2027-02,30,3,4\n")
    return path


def figures(evaluation, column: str) -> dict[str, float]:
    return dict(zip(evaluation.reps["rep_id"], evaluation.reps[column], strict=True))


def test_hand_computed_evaluation_by_unit(tmp_path, hand_run):
    actuals = read_actuals(unit_actuals(tmp_path), hand_run, year=2027)
    result = evaluate(hand_run, actuals, Thresholds(), ResponseSpec())
    assert figures(result, "quota_to_date") == pytest.approx({"A": 200, "B": 100, "C": 50})
    assert figures(result, "expected_to_date") == pytest.approx({"A": 220, "B": 90, "C": 40})
    assert figures(result, "actual_to_date") == pytest.approx({"A": 240, "B": 80, "C": 40})
    assert figures(result, "attainment") == pytest.approx({"A": 1.2, "B": 0.8, "C": 0.8})
    assert figures(result, "gap_to_quota") == pytest.approx({"A": 40, "B": -20, "C": -10})
    assert figures(result, "territory_part") == pytest.approx({"A": 20, "B": -10, "C": -10})
    assert figures(result, "performance_part") == pytest.approx({"A": 20, "B": -10, "C": 0})
    assert figures(result, "projection") == pytest.approx({"A": 1440, "B": 480, "C": 440})
    assert figures(result, "flag") == {"A": "on track", "B": "below 85%", "C": "below 85%"}
    assert figures(result, "rank") == {"A": 1, "B": 2, "C": 2}
    assert figures(result, "sales_index") == pytest.approx({"A": 2.0, "B": 2 / 3, "C": 1 / 3})
    # activity is split like the sales: T2's 8 + 9 + 4 = 21 hours go 2 : 1 to B and C
    assert figures(result, "actual_hours") == pytest.approx({"A": 36, "B": 14, "C": 7})
    s = result.summary
    assert s["mape"] == pytest.approx(1 / 12)
    assert s["bias"] == pytest.approx(-1 / 36)
    assert s["share_at_or_above_quota"] == pytest.approx(1 / 3)
    assert s["attainment"] == pytest.approx(360 / 350)
    assert s["median_attainment"] == pytest.approx(0.8)
    territories = result.territories.set_index("territory_id")
    assert territories.loc["T1", "ape"] == pytest.approx(1 / 12)
    assert territories.loc["T2", "attainment"] == pytest.approx(0.8)
    regions = result.regions.set_index("region")
    assert regions.loc["N", "attainment"] == pytest.approx(1.2)
    assert regions.loc["S", "actual_to_date"] == pytest.approx(120)
    distribution = result.distribution.set_index("attainment")["reps"]
    assert distribution["70-85 %"] == 2 and distribution["120 % and above"] == 1
    months = result.months.set_index("month")
    assert months.loc["2027-01", "actual"] == pytest.approx(160)
    assert months.loc["2027-02", "quota"] == pytest.approx(200)
    # four units cannot fit a curve: floor and ceiling are scaled by actual / expected
    response = result.response
    assert response["fit"]["method"] == "scale"
    assert response["response"]["ceiling"] == pytest.approx(0.6 * 360 / 350, abs=1e-6)
    assert response["rep_performance"] == pytest.approx({"A": 240 / 220, "B": 80 / 90, "C": 1.0},
                                                      abs=1e-4)  # rounded to 4 places


def test_hand_computed_evaluation_by_rep_and_thresholds(tmp_path, hand_run):
    path = tmp_path / "reps.csv"
    path.write_text("rep_id,month,sales\nA,2027-01,110\nA,2027-02,130\nB,2027-01,30\n"
                    "B,2027-02,50\nC,2027-02,40\n")
    actuals = read_actuals(path, hand_run, year=2027)
    result = evaluate(hand_run, actuals, Thresholds(low=0.75, high=1.1), ResponseSpec())
    assert figures(result, "attainment") == pytest.approx({"A": 1.2, "B": 0.8, "C": 0.8})
    assert figures(result, "flag") == {"A": "above 110%", "B": "on track", "C": "on track"}
    assert result.summary["mape"] == pytest.approx(1 / 12)
    assert result.summary["flagged_above"] == 1 and result.summary["flagged_below"] == 0
    assert result.response["fit"]["why_scale"].startswith("actuals by rep")


def test_a_hire_without_quota_to_date_is_not_counted(tmp_path, hand_run):
    path = tmp_path / "jan.csv"
    path.write_text("unit_id,month,sales\nU1,2027-01,100\nU3,2027-01,40\n")
    result = evaluate(hand_run, read_actuals(path, hand_run, year=2027), Thresholds(),
                      ResponseSpec())
    assert figures(result, "flag")["C"] == "no quota yet"
    assert np.isnan(figures(result, "attainment")["C"])
    assert result.summary["reps_with_quota"] == 2
    assert result.summary["share_at_or_above_quota"] == pytest.approx(0.5)


def test_thresholds_must_be_ordered():
    with pytest.raises(InputError, match="low < high"):
        Thresholds(low=1.2, high=0.9)


def test_response_curve_is_recovered_from_exact_actuals(tmp_path, texas_run):
    """Actuals drawn exactly from a known curve (floor 0.06, ceiling 0.12) at the planned effort
    give back that curve."""
    from allocator.actuals import rep_month_weights
    from allocator.evaluate import _unit_expected_to_date

    run = read_run(texas_run)
    scenario = run.load_scenario()
    units = run.assignment
    spec = scenario.settings.response
    coverage = np.minimum(units["effort_hours"] / units["workload"], spec.max_coverage)
    lift = 1 - np.exp2(-coverage / spec.half)
    annual = units["potential"] * (0.06 + 0.06 * lift)
    fraction = (_unit_expected_to_date(run, rep_month_weights(run), [1, 2, 3]).to_numpy() /
                units["expected_sales"].to_numpy())
    rows = []
    for m in (1, 2, 3):
        one = _unit_expected_to_date(run, rep_month_weights(run), [m]).to_numpy() / \
            units["expected_sales"].to_numpy()
        rows.append(pd.DataFrame({"unit_id": units["unit_id"], "month": f"2027-{m:02d}",
                                  "sales": annual * one}))
    assert sum(r["sales"].sum() for r in rows) == pytest.approx(float((annual * fraction).sum()))
    path = tmp_path / "exact.csv"
    pd.concat(rows).to_csv(path, index=False, float_format="%.6f")
    result = evaluate(run, read_actuals(path, run, scenario), Thresholds(), spec)
    fitted = result.response["response"]
    assert result.response["fit"]["method"].startswith("least squares")
    assert fitted["floor"] == pytest.approx(0.06, abs=1e-4)
    assert fitted["ceiling"] == pytest.approx(0.12, abs=1e-4)
    assert result.response["fit"]["r2"] == pytest.approx(1.0, abs=1e-6)


def test_evaluate_cli_writes_every_file_and_they_agree(tmp_path, tiny_run, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    simulated = runner.invoke(main, ["simulate-actuals", str(tiny_run), "--through", "2027-05"])
    assert simulated.exit_code == 0, simulated.output
    folder = Path("reports") / "tiny" / tiny_run.name
    result = runner.invoke(main, ["evaluate", str(tiny_run), str(folder / "actuals_synthetic.csv"),
                                  "--json", "--low", "0.9"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["through"] == "2027-05" and summary["synthetic_actuals"] is True
    for name in ("evaluation.html", "evaluation.xlsx", "evaluation.csv",
                 "response_recalibrated.yaml"):
        assert (folder / name).is_file(), name
    csv = pd.read_csv(folder / "evaluation.csv")
    xlsx = pd.read_excel(folder / "evaluation.xlsx", sheet_name="Reps")
    assert list(csv.columns) == list(xlsx.columns)
    numeric = csv.select_dtypes("number").columns
    assert len(numeric) >= 10
    np.testing.assert_allclose(xlsx[numeric].to_numpy(float), csv[numeric].to_numpy(float),
                               rtol=1e-12, equal_nan=True)
    assert (csv["flag"] == xlsx["flag"]).all()
    assert csv["actual_to_date"].sum() == pytest.approx(summary["actual_to_date"])
    assert (csv["attainment"] < 0.9).sum() == summary["flagged_below"]
    recalibrated = yaml.safe_load((folder / "response_recalibrated.yaml").read_text())
    assert set(recalibrated["response"]) == {"floor", "ceiling", "half", "max_coverage"}
    # the section is a valid response setting of the scenario, ready for re-optimisation
    scenario = read_run(tiny_run).load_scenario()
    assert scenario.with_settings(response=recalibrated["response"]).settings.response.ceiling \
        == pytest.approx(recalibrated["response"]["ceiling"])
    assert "SYNTHETIC" in (folder / "response_recalibrated.yaml").read_text()
    text = runner.invoke(main, ["evaluate", str(tiny_run), str(folder / "actuals_synthetic.csv")])
    assert text.exit_code == 0 and "attainment" in text.output


def test_evaluate_cli_bad_input_exits_2(tmp_path, tiny_run):
    bad = tmp_path / "bad.csv"
    bad.write_text("unit_id,month,sales\nU1,2027-01,-3\n")
    runner = CliRunner()
    result = runner.invoke(main, ["evaluate", str(tiny_run), str(bad),
                                  "--reports-dir", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert f"{bad}, row 2, column 'sales', value '-3'" in result.output
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").rglob("evaluation.*"))
    assert runner.invoke(main, ["evaluate", "--help"]).exit_code == 0
