"""The plan checker: a sound plan passes, and each deliberate break is reported by name."""

from __future__ import annotations

import dataclasses

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from allocator.alignment import AlignmentProblem, Staffing
from allocator.checker import assert_plan, check_plan
from allocator.exceptions import PlanCheckError
from allocator.plan import MONTHS, make_plan
from allocator.scenario import load_scenario
from allocator.solve import solve
from conftest import write_scenario


@pytest.fixture(scope="module")
def solved(tmp_path_factory):
    """A tiny solved plan with three territories (one existing rep, two hires) on a 2 x 3 grid."""
    path = write_scenario(tmp_path_factory.mktemp("checker"),
                          workload=[300, 400, 500, 350, 450, 400],
                          potential=[1.2e6, 0.8e6, 1.0e6, 0.9e6, 1.5e6, 0.7e6])
    result = solve(load_scenario(path), time_limit=5)
    assert result.plan.kpis["territories"] >= 2
    return result.plan


def _graph(plan) -> nx.Graph:
    graph = nx.Graph()
    graph.add_nodes_from(range(plan.scenario.n_units))
    graph.add_edges_from(map(tuple, plan.scenario.edges))
    return graph


def _move(plan, unit_id: str, territory_id: str):
    """A copy of the plan with one unit moved to another territory in the assignment table."""
    units = plan.units.copy()
    rep = plan.reps.loc[plan.reps["territory_id"] == territory_id, "rep_id"].iloc[0]
    units.loc[units["unit_id"] == unit_id, ["territory_id", "rep_id"]] = [territory_id, rep]
    return dataclasses.replace(plan, units=units)


def _sites(plan) -> set[str]:
    return set(plan.territories["site_unit"])


def test_sound_plan_passes(solved):
    assert check_plan(solved) == []
    assert_plan(solved)  # does not raise


def test_move_to_a_non_adjacent_territory_is_not_contiguous(solved):
    graph = _graph(solved)
    ids = solved.scenario.units["unit_id"].tolist()
    table = solved.units.set_index("unit_id")
    move = None
    for i, uid in enumerate(ids):
        if uid in _sites(solved):
            continue
        for tid in solved.territories["territory_id"]:
            members = [ids.index(u) for u in table.index[table["territory_id"] == tid]]
            if tid != table.loc[uid, "territory_id"] and not any(
                    graph.has_edge(i, j) for j in members):
                move = (uid, tid)
                break
        if move:
            break
    assert move is not None, "the tiny plan has no unit that can be detached"
    broken = _move(solved, *move)
    violations = check_plan(broken)
    assert any("not contiguous" in v and move[1] in v for v in violations), violations
    with pytest.raises(PlanCheckError) as caught:
        assert_plan(broken)
    assert caught.value.violations == violations


def test_move_to_an_adjacent_territory_breaks_balance(solved):
    graph = _graph(solved)
    ids = solved.scenario.units["unit_id"].tolist()
    table = solved.units.set_index("unit_id")
    tolerance = solved.scenario.settings.alignment.balance[0].tolerance
    workload = solved.scenario.units.set_index("unit_id")["workload"]
    n_reps = solved.territories.set_index("territory_id")["n_reps"]
    mean = workload.sum() / solved.kpis["headcount"]
    for uid in ids:
        if uid in _sites(solved):
            continue
        here = table.loc[uid, "territory_id"]
        neighbours = {table.loc[ids[j], "territory_id"] for j in graph.neighbors(ids.index(uid))}
        for tid in sorted(neighbours - {here}):
            broken = _move(solved, uid, tid)
            load = broken.units.groupby("territory_id")["unit_id"].apply(
                lambda u: workload.loc[list(u)].sum())
            index = load / n_reps.reindex(load.index) / mean
            if (index - 1).abs().max() > tolerance:
                violations = check_plan(broken)
                assert any("outside ±" in v and "workload per rep" in v for v in violations), \
                    violations
                return
    pytest.fail("no single move unbalances the tiny plan")


def test_site_moved_out_of_its_territory(solved):
    territories = solved.territories
    site = territories["site_unit"].iloc[0]
    other = territories["territory_id"].iloc[1]
    violations = check_plan(_move(solved, site, other))
    assert any("does not contain its site" in v and site in v for v in violations), violations


