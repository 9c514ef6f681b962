"""The integer program for a fixed head count, one function per constraint family.

Sets and data: units ``i``; open-able territories ``t``, each with a site unit ``r_t``; existing
reps ``k`` with home site ``t(k)``; pairs ``(i, t)`` a unit may join (pruned to its nearest
sites); arcs ``(i, j)`` of the adjacency graph; balance measures ``a_im`` with means
``omega_m = A_m / N`` and tolerances ``tau_m``; travel cost ``c_it``; effective hours ``h_k`` and
``h_H`` (a hire); costs ``C_k`` and ``C_H``; tangents ``(E_j, S_j, lambda_j)`` of the pooled
response curve.

Variables: ``x_it`` binary (unit ``i`` in territory ``t``), ``keep_k`` binary, ``hire_t`` integer,
``open_t`` binary, ``f_ijt >= 0`` contiguity flow, ``sigma`` expected sales (pooled bound).

The same families build the sub-problems of the large-neighbourhood search, where the staffing is
fixed (``n_t`` and ``open_t`` are numbers) and only some units are free.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pulp

from allocator.alignment import AlignmentProblem, Staffing
from allocator.response import conjugate
from allocator.sizing import ResponseCurve, economics


@dataclass
class Mip:
    """A PuLP model with the handles needed to read a plan back and to hint a start."""

    model: pulp.LpProblem
    x: dict[tuple[int, int], pulp.LpVariable]
    territories: list[int]
    units: list[int]
    keep: dict[int, pulp.LpVariable] = field(default_factory=dict)
    hire: dict[int, pulp.LpVariable] = field(default_factory=dict)
    open: dict[int, pulp.LpVariable] = field(default_factory=dict)
    flow: dict[tuple[int, int, int], pulp.LpVariable] = field(default_factory=dict)
    sigma: pulp.LpVariable | None = None


def assignment_constraints(mip: Mip, pairs_of: dict[int, list[int]]) -> None:
    """Every free unit lies in exactly one territory: ``sum_t x_it = 1``."""
    for i, terrs in pairs_of.items():
        mip.model += pulp.lpSum(mip.x[i, t] for t in terrs) == 1, f"assign_{i}"


def site_constraints(mip: Mip, site_unit: dict[int, int], open_: dict) -> None:
    """Only open territories take units, and an open territory holds its own site:
    ``x_it <= open_t`` and ``x_{r_t} t = open_t``."""
    for (i, t), var in mip.x.items():
        if i == site_unit[t]:
            mip.model += var == open_[t], f"site_{t}"
        elif isinstance(open_[t], pulp.LpVariable):
            mip.model += var <= open_[t], f"open_{i}_{t}"


def staffing_constraints(mip: Mip, n_reps: dict, open_: dict, headcount: int,
                         max_per_territory: int) -> None:
    """``open_t <= n_t <= n_max open_t`` and ``sum_t n_t = N``,
    where ``n_t = sum_{k based at t} keep_k + hire_t``."""
    for t in mip.territories:
        mip.model += n_reps[t] >= open_[t], f"staff_lo_{t}"
        mip.model += n_reps[t] <= max_per_territory * open_[t], f"staff_hi_{t}"
    mip.model += pulp.lpSum(n_reps[t] for t in mip.territories) == headcount, "headcount"


def balance_constraints(mip: Mip, pairs_of: dict[int, list[int]], measures: np.ndarray,
                        lower: np.ndarray, upper: np.ndarray, n_reps: dict,
                        fixed_load: np.ndarray | None = None) -> None:
    """For every territory and measure ``m``:
    ``(1 - tau_m) omega_m n_t <= sum_i a_im x_it <= (1 + tau_m) omega_m n_t``.

    ``lower``/``upper`` hold ``(1 -/+ tau_m) omega_m`` per rep; ``fixed_load`` adds the load of
    units that are not free in a sub-problem.
    """
    members: dict[int, list[int]] = {t: [] for t in mip.territories}
    for i, terrs in pairs_of.items():
        for t in terrs:
            members[t].append(i)
    for t in mip.territories:
        for m in range(measures.shape[1]):
            load = pulp.lpSum(float(measures[i, m]) * mip.x[i, t] for i in members[t])
            base = 0.0 if fixed_load is None else float(fixed_load[t, m])
            mip.model += load + base <= float(upper[m]) * n_reps[t], f"bal_hi_{t}_{m}"
            mip.model += load + base >= float(lower[m]) * n_reps[t], f"bal_lo_{t}_{m}"


def contiguity_constraints(mip: Mip, pairs_of: dict[int, list[int]], adjacency: list[np.ndarray],
                           site_unit: dict[int, int]) -> None:
    """Single-commodity flow from each territory's site (Shirabe 2009):

    every member other than the site consumes one unit of flow that reaches it only through
    members of the same territory, so each territory is connected:
    ``sum_j f_jit - sum_j f_ijt = x_it`` (``i != r_t``), ``f_ijt <= U_t x_it``,
    ``f_ijt <= U_t x_jt`` with ``U_t`` the number of units that may join ``t``.
    """
    members: dict[int, set[int]] = {t: set() for t in mip.territories}
    for i, terrs in pairs_of.items():
        for t in terrs:
            members[t].add(i)
    for t in mip.territories:
        inside = members[t]
        big = len(inside)
        inflow: dict[int, list] = {i: [] for i in inside}
        outflow: dict[int, list] = {i: [] for i in inside}
        for i in inside:
            for j in adjacency[i]:
                j = int(j)
                if j in inside and j != site_unit[t]:
                    f = pulp.LpVariable(f"f_{i}_{j}_{t}", 0, big, cat="Integer")
                    mip.flow[i, j, t] = f
                    outflow[i].append(f)
                    inflow[j].append(f)
                    mip.model += f <= big * mip.x[i, t], f"fo_{i}_{j}_{t}"
                    mip.model += f <= big * mip.x[j, t], f"fi_{i}_{j}_{t}"
        for i in inside:
            if i != site_unit[t]:
                mip.model += (pulp.lpSum(inflow[i]) - pulp.lpSum(outflow[i]) == mip.x[i, t],
                              f"flow_{i}_{t}")


def response_constraints(mip: Mip, hours_expr, curve: ResponseCurve, hours_max: float) -> None:
    """Expected sales below every tangent of the pooled response:
    ``sigma <= S_j + lambda_j (E - E_j)`` with ``E`` the plan's effective hours."""
    mip.sigma = pulp.LpVariable("sigma", 0, float(curve.sales.max()) * 1.01)
    idx = np.flatnonzero(curve.hours <= hours_max * 1.05)
    idx = np.unique(np.concatenate([idx, [min(len(curve.hours) - 1, idx.max() + 1)]]))
    for j in idx[:: max(1, len(idx) // 60)]:
        mip.model += (mip.sigma <= float(curve.sales[j]) + float(curve.slope[j])
                      * (hours_expr - float(curve.hours[j]))), f"tangent_{j}"


def budget_constraint(mip: Mip, cost_expr, budget: float) -> None:
    """People, hiring, training, releases, managers and travel within the budget."""
    mip.model += cost_expr <= budget, "budget"


def build_headcount_mip(problem: AlignmentProblem, headcount: int, curve: ResponseCurve,
                        candidates: int) -> Mip:
    """The whole integer program for head count ``N`` (staffing, alignment, sales, budget)."""
    scenario = problem.scenario
    s = scenario.settings
    econ = economics(scenario)
    sites = scenario.sites["unit"].to_numpy()
    T = list(range(len(sites)))
    site_unit = {t: int(sites[t]) for t in T}
    rep_site = {int(u): t for t, u in enumerate(sites)}
    near = scenario.coordinates.nearest(np.arange(problem.n), sites, min(candidates, len(sites)))
    pairs_of: dict[int, list[int]] = {i: sorted(set(int(t) for t in near[i])) for i in range(problem.n)}
    for t, u in site_unit.items():
        if t not in pairs_of[u]:
            pairs_of[u].append(t)
    homes = scenario.reps["home"].to_numpy()
    for i in np.flatnonzero(problem.lock_unit >= 0):
        pairs_of[int(i)] = [rep_site[int(homes[problem.lock_unit[i]])]]
    model = pulp.LpProblem(f"{scenario.name}_N{headcount}", pulp.LpMaximize)
    x = {(i, t): pulp.LpVariable(f"x_{i}_{t}", cat="Binary")
         for i, terrs in pairs_of.items() for t in terrs}
    mip = Mip(model, x, T, list(range(problem.n)))
    must_keep = s.reps is not None and s.reps.lock == "keep"
    locked = set(int(k) for k in problem.lock_unit[problem.lock_unit >= 0])
    mip.keep = {k: pulp.LpVariable(f"keep_{k}", int(must_keep or k in locked), 1, cat="Binary")
                for k in range(len(homes))}
    max_hires = scenario.sites["max_hires"].to_numpy()
    mip.hire = {t: pulp.LpVariable(f"hire_{t}", 0, int(max_hires[t]), cat="Integer") for t in T}
    mip.open = {t: pulp.LpVariable(f"open_{t}", cat="Binary") for t in T}
    n_reps = {t: mip.hire[t] + pulp.lpSum(mip.keep[k] for k in range(len(homes))
                                          if rep_site[int(homes[k])] == t) for t in T}
    assignment_constraints(mip, pairs_of)
    site_constraints(mip, site_unit, mip.open)
    staffing_constraints(mip, n_reps, mip.open, headcount, s.alignment.max_reps_per_territory)
    omega = problem.measures.sum(axis=0) / headcount
    balance_constraints(mip, pairs_of, problem.measures, (1 - problem.tolerance) * omega,
                        (1 + problem.tolerance) * omega, n_reps)
    if s.alignment.contiguity:
        contiguity_constraints(mip, pairs_of, problem.adjacency, site_unit)
    hours = (pulp.lpSum(float(econ.rep_hours[k]) * mip.keep[k] for k in mip.keep)
             + econ.hire_hours * pulp.lpSum(mip.hire.values()))
    hours_max = float(np.sort(econ.rep_hours)[::-1][:headcount].sum() + headcount * econ.hire_hours)
    response_constraints(mip, hours, curve, hours_max)
    travel = pulp.lpSum(float(problem.cost(np.array([i]), np.array([site_unit[t]]))[0]) * var
                        for (i, t), var in x.items())
    people = (pulp.lpSum(float(econ.rep_cost[k] - econ.release_cost) * mip.keep[k] for k in mip.keep)
              + econ.hire_cost * pulp.lpSum(mip.hire.values())
              + len(homes) * econ.release_cost + econ.managers(headcount) * econ.manager_cost)
    budget_constraint(mip, people + travel, s.strategy.budget)
    if s.strategy.objective == "min_cost":
        mip.model += mip.sigma >= scenario.target_sales(), "target"
        mip.model.setObjective(-(people + travel))
    else:
        mip.model.setObjective(s.strategy.margin * mip.sigma - people - travel)
    return mip


def build_subproblem(problem: AlignmentProblem, staffing: Staffing, assignment: np.ndarray,
                     territories: list[int], elastic: float | None = None,
                     prices: dict[int, float] | None = None, margin: float = 0.0) -> Mip:
    """Re-align the units of a few adjacent territories exactly, the staffing fixed.

    Objective: least travel; balance and contiguity as in the whole model. With ``elastic`` the
    balance rows get slack variables costing ``elastic`` per unit of measure (scaled to the mean
    per rep), so that a plan out of balance can be repaired step by step. With ``prices`` (each
    territory's price of an hour), a unit in territory ``t`` also earns ``margin`` times its
    conjugate value ``phi_i(lambda_t)``: the territory's sales, linearised where they stand
    (see :class:`allocator.improve.TerritorySales`).
    """
    free = np.flatnonzero(np.isin(assignment, territories))
    tset = set(territories)
    pairs_of: dict[int, list[int]] = {}
    site_unit = {t: int(staffing.sites[t]) for t in territories}
    rep_terr = {r: t for t, reps in enumerate(staffing.reps) for r in reps}
    for i in free:
        i = int(i)
        if i in site_unit.values():
            pairs_of[i] = [next(t for t, u in site_unit.items() if u == i)]
        elif problem.lock_unit[i] >= 0:
            pairs_of[i] = [rep_terr[int(problem.lock_unit[i])]]
        else:
            pairs_of[i] = sorted(tset)
    model = pulp.LpProblem("lns", pulp.LpMinimize)
    x = {(i, t): pulp.LpVariable(f"x_{i}_{t}", cat="Binary")
         for i, terrs in pairs_of.items() for t in terrs}
    mip = Mip(model, x, list(territories), [int(i) for i in free])
    n_reps = {t: int(staffing.n_reps[t]) for t in territories}
    ones = {t: 1 for t in territories}
    assignment_constraints(mip, pairs_of)
    site_constraints(mip, site_unit, ones)
    omega = problem.measures.sum(axis=0) / staffing.headcount
    # in thousandths of the mean per rep, so that integer slack (CP-SAT) stays fine-grained
    measures = 1000.0 * problem.measures / omega
    balance_constraints(mip, pairs_of, measures, 1000.0 * (1 - problem.tolerance),
                        1000.0 * (1 + problem.tolerance), n_reps)
    if problem.scenario.settings.alignment.contiguity:
        contiguity_constraints(mip, pairs_of, problem.adjacency, site_unit)
    reward: dict[tuple[int, int], float] = {}
    if prices and margin:
        units = problem.scenario.units
        members = np.array(sorted(pairs_of))
        phi = {t: conjugate(units["potential"].to_numpy(float)[members],
                            units["workload"].to_numpy(float)[members], prices[t],
                            problem.scenario.settings.response) for t in territories}
        position = {int(i): k for k, i in enumerate(members)}
        for i, terrs in pairs_of.items():
            # less each unit's least value: the same optimum with small coefficients
            least = min(phi[t][position[i]] for t in terrs)
            for t in terrs:
                reward[i, t] = margin * (phi[t][position[i]] - least)
    travel = pulp.lpSum((float(problem.cost(np.array([i]), np.array([site_unit[t]]))[0])
                         - reward.get((i, t), 0.0)) * var for (i, t), var in x.items())
    slack = []
    if elastic is not None:
        for name, row in model.constraints.items():
            if name.startswith("bal_"):
                t = int(name.split("_")[2])
                extra = pulp.LpVariable(f"slack_{name}", 0, 1000.0 * (n_reps[t] + 1))
                row.addInPlace(-extra if name.startswith("bal_hi") else extra)
                slack.append(extra)
    model.setObjective(travel + (elastic or 0.0) / 1000.0 * pulp.lpSum(slack))
    return mip


def hint_flows(mip: Mip, problem: AlignmentProblem, assignment: np.ndarray,
               site_unit: dict[int, int]) -> None:
    """Set start values of the flow variables from a BFS tree of each territory."""
    from collections import deque

    for t in mip.territories:
        members = {int(i) for i in np.flatnonzero(assignment == t) if (int(i), t) in mip.x}
        root = site_unit[t]
        if root not in members:
            continue
        parent: dict[int, int] = {root: -1}
        order = [root]
        queue = deque([root])
        while queue:
            u = queue.popleft()
            for v in problem.adjacency[u]:
                v = int(v)
                if v in members and v not in parent:
                    parent[v] = u
                    order.append(v)
                    queue.append(v)
        load = {u: 1 for u in order}
        for u in reversed(order[1:]):
            load[parent[u]] += load[u]
            var = mip.flow.get((parent[u], u, t))
            if var is not None:
                var.setInitialValue(min(load[u], var.upBound))
    for var in mip.flow.values():
        if var.varValue is None:
            var.setInitialValue(0)


def write_model(plan, path: Path) -> None:
    """Export the whole integer program of the plan's head count as MPS."""
    from allocator.sizing import response_curve

    problem = AlignmentProblem.from_scenario(plan.scenario)
    mip = build_headcount_mip(problem, int(plan.kpis["headcount"]),
                              response_curve(plan.scenario),
                              plan.scenario.settings.alignment.candidates)
    mip.model.writeMPS(str(path))
