"""Our own plan checker: re-derives every requirement from the plan's tables and the scenario.

It trusts nothing the optimiser computed: loads, connectivity, costs and quota sums are recomputed
from the assignment table, the rep table and the scenario. A violated plan raises
:class:`PlanCheckError`; it is never written as a success.
"""

from __future__ import annotations

import networkx as nx
import pandas as pd

from allocator.exceptions import PlanCheckError
from allocator.plan import Plan, total_cents
from allocator.sizing import economics

REL_TOL = 1e-7


def check_plan(plan: Plan) -> list[str]:
    """All violations of the plan (an empty list when it is sound)."""
    scenario = plan.scenario
    s = scenario.settings
    problems: list[str] = []
    units = scenario.units
    table = plan.units

    # each unit exactly once
    ids = table["unit_id"]
    if ids.duplicated().any():
        problems.append(f"unit {ids[ids.duplicated()].iloc[0]} is assigned more than once")
    missing = set(units["unit_id"]) - set(ids)
    if missing:
        problems.append(f"{len(missing)} unit(s) unassigned, e.g. {sorted(missing)[0]}")
    territories = plan.territories.set_index("territory_id")
    unknown = set(table["territory_id"]) - set(territories.index)
    if unknown:
        problems.append(f"units assigned to unknown territory {sorted(unknown)[0]}")
    if problems:
        return problems

    table = table.set_index("unit_id").loc[units["unit_id"]]
    assigned = table["territory_id"].to_numpy()

    # head count, reps and hire places
    reps = plan.reps
    headcount = len(reps)
    bounds = s.strategy.headcount
    if not bounds.min <= headcount <= bounds.max:
        problems.append(f"head count {headcount} outside [{bounds.min}, {bounds.max}]")
    existing = reps[reps["kind"] == "existing"]["rep_id"]
    if existing.duplicated().any() or not set(existing) <= set(scenario.reps["rep_id"]):
        problems.append("an existing rep is used twice or is not in the reps table")
    if s.reps is not None and s.reps.lock == "keep" and len(existing) != len(scenario.reps):
        problems.append("reps.lock is 'keep' but some existing reps were let go")
    room = dict(zip(units["unit_id"].to_numpy()[scenario.sites["unit"]], scenario.sites["max_hires"]))
    hires = reps[reps["kind"] == "hire"].groupby("home_unit").size()
    for site, count in hires.items():
        if count > room.get(site, 0):
            problems.append(f"{count} hires at {site}, which has room for {room.get(site, 0)}")
    team = s.alignment.max_reps_per_territory
    crowded = territories.index[territories["n_reps"] > team]
    if len(crowded):
        problems.append(f"territory {crowded[0]} has {territories.loc[crowded[0], 'n_reps']} reps;"
                        f" alignment.max_reps_per_territory is {team}")
    n_reps = reps.groupby("territory_id").size().reindex(territories.index).fillna(0)
    if (n_reps != territories["n_reps"]).any() or (n_reps < 1).any():
        problems.append("territory rep counts disagree with the rep table or a territory has no rep")
        return problems

    # balance of every measure, per rep, against the mean per rep
    for b in s.alignment.balance:
        values = units[b.measure].to_numpy(float)
        load = pd.Series(values).groupby(assigned).sum().reindex(territories.index).fillna(0.0)
        mean = values.sum() / headcount
        index = load / territories["n_reps"] / mean
        worst = (index - 1).abs().idxmax()
        if abs(index[worst] - 1) > b.tolerance * (1 + REL_TOL) + REL_TOL:
            problems.append(
                f"territory {worst}: {b.measure} per rep is {index[worst]:.4f} x the mean, "
                f"outside ±{b.tolerance:.1%}")

    # contiguity: each territory is connected and holds its site; locks hold
    if s.alignment.contiguity:
        graph = nx.Graph()
        graph.add_nodes_from(range(len(units)))
        graph.add_edges_from(map(tuple, scenario.edges))
        position = {u: i for i, u in enumerate(units["unit_id"])}
        for tid, members in pd.Series(range(len(units))).groupby(assigned):
            sub = graph.subgraph(members.to_numpy())
            if not nx.is_connected(sub):
                parts = nx.number_connected_components(sub)
                problems.append(f"territory {tid} is not contiguous ({parts} parts)")
            site = position[territories.loc[tid, "site_unit"]]
            if assigned[site] != tid:
                problems.append(f"territory {tid} does not contain its site {units['unit_id'][site]}")
    rep_territory = dict(zip(reps["rep_id"], reps["territory_id"]))
    for uid, lock, tid in zip(units["unit_id"], units["lock"], assigned):
        if lock and rep_territory.get(lock) != tid:
            problems.append(f"unit {uid} is locked to rep {lock} but lies in {tid}")

    # budget: recompute people cost from the scenario, travel from distances
    econ = economics(scenario)
    people = (scenario.reps.set_index("rep_id").loc[existing, "annual_cost"].sum()
              + (headcount - len(existing)) * econ.hire_cost
              + (len(scenario.reps) - len(existing)) * econ.release_cost
              + econ.managers(headcount) * econ.manager_cost)
    travel = float(table["travel_cost"].sum())
    if abs(people + travel - plan.costs["total"]) > 1e-6 * max(1.0, plan.costs["total"]):
        problems.append(f"cost {plan.costs['total']:,.2f} disagrees with the recomputed "
                        f"{people + travel:,.2f}")
    if s.strategy.budget is not None and people + travel > s.strategy.budget * (1 + REL_TOL):
        problems.append(f"cost {people + travel:,.0f} exceeds the budget {s.strategy.budget:,.0f}")

    # quotas add up to the target (to the cent) at every level
    target_cents = round(scenario.target_sales() * s.strategy.over_assignment * 100)
    if total_cents(plan.territories["quota"]) != target_cents:
        problems.append(f"territory quotas add up to {total_cents(plan.territories['quota']) / 100:,.2f}"
                        f", not the target {target_cents / 100:,.2f}")
    if total_cents(reps["quota"]) != target_cents:
        problems.append("rep quotas do not add up to the target")
    months = plan.quotas.drop(columns=["rep_id", "territory_id", "annual"])
    for row, month_sum in zip(plan.quotas.itertuples(), months.to_numpy(), strict=True):
        if total_cents(month_sum) != round(row.annual * 100):
            problems.append(f"monthly quotas of {row.rep_id} do not add up to the annual quota")
            break
    return problems


def assert_plan(plan: Plan) -> None:
    violations = check_plan(plan)
    if violations:
        raise PlanCheckError(violations)
