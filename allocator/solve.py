"""``solve``: from a scenario to a checked, optimised plan with its status, bound and gap.

The search runs over head counts. For every head count ``N`` the sizing bound ``UB(N)`` (pooled
response, cheapest people) is known at once; head counts are visited best bound first and each
gets a plan:

1. choose the existing reps worth keeping and place the hires (weighted k-means on hire sites);
2. align: balanced LP over pruned pairs (HiGHS), rounding, contiguity repair, local search; then
   alternate with a location step that moves hires to the best site of their territory (Hess);
3. improve with the chosen solver (CP-SAT, HiGHS or CBC): the whole integer program when it is
   small, otherwise exact re-solves of a few adjacent territories at a time (LNS);
4. bound the head count by its LP relaxation over all pairs (column generation).

Visiting stops when every head count left has ``UB(N)`` below the best plan (within the gap).
The reported bound is the largest bound over all head counts, so the gap covers the sizing too.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from allocator.alignment import (AlignmentProblem, LocalSearch, Staffing, align, choose_reps,
                                 place_hires, relocate_hires)
from allocator.bounds import headcount_lp_bound
from allocator.checker import assert_plan
from allocator.exceptions import InfeasibleError, NoSolutionError
from allocator.plan import Plan, make_plan
from allocator.scenario import Scenario
from allocator.sizing import ResponseCurve, economics, response_curve, size_bounds

Progress = Callable[[str], None]


@dataclass(frozen=True)
class SolveResult:
    """Why the search stopped, kept apart from how good the answer is."""

    status: str  # optimal | feasible | infeasible | no_solution
    termination: str  # gap_reached | time_limit | search_complete
    objective: float | None
    bound: float | None
    gap: float | None
    runtime_s: float
    solver: str
    seed: int
    plan: Plan | None
    sizing: pd.DataFrame
    binding: str
    log: list[str] = field(default_factory=list)


def solve(scenario: Scenario, *, solver: str | None = None, time_limit: float | None = None,
          gap: float | None = None, seed: int | None = None, threads: int | None = None,
          progress: Progress | None = None) -> SolveResult:
    """Optimise organisation size, territories and quotas of ``scenario``.

    Keyword settings override the scenario's ``solver`` section.
    """
    overrides = {k: v for k, v in dict(name=solver, time_limit=time_limit, gap=gap, seed=seed,
                                        threads=threads).items() if v is not None}
    if overrides:
        scenario = scenario.with_settings(solver=overrides)
    spec = scenario.settings.solver
    say = progress or (lambda message: None)
    started = time.perf_counter()
    deadline = started + spec.time_limit
    log: list[str] = []

    def note(message: str) -> None:
        log.append(message)
        say(message)

    curve = response_curve(scenario)
    bounds = size_bounds(scenario, curve)
    feasible = [b for b in bounds if b.feasible]
    if not feasible:
        raise InfeasibleError("no head count in the allowed range can be staffed",
                              diagnosis=diagnose_sizing(scenario, bounds))
    problem = AlignmentProblem.from_scenario(scenario)
    rng = np.random.default_rng(spec.seed)
    order = sorted(feasible, key=lambda b: (-b.value_bound, b.headcount))
    best: Plan | None = None
    evaluated: dict[int, dict] = {}
    for b in order:
        incumbent = best.objective() if best is not None else -math.inf
        if b.value_bound <= incumbent + spec.gap * abs(incumbent):
            continue
        if time.perf_counter() > deadline and best is not None:
            break
        remaining = deadline - time.perf_counter()
        plan, info = plan_for_headcount(scenario, problem, curve, b, rng, remaining, note)
        lp = headcount_lp_bound(scenario, problem, b.headcount, curve,
                                time_limit=max(1.0, 0.15 * remaining))
        info["lp_bound"] = lp.value
        info["lp_exact"] = lp.exact
        evaluated[b.headcount] = info
        if plan is not None:
            note(f"N={b.headcount}: objective {plan.objective():,.0f}, bound {min(lp.value, b.value_bound):,.0f}")
            if best is None or plan.objective() > best.objective():
                best = plan
    runtime = time.perf_counter() - started
    sizing = sizing_table(bounds, evaluated)
    if best is None:
        raise NoSolutionError("no plan found within the time limit; raise solver.time_limit or "
                              "loosen alignment.balance tolerance")
    assert_plan(best)
    bound = float(sizing["bound"].max())
    objective = best.objective()
    rel_gap = max(0.0, (bound - objective) / max(abs(bound), 1e-9))
    searched_all = all(row.bound <= objective + spec.gap * abs(objective) or row.headcount in evaluated
                       for row in sizing.itertuples())
    status = "optimal" if rel_gap <= 1e-9 else "feasible"
    termination = "gap_reached" if rel_gap <= spec.gap else (
        "search_complete" if searched_all else "time_limit")
    return SolveResult(status, termination, objective, bound, rel_gap, runtime, spec.name,
                       spec.seed, best, sizing, binding_constraint(scenario, best, bounds), log)


def plan_for_headcount(scenario: Scenario, problem: AlignmentProblem, curve: ResponseCurve,
                       bound, rng: np.random.Generator, time_left: float,
                       note: Progress) -> tuple[Plan | None, dict]:
    s = scenario.settings
    econ = economics(scenario)
    marginal = curve.marginal(bound.hours)
    kept = choose_reps(problem, bound.kept, marginal, s.strategy.margin, econ.rep_hours,
                       econ.rep_cost, econ.release_cost)
    staffing = place_hires(problem, kept, bound.hires, rng)
    assignment, search = align(problem, staffing, s.alignment.candidates, s.alignment.contiguity)
    best_travel = search.travel() if search.violation() < 1e-9 else math.inf
    best_pair = (staffing, assignment, search)
    for _ in range(4):  # location-allocation rounds
        moved = relocate_hires(problem, best_pair[0], best_pair[1])
        if np.array_equal(moved.sites, best_pair[0].sites):
            break
        assignment, search = align(problem, moved, s.alignment.candidates, s.alignment.contiguity)
        travel = search.travel() if search.violation() < 1e-9 else math.inf
        if travel < best_travel - 1e-9:
            best_travel, best_pair = travel, (moved, assignment, search)
        else:
            break
    staffing, assignment, search = best_pair
    info = {"violation": search.violation(), "travel": search.travel()}
    if search.violation() > 1e-9:
        note(f"N={bound.headcount}: balance not reached (violation {search.violation():.3g})")
        return None, info
    plan = make_plan(scenario, problem, staffing, assignment)
    if plan.costs["total"] > s.strategy.budget:
        note(f"N={bound.headcount}: over budget after travel")
        return None, info
    info["objective"] = plan.objective()
    return plan, info


def sizing_table(bounds, evaluated: dict[int, dict]) -> pd.DataFrame:
    rows = []
    for b in bounds:
        info = evaluated.get(b.headcount, {})
        lp = info.get("lp_bound", math.inf)
        rows.append(dict(headcount=b.headcount, feasible=b.feasible, kept=b.kept, hires=b.hires,
                         sizing_bound=b.value_bound, lp_bound=lp if info else None,
                         bound=min(b.value_bound, lp), objective=info.get("objective"),
                         reason=b.reason))
    return pd.DataFrame(rows)


def binding_constraint(scenario: Scenario, plan: Plan, bounds) -> str:
    """Which requirement stops the organisation from growing (or shrinking) further."""
    s = scenario.settings
    n = plan.kpis["headcount"]
    by_n = {b.headcount: b for b in bounds}
    up = by_n.get(n + 1)
    if n >= s.strategy.headcount.max:
        return f"headcount.max ({s.strategy.headcount.max}) binds"
    if up is not None and not up.feasible and "budget" in up.reason:
        return (f"budget binds: {n + 1} reps would cost {up.reason.split('cost at least ')[-1]}"
                if "cost at least" in up.reason else f"budget binds ({up.reason})")
    if s.strategy.budget - plan.costs["total"] < economics(scenario).hire_cost:
        return (f"budget binds: {s.strategy.budget - plan.costs['total']:,.0f} left, less than "
                f"one more hire costs")
    if n <= s.strategy.headcount.min:
        return f"headcount.min ({s.strategy.headcount.min}) binds"
    return ("diminishing returns: one more rep would add less contribution than cost "
            f"(budget {plan.kpis['budget_used']:.1%} used)")


def diagnose_sizing(scenario: Scenario, bounds) -> list[str]:
    """Why no head count works, in the scenario's own terms."""
    s = scenario.settings
    econ = economics(scenario)
    lines = []
    cheapest_rep = min([econ.hire_cost, *econ.rep_cost]) if len(econ.rep_cost) else econ.hire_cost
    n_min = s.strategy.headcount.min
    people = [b for b in bounds if "budget" in b.reason]
    if people:
        affordable = 0
        for n in range(1, s.strategy.headcount.max + 1):
            cost = n * cheapest_rep + econ.managers(n) * econ.manager_cost
            if cost > s.strategy.budget:
                break
            affordable = n
        lines.append(f"the budget of {s.strategy.budget:,.0f} pays for at most {affordable} reps; "
                     f"the minimum head count is {n_min}")
    other = {b.reason for b in bounds if b.reason and "budget" not in b.reason}
    lines.extend(sorted(other)[:3])
    return lines or ["no head count is feasible"]
