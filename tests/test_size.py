"""``allocator size``: the sizing curve, its best point against ``solve``'s own choice."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from allocator.cli import main
from allocator.scenario import load_scenario
from allocator.sizing_curve import default_headcounts, parse_headcounts
from allocator.solve import solve
from test_batch import rendered

#: A 3 x 3 grid with a steep response: contribution peaks inside the head-count range 1..6, and
#: the budget pays for at most 5 reps (6 reps cost about 725,000).
SIZING_SCENARIO = dict(rows=3, cols=3, sites=[("U3", 2), ("U7", 2), ("U9", 2), ("U5", 1)],
                       settings={"strategy": {"budget": 650_000, "headcount": {"min": 1,
                                                                             "max": 6}},
                                 "response": {"half": 0.3}})


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_headcount_ranges():
    assert parse_headcounts("40:120:5") == list(range(40, 121, 5))
    assert parse_headcounts("3:5") == [3, 4, 5]
    assert parse_headcounts("8, 4,6") == [4, 6, 8]
    assert default_headcounts(60, 200) == list(range(60, 201, 10))
    for bad in ("a:b", "10:5", "0:3", "1:2:0", "1:2:3:4", ""):
        result = run("size", "unused.yaml", "--headcount", bad)
        assert result.exit_code == 2, (bad, result.output)
        assert "--headcount" in result.output and "Traceback" not in result.output


def test_best_point_is_the_head_count_solve_picks(browser, make_scenario, tmp_path):
    path = make_scenario(**SIZING_SCENARIO)
    chosen = solve(load_scenario(path))
    picked = int(chosen.plan.kpis["headcount"])
    # the pick is proven: every other head count's bound is below the plan found
    others = chosen.sizing[chosen.sizing["headcount"] != picked]
    assert (others["bound"].dropna() < chosen.objective).all()
    assert 1 < picked < 5, "the scenario should peak inside the range"

    out = tmp_path / "sizing"
    result = run("size", path, "--headcount", "1:6", "--jobs", 2, "--models-dir",
                 tmp_path / "models", "--out", out, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["best_headcount"] == picked
    assert summary["best"]["contribution"] == pytest.approx(chosen.objective, rel=1e-6)

    curve = pd.read_csv(out / "curve.csv")
    assert curve["headcount"].tolist() == [1, 2, 3, 4, 5, 6]
    planned = curve[curve["status"].isin(["optimal", "feasible"])]
    assert planned["headcount"].tolist() == [1, 2, 3, 4, 5]
    assert planned["objective"].max() == pytest.approx(chosen.objective, rel=1e-6)
    # the chart's story: more reps, more sales and more cost, within the budget
    assert planned["expected_sales"].is_monotonic_increasing
    assert planned["cost"].is_monotonic_increasing and (planned["cost"] <= 650_000).all()
    over = curve[curve["headcount"] == 6].iloc[0]
    assert over["status"] == "no_plan" and "budget" in over["error"]
    # no plan is better than its own bound
    assert (planned["objective"] <= planned["bound"] * (1 + 1e-9)).all()

    png = (out / "sizing.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    page = rendered(browser, out / "sizing.html")
    assert page["external_requests"] == []
    assert len(page["images"]) == 1 and page["images"][0] > 500  # the inlined chart shows
    assert page["rows"] == 6 and f"Best head count {picked}" in page["text"]
