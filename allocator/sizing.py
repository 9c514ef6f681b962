"""Organisation size: what each head count can earn at best, and what it costs at least.

For head count ``N`` the plan keeps ``k`` existing reps and hires ``N - k``. Its sales can never
exceed the *pooled* sales ``S(E)`` of its effective hours ``E`` spent freely over all units
(territories only restrict where hours go), and ``S`` is concave, so every tangent is an upper
bound:

    S(E) <= S(E_j) + lambda_j (E - E_j)   for every point j of the response curve.

With ``E`` at most the hours of the ``k`` most effective existing reps plus ``N - k`` hires, and
the people cost at least that of the ``k`` cheapest reps, the ``N - k`` hires, the releases and
``ceil(N / span)`` managers, the contribution of any plan with ``N`` reps is at most

    UB(N) = max_k  margin * S(E_max(N, k)) - C_min(N, k) - travel_lb(N).

``UB`` ranks head counts and proves when a head count cannot beat the best plan found.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from allocator.response import marginal_at_zero
from allocator.scenario import Scenario


@dataclass(frozen=True)
class ResponseCurve:
    """Pooled sales ``S`` against effective hours ``E`` on a grid, with the slope at each point."""

    hours: np.ndarray
    sales: np.ndarray
    slope: np.ndarray

    def upper(self, hours: np.ndarray | float) -> np.ndarray:
        """Tangent upper bound ``min_j S_j + lambda_j (E - E_j)`` (exact at grid points)."""
        e = np.atleast_1d(np.asarray(hours, dtype=float))[:, None]
        return np.min(self.sales[None, :] + self.slope[None, :] * (e - self.hours[None, :]), axis=1)

    def marginal(self, hours: float) -> float:
        """Slope of the curve at ``hours`` (sales per extra effective hour)."""
        return float(np.interp(hours, self.hours, self.slope))


def response_curve(scenario: Scenario, points: int = 600) -> ResponseCurve:
    """Exact pooled response on a log grid of marginal returns ``lambda`` (water-filling)."""
    units = scenario.units
    spec = scenario.settings.response
    potential = units["potential"].to_numpy(float)
    workload = units["workload"].to_numpy(float)
    a = marginal_at_zero(potential, workload, spec)
    top = a.max() if a.max() > 0 else 1.0
    lam = np.exp(np.linspace(np.log(top), np.log(top) - 40.0, points))
    cap = spec.max_coverage * workload
    with np.errstate(divide="ignore"):
        ratio = np.log2(np.where(a > 0, a, 1.0)[None, :] / lam[:, None])
    effort = np.clip(np.where(a[None, :] > 0, spec.half * workload[None, :] * ratio, 0.0), 0.0,
                     cap[None, :])
    hours = effort.sum(axis=1)
    coverage = np.divide(effort, workload[None, :], out=np.zeros_like(effort),
                         where=workload[None, :] > 0)
    sales = (potential[None, :] * (spec.floor + (spec.ceiling - spec.floor)
                                   * (1 - np.exp2(-coverage / spec.half)))).sum(axis=1)
    # past full saturation extra hours buy nothing
    hours = np.append(hours, hours[-1] * 10 + 1.0)
    sales = np.append(sales, sales[-1])
    lam = np.append(lam, 0.0)
    return ResponseCurve(hours=hours, sales=sales, slope=lam)


@dataclass(frozen=True)
class RepEconomics:
    """Hours and costs of the people a plan can employ."""

    rep_hours: np.ndarray  # effective hours of each existing rep in the plan year
    rep_cost: np.ndarray  # annual cost of each existing rep
    release_cost: float
    hire_hours: float  # effective hours of one hire in the plan year (ramp included)
    hire_cost: float  # salary for the months employed + hiring + training
    manager_cost: float
    span: int

    def managers(self, headcount: int) -> int:
        return math.ceil(headcount / self.span)


def economics(scenario: Scenario) -> RepEconomics:
    s = scenario.settings
    reps = scenario.reps
    hiring = s.hiring
    months = 13 - hiring.start_month
    return RepEconomics(
        rep_hours=(reps["capacity_hours"] * reps["productivity"]).to_numpy(float),
        rep_cost=reps["annual_cost"].to_numpy(float),
        release_cost=float(s.reps.release_cost if s.reps else 0.0),
        hire_hours=hiring.capacity_hours * hiring.productivity * hiring.first_year_factor(),
        hire_cost=hiring.annual_cost * months / 12 + hiring.hire_cost + hiring.training_cost,
        manager_cost=s.managers.annual_cost,
        span=s.managers.span,
    )


@dataclass(frozen=True)
class SizeBound:
    """The best a head count can do, ignoring territories (an upper bound), or why it cannot."""

    headcount: int
    kept: int
    hires: int
    hours: float
    sales_bound: float
    people_cost: float
    value_bound: float
    feasible: bool
    reason: str = ""


def size_bounds(scenario: Scenario, curve: ResponseCurve | None = None) -> list[SizeBound]:
    """``UB(N)`` for every head count in the allowed range (travel bounded below by zero)."""
    s = scenario.settings
    curve = curve or response_curve(scenario)
    econ = economics(scenario)
    n_reps = len(econ.rep_hours)
    must_keep = _must_keep(scenario)
    hours_desc = np.concatenate([[0.0], np.cumsum(np.sort(econ.rep_hours)[::-1])])
    cost_asc = np.concatenate([[0.0], np.cumsum(np.sort(econ.rep_cost))])
    # no site takes more hires than a territory holds reps
    max_hires = int(np.minimum(scenario.sites["max_hires"],
                               s.alignment.max_reps_per_territory).sum())
    target = scenario.target_sales()
    out = []
    for n in range(s.strategy.headcount.min, s.strategy.headcount.max + 1):
        best: SizeBound | None = None
        reason = ""
        cheapest = math.inf
        for k in range(max(must_keep, n - max_hires, 0), min(n, n_reps) + 1):
            hires = n - k
            hours = hours_desc[k] + hires * econ.hire_hours
            cost = (cost_asc[k] + (n_reps - k) * econ.release_cost + hires * econ.hire_cost
                    + econ.managers(n) * econ.manager_cost)
            sales = float(curve.upper(hours)[0])
            cheapest = min(cheapest, cost)
            if cost > s.strategy.budget:
                continue
            if s.strategy.objective == "min_cost":
                if sales < target:
                    reason = reason or f"sales at most {sales:,.0f} < target {target:,.0f}"
                    continue
                value = -cost
            else:
                value = s.strategy.margin * sales - cost
            if best is None or value > best.value_bound:
                best = SizeBound(n, k, hires, hours, sales, cost, value, True)
        if best is None:
            if math.isfinite(cheapest) and cheapest > s.strategy.budget:
                reason = (f"people cost at least {cheapest:,.0f} > budget "
                          f"{s.strategy.budget:,.0f}")
            elif not reason:
                reason = (f"{n} reps need more than the {n_reps} existing reps and "
                          f"{max_hires} hire places")
            # an infeasible head count carries the least it would cost, for the diagnosis
            best = SizeBound(n, 0, 0, 0.0, 0.0, cheapest, -math.inf, False, reason)
        out.append(best)
    return out


def _must_keep(scenario: Scenario) -> int:
    spec = scenario.settings.reps
    if spec is not None and spec.lock == "keep":
        return len(scenario.reps)
    return len(set(scenario.units["lock"]) - {""})
