"""Properties over random small scenarios (hypothesis, derandomized so every run is the same).

Valid: a few units on a small grid with random workloads and potentials, one to three existing
reps and one or two hire sites at random units. A head count of one is always possible (one
territory holds the whole connected grid, and the budget pays for it), so the solve must return
a plan, and every plan must pass the engine's own checker.

Invalid: the same scenarios with one table cell replaced by arbitrary text. Loading either
accepts it as what it says (a finite number where a number belongs) or refuses it with an
``InputError`` naming the file, the row, the column and the value: never another exception.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import pytest

from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

from allocator.checker import check_plan
from allocator.diagnose import diagnose_specification
from allocator.exceptions import InputError
from allocator.scenario import load_scenario
from allocator.solve import solve
from conftest import write_scenario
from test_malformed import read_rows, write_rows

PROPERTY_SETTINGS = settings(derandomize=True, database=None, deadline=None,
                             suppress_health_check=[HealthCheck.too_slow])


@st.composite
def small_scenarios(draw) -> dict:
    """Keyword arguments of :func:`conftest.write_scenario` for a random small valid scenario."""
    rows = draw(st.integers(1, 3))
    cols = draw(st.integers(2, 4))
    n = rows * cols
    units = [f"U{k}" for k in range(1, n + 1)]
    workload = draw(st.lists(st.integers(100, 800), min_size=n, max_size=n))
    potential = draw(st.lists(st.integers(200_000, 2_000_000), min_size=n, max_size=n))
    homes = draw(st.lists(st.sampled_from(units), min_size=1, max_size=min(3, n), unique=True))
    reps = [{"rep_id": f"R{k + 1}", "home_unit": home,
             "annual_cost": draw(st.integers(60_000, 120_000)),
             "capacity_hours": draw(st.sampled_from([1200, 1600, 2000]))}
            for k, home in enumerate(homes)]
    site_units = draw(st.lists(st.sampled_from(units), min_size=1, max_size=2, unique=True))
    sites = [(u, draw(st.integers(1, 2))) for u in site_units]
    places = len(reps) + sum(h for _, h in sites)
    tolerance = draw(st.sampled_from([0.2, 0.3, 0.5]))
    team = draw(st.sampled_from([3, 6]))  # at most three people share a site here
    return dict(rows=rows, cols=cols, workload=workload, potential=potential, reps=reps,
                sites=sites, settings={
                    "strategy": {"budget": 2_000_000, "headcount": {"min": 1, "max": places}},
                    "reps": {"release_cost": 5000},
                    "alignment": {"balance": [{"measure": "workload", "tolerance": tolerance}],
                                  "max_reps_per_territory": team,
                                  "contiguity": draw(st.booleans())},
                    "solver": {"time_limit": 3, "seed": draw(st.integers(0, 3))}})


# no shrinking: a failing solve is reported as drawn (shrinking re-solves hundreds of times)
@settings(PROPERTY_SETTINGS, max_examples=40, phases=[Phase.explicit, Phase.generate])
@given(spec=small_scenarios())
def test_every_plan_passes_the_checker(spec):
    with tempfile.TemporaryDirectory() as folder:
        scenario = load_scenario(write_scenario(Path(folder), **spec))
    assert diagnose_specification(scenario) == []
    result = solve(scenario)
    note(f"status {result.status}, head count {result.plan.kpis['headcount']}")
    assert result.status in {"optimal", "feasible"}
    assert check_plan(result.plan) == []
    assert result.objective <= result.bound + 1e-6 * max(1.0, abs(result.bound))
    assert 0.0 <= result.gap <= 1.0 or result.bound < 0
    assert 1 <= result.plan.kpis["headcount"] <= scenario.settings.strategy.headcount.max
    team = scenario.settings.alignment.max_reps_per_territory
    assert result.plan.territories["n_reps"].max() <= team


def test_one_rep_territories_are_one_rep(tmp_path):
    """Found by the property above with territories of one rep: a hire joins R1 at U1."""
    scenario = load_scenario(write_scenario(
        tmp_path, rows=1, cols=4, workload=[580, 133, 185, 202],
        potential=[914789, 200000, 393620, 328857],
        reps=[{"rep_id": "R1", "home_unit": "U1", "annual_cost": 60054, "capacity_hours": 1200}],
        sites=[("U1", 1)],
        settings={"strategy": {"budget": 2_000_000, "headcount": {"min": 1, "max": 2}},
                  "reps": {"release_cost": 5000},
                  "alignment": {"balance": [{"measure": "workload", "tolerance": 0.2}],
                                "max_reps_per_territory": 1, "contiguity": False},
                  "solver": {"time_limit": 3, "seed": 0}}))
    result = solve(scenario)
    assert result.plan.territories["n_reps"].max() <= 1


NUMERIC_CELLS = [("units.csv", "potential", 0.0), ("units.csv", "workload", 0.0),
                 ("units.csv", "last_year_sales", 0.0), ("units.csv", "x", None),
                 ("reps.csv", "annual_cost", 0.0), ("reps.csv", "capacity_hours", 0.0),
                 ("hire_sites.csv", "max_hires", 0.0)]
ID_CELLS = [("units.csv", "unit_id"), ("reps.csv", "rep_id"), ("reps.csv", "home_unit"),
            ("hire_sites.csv", "unit_id"), ("edges.csv", "a"), ("edges.csv", "b")]
CELL_TEXT = st.one_of(
    st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=8),
    st.sampled_from(["nan", "-inf", "1e400", "-0.5", "", " ", "1,5", "0x10", "U1", "U99"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr))


@settings(PROPERTY_SETTINGS, max_examples=150)
@given(spec=small_scenarios(), where=st.sampled_from(NUMERIC_CELLS + ID_CELLS),
       row_pick=st.integers(0, 100), text=CELL_TEXT)
def test_any_cell_text_loads_or_is_a_clean_input_error(spec, where, row_pick, text):
    with tempfile.TemporaryDirectory() as folder:
        path = write_scenario(Path(folder), **spec)
        table = path.parent / where[0]
        rows = read_rows(table)
        row = 2 + row_pick % (len(rows) - 1)
        column = where[1]
        rows[row - 1][rows[0].index(column)] = text
        write_rows(table, rows)
        try:
            scenario = load_scenario(path)
        except InputError as err:
            message = str(err)
            assert err.file is not None and Path(err.file).name in message
            assert err.file.endswith(".csv") or err.file.endswith(".yaml")
            if err.row is not None:
                assert f"row {err.row}" in message
            if err.column is not None:
                assert f"'{err.column}'" in message
            if Path(err.file).name == where[0] and err.column == column and err.value is not None:
                assert err.row == row  # the break is named where it was made
            return
    # accepted: then the text really was what the column holds
    index = row - 2
    if where in NUMERIC_CELLS:
        value = float(text)  # what was accepted as a number is one to Python too
        assert math.isfinite(value)
        if where[2] is not None:
            assert value >= where[2]
        if column == "x":
            assert scenario.coordinates.points[index, 0] == value
        elif where[0] == "units.csv":
            assert scenario.units[column].iloc[index] == value
        elif where[0] == "reps.csv":
            assert scenario.reps[column].iloc[index] == value
    elif where == ("units.csv", "unit_id"):
        assert scenario.units["unit_id"].iloc[index] == text.strip()