def test_duplicated_unit_row(solved):
    units = pd.concat([solved.units, solved.units.iloc[[2]]], ignore_index=True)
    violations = check_plan(dataclasses.replace(solved, units=units))
    uid = solved.units["unit_id"].iloc[2]
    assert any("more than once" in v and uid in v for v in violations), violations


def test_dropped_unit_row(solved):
    uid = solved.units["unit_id"].iloc[1]
    units = solved.units[solved.units["unit_id"] != uid].reset_index(drop=True)
    violations = check_plan(dataclasses.replace(solved, units=units))
    assert any("unassigned" in v and uid in v for v in violations), violations


def test_territory_quota_off_by_one_cent(solved):
    territories = solved.territories.copy()
    territories.loc[0, "quota"] = round(territories.loc[0, "quota"] + 0.01, 2)
    violations = check_plan(dataclasses.replace(solved, territories=territories))
    assert any("territory quotas" in v and "target" in v for v in violations), violations


def test_rep_quota_off_by_one_cent(solved):
    reps = solved.reps.copy()
    reps.loc[0, "quota"] = round(reps.loc[0, "quota"] - 0.01, 2)
    violations = check_plan(dataclasses.replace(solved, reps=reps))
    assert any("rep quotas" in v and "target" in v for v in violations), violations


def test_monthly_quota_off_by_one_cent(solved):
    quotas = solved.quotas.copy()
    quotas.loc[0, MONTHS[4]] = round(quotas.loc[0, MONTHS[4]] + 0.01, 2)
    violations = check_plan(dataclasses.replace(solved, quotas=quotas))
    rep = quotas.loc[0, "rep_id"]
    assert any("monthly quotas" in v and rep in v for v in violations), violations


def test_cost_above_budget(solved):
    budget = solved.costs["total"] - 1.0
    scenario = solved.scenario.with_settings(strategy={"budget": budget})
    violations = check_plan(dataclasses.replace(solved, scenario=scenario))
    assert any("exceeds the budget" in v for v in violations), violations
    # the same plan under its own budget is fine: only the budget changed
    assert check_plan(dataclasses.replace(
        solved, scenario=solved.scenario.with_settings(strategy={"budget": budget + 2.0}))) == []


def test_reported_cost_disagrees_with_recomputed_cost(solved):
    costs = dict(solved.costs)
    costs["total"] += 1000.0
    violations = check_plan(dataclasses.replace(solved, costs=costs))
    assert any("disagrees" in v for v in violations), violations


def test_head_count_outside_range(solved):
    headcount = int(solved.kpis["headcount"])
    scenario = solved.scenario.with_settings(
        strategy={"headcount": {"min": 1, "max": headcount - 1}})
    violations = check_plan(dataclasses.replace(solved, scenario=scenario))
    assert any(f"head count {headcount} outside" in v for v in violations), violations


def test_more_hires_than_places(solved):
    sites = solved.scenario.sites.copy()
    hires = solved.reps[solved.reps["kind"] == "hire"]
    assert len(hires), "the tiny plan has no hire"
    site = hires["home_unit"].iloc[0]
    position = solved.scenario.units["unit_id"].tolist().index(site)
    sites.loc[sites["unit"] == position, "max_hires"] = 0
    scenario = dataclasses.replace(solved.scenario, sites=sites, sha256="")
    violations = check_plan(dataclasses.replace(solved, scenario=scenario))
    assert any(f"hires at {site}" in v and "room for 0" in v for v in violations), violations


def test_released_rep_under_keep_lock(make_scenario):
    """A plan that lets an existing rep go violates ``reps.lock: keep``."""
    scenario = load_scenario(make_scenario(
        reps=[{"rep_id": "R1", "home_unit": "U1", "annual_cost": 90000},
              {"rep_id": "R2", "home_unit": "U6", "annual_cost": 90000}],
        sites=[("U3", 1)], settings={"reps": {"lock": "keep"}}))
    problem = AlignmentProblem.from_scenario(scenario)
    # R1 alone at U1 and one hire at U3; R2 (at U6) is let go
    staffing = Staffing(np.array([0, 2]), [[0], []], np.array([0, 1]))
    plan = make_plan(scenario, problem, staffing, np.array([0, 1, 1, 0, 0, 1]))
    violations = check_plan(plan)
    assert any("lock is 'keep'" in v for v in violations), violations
