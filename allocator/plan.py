"""A plan: staffing, assignment, effort, expected sales and quotas, with its tables and KPIs."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from allocator.alignment import AlignmentProblem, Staffing
from allocator.exceptions import SpecificationError
from allocator.response import spread_effort, unit_sales
from allocator.scenario import Scenario
from allocator.sizing import economics

MONTHS = [f"{m:02d}" for m in range(1, 13)]


@dataclass
class Plan:
    """One plan for a scenario. Build it with :func:`make_plan`."""

    scenario: Scenario
    staffing: Staffing
    assignment: np.ndarray  # territory position of each unit
    effort: np.ndarray  # hours per unit
    sales: np.ndarray  # expected sales per unit
    reps: pd.DataFrame  # one row per rep in the plan
    territories: pd.DataFrame
    units: pd.DataFrame  # assignment table
    quotas: pd.DataFrame  # rep x month, in currency with cents
    costs: dict[str, float]
    kpis: dict[str, float | int | str] = field(default_factory=dict)

    @property
    def contribution(self) -> float:
        return float(self.kpis["contribution"])

    def objective(self) -> float:
        """The quantity maximised: contribution, minus cost, or minus compactness."""
        s = self.scenario.settings
        if s.strategy.objective == "balance":
            measure = "max_diameter" if s.alignment.compactness == "diameter" else "compactness"
            return -float(self.kpis[measure])
        if s.strategy.objective == "min_cost":
            return -float(self.costs["total"])
        return self.contribution


def rep_table(scenario: Scenario, staffing: Staffing) -> pd.DataFrame:
    """Every rep of the plan: kept existing reps and new hires (ids ``NEW-<site>-<k>``)."""
    econ = economics(scenario)
    hiring = scenario.settings.hiring
    unit_ids = scenario.units["unit_id"].to_numpy()
    rows = []
    for t, site in enumerate(staffing.sites):
        for r in sorted(staffing.reps[t], key=lambda r: scenario.reps["rep_id"].iloc[r]):
            rep = scenario.reps.iloc[r]
            rows.append(dict(rep_id=rep["rep_id"], name=rep["name"], kind="existing",
                             territory=t, home_unit=unit_ids[site], hours=econ.rep_hours[r],
                             cost=econ.rep_cost[r], start_month=1))
        for k in range(int(staffing.hires[t])):
            rows.append(dict(rep_id=f"NEW-{unit_ids[site]}-{k + 1}", name="new hire", kind="hire",
                             territory=t, home_unit=unit_ids[site], hours=econ.hire_hours,
                             cost=econ.hire_cost, start_month=hiring.start_month))
    return pd.DataFrame(rows)


def territory_ids(scenario: Scenario, staffing: Staffing, reps: pd.DataFrame) -> list[str]:
    """A territory is named after its lead rep (the first existing rep, else the first hire)."""
    lead = reps.groupby("territory")["rep_id"].first()
    return [f"T-{lead[t]}" for t in range(len(staffing.sites))]


def plan_costs(scenario: Scenario, problem: AlignmentProblem, staffing: Staffing,
               assignment: np.ndarray) -> dict[str, float]:
    """The plan year's costs of a staffing and assignment, by kind, and their total: what
    :func:`make_plan` reports, without its tables."""
    travel = problem.cost(np.arange(scenario.n_units), staffing.sites[assignment])
    return _costs(scenario, rep_table(scenario, staffing), float(travel.sum()))


def _counts(scenario: Scenario, reps: pd.DataFrame) -> tuple[int, int, int, int]:
    """Head count, existing reps kept, hires and existing reps released."""
    kept = int((reps["kind"] == "existing").sum())
    return len(reps), kept, len(reps) - kept, len(scenario.reps) - kept


def _costs(scenario: Scenario, reps: pd.DataFrame, travel: float) -> dict[str, float]:
    s = scenario.settings
    econ = economics(scenario)
    headcount, kept, hires, released = _counts(scenario, reps)
    months = 13 - s.hiring.start_month
    costs = {
        "existing_reps": float(reps.loc[reps["kind"] == "existing", "cost"].sum()),
        "hire_salaries": hires * s.hiring.annual_cost * months / 12,
        "hiring": hires * s.hiring.hire_cost,
        "training": hires * s.hiring.training_cost,
        "releases": released * econ.release_cost,
        "managers": econ.managers(headcount) * econ.manager_cost,
        "travel": travel,
    }
    costs["total"] = float(sum(costs.values()))
    return costs


def make_plan(scenario: Scenario, problem: AlignmentProblem, staffing: Staffing,
              assignment: np.ndarray) -> Plan:
    """Effort, sales, costs, quotas and tables of a staffing and assignment."""
    s = scenario.settings
    units = scenario.units
    T = len(staffing.sites)
    reps = rep_table(scenario, staffing)
    hours = np.bincount(reps["territory"], weights=reps["hours"], minlength=T)
    potential = units["potential"].to_numpy(float)
    workload = units["workload"].to_numpy(float)
    effort = spread_effort(potential, workload, hours, assignment, s.response)
    sales = unit_sales(potential, workload, effort, s.response)
    travel = problem.cost(np.arange(scenario.n_units), staffing.sites[assignment])
    costs = _costs(scenario, reps, float(travel.sum()))
    econ = economics(scenario)
    headcount, kept, hires, released = _counts(scenario, reps)

    tid = territory_ids(scenario, staffing, reps)
    reps["territory_id"] = [tid[t] for t in reps["territory"]]
    n_reps = staffing.n_reps
    frame = pd.DataFrame({
        "territory_id": tid,
        "site_unit": units["unit_id"].to_numpy()[staffing.sites],
        "rep_ids": [";".join(reps.loc[reps["territory"] == t, "rep_id"]) for t in range(T)],
        "n_reps": n_reps,
        "n_units": np.bincount(assignment, minlength=T),
    })
    for b in s.alignment.balance:
        load = np.bincount(assignment, weights=units[b.measure].to_numpy(float), minlength=T)
        mean = units[b.measure].sum() / headcount
        if b.measure != "workload":
            frame[b.measure] = load
        frame[f"{b.measure}_per_rep_index"] = load / n_reps / mean
    frame["workload"] = np.bincount(assignment, weights=workload, minlength=T)
    frame["potential"] = np.bincount(assignment, weights=potential, minlength=T)
    frame["last_year_sales"] = np.bincount(assignment, weights=units["last_year_sales"], minlength=T)
    frame["effective_hours"] = hours
    frame["effort_hours"] = np.bincount(assignment, weights=effort, minlength=T)
    frame["expected_sales"] = np.bincount(assignment, weights=sales, minlength=T)
    frame["travel_cost"] = np.bincount(assignment, weights=travel, minlength=T)
    frame["people_cost"] = np.bincount(reps["territory"], weights=reps["cost"], minlength=T)
    km = problem.distance(np.arange(scenario.n_units), staffing.sites[assignment])
    frame["mean_km_to_site"] = np.bincount(assignment, weights=workload * km, minlength=T) / \
        np.maximum(frame["workload"].to_numpy(), 1e-12)
    frame["max_km_to_site"] = pd.Series(km).groupby(assignment).max().reindex(range(T)).to_numpy()

    quota = territory_quotas(scenario, frame)
    frame["quota"] = quota / 100.0
    frame["attainability"] = frame["quota"] / frame["expected_sales"]

    # reps: split territory figures by their share of effective hours
    share = reps["hours"].to_numpy() / hours[reps["territory"].to_numpy()]
    reps["expected_sales"] = frame["expected_sales"].to_numpy()[reps["territory"]] * share
    rep_quota = np.zeros(len(reps), dtype=np.int64)
    for t in range(T):
        rows = np.flatnonzero(reps["territory"].to_numpy() == t)
        rep_quota[rows] = split_cents(int(quota[t]), share[rows])
    reps["quota"] = rep_quota / 100.0
    reps["attainability"] = reps["quota"] / reps["expected_sales"]
    quotas = monthly_quotas(scenario, reps, rep_quota)

    table = pd.DataFrame({
        "unit_id": units["unit_id"],
        "name": units["name"],
        "region": units["region"],
        "territory_id": [tid[t] for t in assignment],
        "rep_id": [reps.loc[reps["territory"] == t, "rep_id"].iloc[0] for t in assignment],
        "potential": potential,
        "workload": workload,
        "last_year_sales": units["last_year_sales"],
        "effort_hours": effort,
        "expected_sales": sales,
        "travel_cost": travel,
        "km_to_site": km,
    })
    expected = float(sales.sum())
    index = frame["workload_per_rep_index"]
    kpis = {
        "headcount": headcount, "kept": kept, "hires": hires, "released": released,
        "managers": econ.managers(headcount), "territories": T,
        "multi_rep_territories": int((n_reps > 1).sum()),
        "expected_sales": expected, "target_sales": scenario.target_sales(),
        "contribution": s.strategy.margin * expected - costs["total"],
        "cost": costs["total"], "budget": s.strategy.budget,
        "budget_used": (costs["total"] / s.strategy.budget if s.strategy.budget else None),
        "travel_cost": costs["travel"],
        "workload_index_max": float(index.max()), "workload_index_min": float(index.min()),
        "balance_tolerance": s.alignment.balance[0].tolerance,
        "mean_km_to_site": float((workload * km).sum() / workload.sum()),
        # workload x distance from each unit to its territory's site (p-median compactness)
        "compactness": float((workload * km).sum()),
    }
    if s.alignment.compactness == "diameter":
        from allocator.diameter import diameters, unit_distances

        diameter = diameters(unit_distances(scenario), assignment, T)
        frame["diameter"] = diameter
        kpis["max_diameter"] = float(diameter.max())
    return Plan(scenario, staffing, assignment, effort, sales, reps, frame, table, quotas, costs,
                kpis)


def split_cents(total: int, weights: np.ndarray) -> np.ndarray:
    """Split ``total`` cents in proportion to ``weights`` so that the parts add up exactly."""
    weights = np.asarray(weights, dtype=float)
    if weights.sum() <= 0:
        weights = np.ones_like(weights)
    exact = total * weights / weights.sum()
    parts = np.floor(exact).astype(np.int64)
    rest = total - int(parts.sum())
    order = np.argsort(-(exact - parts), kind="stable")
    parts[order[:rest]] += 1
    return parts


def territory_quotas(scenario: Scenario, territories: pd.DataFrame) -> np.ndarray:
    """Quota of each territory in cents; the quotas add up to target x over-assignment exactly.

    Shares follow the method (potential, history, a blend of the two, or expected sales); each
    quota is then held within ``[LY (1 + min_growth), LY (1 + max_growth)]`` of the territory's
    last-year sales by clamping and re-spreading the rest over the free territories, in rounds,
    until none is out of bounds.
    """
    spec = scenario.settings.quotas
    total = scenario.target_sales() * scenario.settings.strategy.over_assignment
    pot = territories["potential"].to_numpy(float)
    hist = territories["last_year_sales"].to_numpy(float)
    if spec.method == "potential":
        weight = pot / pot.sum()
    elif spec.method == "history":
        weight = hist / hist.sum()
    elif spec.method == "expected":
        exp = territories["expected_sales"].to_numpy(float)
        weight = exp / exp.sum()
    else:
        weight = spec.blend_weight * pot / pot.sum() + (1 - spec.blend_weight) * hist / hist.sum()
    lower = np.where(hist > 0, hist * (1 + spec.min_growth), 0.0)
    upper = np.where(hist > 0, hist * (1 + spec.max_growth), np.inf)
    if lower.sum() > total or upper.sum() < total:
        raise SpecificationError(
            f"quota target {total:,.0f} cannot respect the growth bounds "
            f"[{spec.min_growth:+.0%}, {spec.max_growth:+.0%}] over last year's sales: the "
            f"quotas can add up to between {lower.sum():,.0f} and {upper.sum():,.0f}")
    quota = total * weight
    fixed = np.zeros(len(quota), dtype=bool)
    for _ in range(len(quota) + 1):
        low, high = quota < lower - 1e-9, quota > upper + 1e-9
        if not (low | high).any():
            break
        quota = np.where(low, lower, np.where(high, upper, quota))
        fixed |= low | high
        free = ~fixed
        rest = total - quota[fixed].sum()
        if free.any() and weight[free].sum() > 0:
            quota[free] = rest * weight[free] / weight[free].sum()
    return split_cents(int(round(total * 100)), quota)


def monthly_quotas(scenario: Scenario, reps: pd.DataFrame, rep_cents: np.ndarray) -> pd.DataFrame:
    """Each rep's annual quota by month: seasonality times activity (hires ramp up)."""
    spec = scenario.settings
    season = np.array(spec.quotas.seasonality, dtype=float)
    rows = []
    for k, rep in enumerate(reps.itertuples()):
        activity = np.ones(12)
        if rep.kind == "hire":
            start = rep.start_month - 1
            activity[:start] = 0.0
            ramp_end = min(12, start + spec.hiring.ramp_months)
            activity[start:ramp_end] = spec.hiring.ramp_productivity
        cents = split_cents(int(rep_cents[k]), season * activity)
        rows.append([rep.rep_id, rep.territory_id, *(cents / 100.0), rep_cents[k] / 100.0])
    return pd.DataFrame(rows, columns=["rep_id", "territory_id", *MONTHS, "annual"])


def total_cents(values: pd.Series | np.ndarray) -> int:
    return int(sum(round(float(v) * 100) for v in values))
