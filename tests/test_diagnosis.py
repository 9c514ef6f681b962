"""Infeasible scenarios are explained in their own terms, before any solving.

The default scenario (3,108 counties) is made infeasible two ways: a budget that cannot pay the
minimum head count, and territories of one rep while some counties need more than one rep's
workload. Each diagnosis line is checked against the numbers it claims, recomputed here from the
scenario's own tables and the sizing bounds, not against remembered figures.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from allocator.cli import main
from allocator.diagnose import (affordable_headcount, check_specification,
                                cheapest_people_cost, diagnose_specification, money)
from allocator.exceptions import InfeasibleError
from allocator.scenario import load_scenario
from allocator.sizing import size_bounds
from conftest import ROOT

DEFAULT = ROOT / "scenarios" / "us_counties.yaml"
BUDGET_LINE = re.compile(r"the budget of (\S+) pays for at most (\d+) reps; "
                         r"the minimum head count is (\d+)")
HEAVY_LINE = re.compile(r"unit (\S+) alone has ([\d.]+) × the largest allowed (\S+) "
                        r"per (rep|territory of \d+ reps)")


@pytest.fixture(scope="module")
def default():
    return load_scenario(DEFAULT)


@pytest.fixture(scope="module")
def poor_default(default):
    """The default scenario with a budget of 4.0M and at least 26 reps."""
    return default.with_settings(strategy={"budget": 4.0e6, "headcount": {"min": 26, "max": 200}})


def test_default_scenario_has_no_diagnosis(default, texas):
    """No false alarm: the shipped scenarios solve, so nothing is diagnosed."""
    assert diagnose_specification(default) == []
    assert diagnose_specification(texas) == []
    check_specification(default)


def test_budget_below_minimum_head_count(poor_default):
    with pytest.raises(InfeasibleError) as caught:
        check_specification(poor_default)
    assert caught.value.exit_code == 3
    matches = [BUDGET_LINE.fullmatch(line) for line in caught.value.diagnosis]
    found = [m for m in matches if m]
    assert len(found) == 1, caught.value.diagnosis
    budget, affordable, minimum = found[0].groups()
    assert (budget, minimum) == ("4.0M", "26")
    assert str(caught.value).count(found[0].group(0)) == 1


def test_affordable_head_count_is_exact(poor_default):
    """'pays for at most X reps': X reps are affordable by the sizing bounds, X + 1 are not."""
    line = next(filter(None, map(BUDGET_LINE.fullmatch, diagnose_specification(poor_default))))
    affordable = int(line.group(2))
    assert affordable == affordable_headcount(poor_default)
    assert 0 < affordable < 26

    def sized(n: int):
        variant = poor_default.with_settings(strategy={"headcount": {"min": n, "max": n}})
        (bound,) = size_bounds(variant)
        return bound

    assert sized(affordable).feasible
    assert sized(affordable).people_cost <= 4.0e6
    over = sized(affordable + 1)
    assert not over.feasible and over.people_cost > 4.0e6 and "budget" in over.reason


def test_budget_breakdown_adds_up(poor_default):
    """The second line shows what the minimum head count costs at least, and of what."""
    cost, kept = cheapest_people_cost(poor_default, 26)
    lines = diagnose_specification(poor_default)
    breakdown = next(line for line in lines if line.startswith("26 reps cost at least"))
    assert money(cost) in breakdown and f"{kept} existing reps kept" in breakdown
    assert cost > 4.0e6
    released = len(poor_default.reps) - kept
    if released:
        assert f"{released} reps released" in breakdown


def write_variant(tmp_path: Path, changes: dict) -> Path:
    """The default scenario file with some settings changed, its tables found where they are."""
    data = yaml.safe_load(DEFAULT.read_text(encoding="utf-8"))
    for section, values in changes.items():
        data[section].update(values)
    folder = DEFAULT.parent
    data["units"]["table"] = str(folder / data["units"]["table"])
    data["units"]["geometry"]["file"] = str(folder / data["units"]["geometry"]["file"])
    data["reps"]["table"] = str(folder / data["reps"]["table"])
    data["hiring"]["sites"]["table"] = str(folder / data["hiring"]["sites"]["table"])
    path = tmp_path / "poor.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def poor_cli(tmp_path_factory):
    """``allocator solve`` of the 4.0M variant: (models dir, CLI result)."""
    folder = tmp_path_factory.mktemp("poor")
    path = write_variant(folder, {"strategy": {"budget": 4.0e6,
                                               "headcount": {"min": 26, "max": 200}}})
    models = folder / "models"
    result = CliRunner().invoke(main, ["solve", str(path), "--models-dir", str(models),
                                       "--time-limit", "30"])
    return models, result


def test_cli_exits_3_before_any_solving(poor_cli):
    models, result = poor_cli
    assert result.exit_code == 3, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert "budget" in result.output and "the minimum head count is 26" in result.output
    # progress lines 'N=..' appear once a head count is planned: the diagnosis came first
    assert not re.search(r"^N=\d+", result.output, flags=re.MULTILINE), result.output
    assert not models.exists() or not any(models.rglob("result.json"))


def test_cli_prints_the_diagnosis(poor_cli, poor_default):
    _, result = poor_cli
    for line in diagnose_specification(poor_default):
        assert line in result.output


def test_unit_heavier_than_one_rep(default):
    """Territories of one rep: the counties heavier than (1 + tolerance) x mean are named."""
    single = default.with_settings(alignment={"max_reps_per_territory": 1})
    with pytest.raises(InfeasibleError) as caught:
        check_specification(single)
    lines = caught.value.diagnosis
    heavy = [m for m in map(HEAVY_LINE.match, lines) if m]
    assert heavy, lines
    # recompute: the minimum head count is payable, so it gives the largest allowance
    assert not any(BUDGET_LINE.fullmatch(line) for line in lines)
    minimum = single.settings.strategy.headcount.min
    tolerance = single.settings.alignment.balance[0].tolerance
    workload = single.units.set_index("unit_id")["workload"]
    allowed = (1 + tolerance) * workload.sum() / minimum
    too_heavy = workload[workload > allowed].sort_values(ascending=False)
    assert len(too_heavy) >= 1
    assert [m.group(1) for m in heavy] == list(too_heavy.index[:5])
    for m in heavy:
        ratio = workload[m.group(1)] / allowed
        shown = f"{ratio:.1f}" if ratio >= 1.1 else f"{ratio:.2f}"
        assert (m.group(2), m.group(3), m.group(4)) == (shown, "workload", "rep")
    if len(too_heavy) > 5:
        assert f"{len(too_heavy) - 5} more units exceed it too" in lines
    # the same county fits a team territory of the default size
    assert not any(HEAVY_LINE.match(line) for line in diagnose_specification(default))


# --- tiny scenarios: one clash each -------------------------------------------------------------

def test_tiny_heavy_unit_in_team_territories(make_scenario):
    # total workload 11,000, at least 3 reps: a team of 2 may carry 1.2 x 2 x 11,000 / 3 = 8,800
    path = make_scenario(workload=[9000, 400, 400, 400, 400, 400],
                         settings={"strategy": {"budget": 5e6, "headcount": {"min": 3, "max": 3}},
                                   "alignment": {"max_reps_per_territory": 2}})
    lines = diagnose_specification(load_scenario(path))
    assert lines == [f"unit U1 alone has {9000 / 8800:.2f} × the largest allowed workload per "
                     "territory of 2 reps (9,000.0 against at most 8,800.0 with 3 reps and "
                     "tolerance ±20%)"]


def test_tiny_not_enough_people(make_scenario):
    path = make_scenario(settings={"strategy": {"budget": 5e6, "headcount": {"min": 5, "max": 6}}})
    lines = diagnose_specification(load_scenario(path))
    assert "at most 3 reps can be staffed (1 existing reps and 2 hire places); the minimum " \
           "head count is 5" in lines


def test_tiny_locked_reps_above_maximum(make_scenario):
    path = make_scenario(reps=[{"rep_id": "R1", "home_unit": "U1", "annual_cost": 90000},
                               {"rep_id": "R2", "home_unit": "U6", "annual_cost": 90000}],
                         settings={"reps": {"lock": "keep"},
                                   "strategy": {"headcount": {"min": 1, "max": 1}}})
    lines = diagnose_specification(load_scenario(path))
    assert any(line.startswith("2 existing reps must be kept") and "maximum head count is 1"
               in line for line in lines), lines


def test_tiny_more_territories_than_bases(make_scenario):
    # four one-rep territories, but only U1 (R1's home), U3 and U6 can be a base
    path = make_scenario(sites=[("U3", 5), ("U6", 5)],
                         settings={"strategy": {"budget": 5e6, "headcount": {"min": 4, "max": 4}},
                                   "alignment": {"max_reps_per_territory": 1}})
    lines = diagnose_specification(load_scenario(path))
    assert any("4 reps need at least 4 territories" in line and "only 3 units" in line
               for line in lines), lines


def test_tiny_solvable_scenario_has_no_diagnosis(make_scenario):
    assert diagnose_specification(load_scenario(make_scenario())) == []


@pytest.mark.parametrize("amount, text", [(4.0e6, "4.0M"), (3.96e7, "39.6M"), (182000, "182K"),
                                          (1.25e9, "1.2B"), (950, "950"), (0, "0")])
def test_money(amount, text):
    assert money(amount) == text

