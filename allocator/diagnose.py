"""Why a scenario cannot be satisfied, in its own terms, found before any solving.

Each check compares two numbers the scenario states (a budget and a head count, a unit's
workload and the most one territory may carry) and proves that no plan can meet both. The
lines read like "the budget of 4.0M pays for at most 21 reps; the minimum head count is 26" or
"unit 48201 alone has 1.4 × the largest allowed workload per rep".

:func:`check_specification` raises :class:`InfeasibleError` with every line found; it takes well
under a second on thousands of units, so it belongs at the very start of a solve.
"""

from __future__ import annotations

import math

import numpy as np

from allocator.exceptions import InfeasibleError
from allocator.scenario import Scenario
from allocator.sizing import RepEconomics, economics


def money(amount: float) -> str:
    """A money figure as a planner says it: 4.0M, 182K, 1.2B, 950."""
    for size, suffix, digits in ((1e9, "B", 1), (1e6, "M", 1), (1e3, "K", 0)):
        if abs(amount) >= size:
            return f"{amount / size:.{digits}f}{suffix}"
    return f"{amount:,.0f}"


def _must_keep(scenario: Scenario) -> int:
    spec = scenario.settings.reps
    if spec is not None and spec.lock == "keep":
        return len(scenario.reps)
    return len(set(scenario.units["lock"]) - {""})


def cheapest_people_cost(scenario: Scenario, headcount: int,
                         econ: RepEconomics | None = None) -> tuple[float, int]:
    """The least people cost of ``headcount`` reps, and how many existing reps it keeps.

    People cost: the kept existing reps (the cheapest ones), the release cost of the others,
    the hires (salary for the months employed, hiring and training) and the managers. Travel is
    left out, so a budget below this figure proves the head count cannot be paid. Returns
    ``(inf, 0)`` when the head count cannot be staffed at all (too few reps and hire places).
    """
    econ = econ or economics(scenario)
    n_reps = len(econ.rep_cost)
    cost_asc = np.concatenate([[0.0], np.cumsum(np.sort(econ.rep_cost))])
    max_hires = int(scenario.sites["max_hires"].sum())
    best, best_k = math.inf, 0
    for kept in range(max(_must_keep(scenario), headcount - max_hires, 0),
                      min(headcount, n_reps) + 1):
        cost = (cost_asc[kept] + (n_reps - kept) * econ.release_cost
                + (headcount - kept) * econ.hire_cost
                + econ.managers(headcount) * econ.manager_cost)
        if cost < best:
            best, best_k = cost, kept
    return best, best_k


def affordable_headcount(scenario: Scenario) -> int:
    """The largest head count whose least people cost is within the budget (0 if none)."""
    budget = scenario.settings.strategy.budget
    econ = economics(scenario)
    limit = scenario.settings.strategy.headcount.max
    if budget is None:
        return limit
    affordable = 0
    for n in range(1, limit + 1):
        if cheapest_people_cost(scenario, n, econ)[0] <= budget:
            affordable = n
    return affordable


def diagnose_specification(scenario: Scenario) -> list[str]:
    """Every requirement that no plan can meet, with the numbers that clash; empty if none.

    Each line is a proof, not a guess: a scenario with an empty list may still turn out
    infeasible in the solve (contiguity, locks), but a line here means it certainly is.
    """
    s = scenario.settings
    strategy = s.strategy
    lines: list[str] = []
    n_min, n_max = strategy.headcount.min, strategy.headcount.max
    econ = economics(scenario)

    n_reps = len(scenario.reps)
    hire_places = int(scenario.sites["max_hires"].sum())
    if n_min > n_reps + hire_places:
        lines.append(f"at most {n_reps + hire_places} reps can be staffed ({n_reps} existing "
                     f"reps and {hire_places} hire places); the minimum head count is {n_min}")
    must_keep = _must_keep(scenario)
    if must_keep > n_max:
        lines.append(f"{must_keep} existing reps must be kept (locks or reps.lock: keep); the "
                     f"maximum head count is {n_max}")

    budget = strategy.budget
    payable = [n for n in range(n_min, n_max + 1)
               if budget is None or cheapest_people_cost(scenario, n, econ)[0] <= budget]
    if budget is not None and not payable and n_min <= n_reps + hire_places:
        affordable = affordable_headcount(scenario)
        lines.append(f"the budget of {money(budget)} pays for at most {affordable} reps; the "
                     f"minimum head count is {n_min}")
        cost, kept = cheapest_people_cost(scenario, n_min, econ)
        if math.isfinite(cost):
            released = n_reps - kept
            parts = [f"{kept} existing reps kept", f"{n_min - kept} hires at "
                     f"{money(econ.hire_cost)} each", f"{econ.managers(n_min)} managers at "
                     f"{money(econ.manager_cost)}"]
            if released and econ.release_cost:
                parts.append(f"{released} reps released at {money(econ.release_cost)} each")
            lines.append(f"{n_min} reps cost at least {money(cost)} ({', '.join(parts)})")

    lines.extend(_heavy_units(scenario, payable[0] if payable else n_min))
    n_low = payable[0] if payable else n_min
    team = s.alignment.max_reps_per_territory
    territories = math.ceil(n_low / team)
    if territories > scenario.n_units:
        lines.append(f"{n_low} reps need at least {territories} territories of at most {team} "
                     f"reps, but there are only {scenario.n_units} units")
    elif territories > len(scenario.sites):
        lines.append(f"{n_low} reps need at least {territories} territories of at most {team} "
                     f"reps, but only {len(scenario.sites)} units can be a territory's base "
                     "(existing reps' homes and hire sites)")
    return lines


def _heavy_units(scenario: Scenario, headcount: int, most: int = 5) -> list[str]:
    """Units that alone exceed the most a territory may carry at the smallest head count.

    With ``N`` reps the mean load per rep of a balance measure is ``A / N``; a territory of
    ``n_t`` reps may carry at most ``(1 + tau) * n_t * A / N``, with ``n_t`` at most
    ``alignment.max_reps_per_territory``. The smallest head count gives the largest allowance, so
    a unit above it at that head count fits no territory at any head count.
    """
    s = scenario.settings
    team = s.alignment.max_reps_per_territory
    ids = scenario.units["unit_id"].to_numpy()
    lines = []
    for spec in s.alignment.balance:
        values = scenario.units[spec.measure].to_numpy(float)
        total = values.sum()
        if total <= 0:
            continue
        allowed = (1 + spec.tolerance) * team * total / headcount
        ratio = values / allowed
        heavy = np.flatnonzero(ratio > 1 + 1e-9)
        heavy = heavy[np.argsort(-ratio[heavy], kind="stable")]
        per = "per rep" if team == 1 else f"per territory of {team} reps"
        for i in heavy[:most]:
            shown = f"{ratio[i]:.1f}" if ratio[i] >= 1.1 else f"{ratio[i]:.2f}"
            lines.append(f"unit {ids[i]} alone has {shown} × the largest allowed {spec.measure} "
                         f"{per} ({values[i]:,.1f} against at most {allowed:,.1f} with {headcount} "
                         f"reps and tolerance ±{spec.tolerance:.0%})")
        if len(heavy) > most:
            lines.append(f"{len(heavy) - most} more units exceed it too")
    return lines


def check_specification(scenario: Scenario) -> None:
    """Raise :class:`InfeasibleError` if :func:`diagnose_specification` finds anything."""
    lines = diagnose_specification(scenario)
    if lines:
        raise InfeasibleError("the scenario cannot be satisfied", diagnosis=lines)
