"""Evaluation of actual results against the plan: how the plan and the people did, year to date.

Definitions (``M`` is the last month of the actuals, ``r`` a rep, ``t`` a territory):

- quota to date ``Q_r = sum_{m <= M} q_rm`` from the plan's monthly quotas (seasonality, and each
  hire's start and ramp, are already in them);
- expected to date ``E_r = e_r * Q_r / q_r``: the plan's expected sales ``e_r`` spread over the
  months like the rep's quota ``q_r`` (the plan's monthly shape);
- actual to date ``A_r``. With actuals by unit a territory's sales ``A_t`` are split among its
  reps by their share of the territory's quota to date (a team shares its attainment);
- attainment ``A_r / Q_r``; projection to year end ``A_r + (A_r / Q_r) (q_r - Q_r)``: the
  year-to-date attainment carried over the rest of the seasonal quota;
- variance split of the gap ``A_r - Q_r`` = territory part ``E_r - Q_r`` (what the territory the
  plan gave, through its potential and workload, supports against the quota) + performance
  part ``A_r - E_r`` (what the rep made of it). The two add up exactly;
- plan accuracy by territory: absolute percentage error ``|A_t - E_t| / A_t``, MAPE its mean over
  territories with sales, bias ``(sum E_t - sum A_t) / sum A_t`` (positive: the plan expected
  too much);
- the share of reps at or above quota counts the reps with a quota to date (hires not started
  yet have none).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import yaml

from allocator.actuals import Actuals, rep_month_weights, read_actuals
from allocator.exceptions import InputError
from allocator.report import (MONTH_NAMES, figure_div, html_table, money, pct, publish, render,
                              report_folder, write_sheet)
from allocator.runs import RunRecord, read_run
from allocator.settings import ResponseSpec

if TYPE_CHECKING:
    import plotly.graph_objects as go

EVALUATION_FILES = ("evaluation.html", "evaluation.xlsx", "evaluation.csv",
                    "response_recalibrated.yaml")
# the attainment bins of the distribution (upper bounds; the last bin is open)
ATTAINMENT_BINS = [0.7, 0.85, 1.0, 1.2]
# fewer units than this, or coverage that hardly varies, cannot separate floor from ceiling
MIN_UNITS_FOR_CURVE = 8
MIN_LIFT_SPREAD = 0.02


@dataclass(frozen=True)
class Thresholds:
    """Flags: attainment below ``low`` or above ``high`` of the quota to date."""

    low: float = 0.85
    high: float = 1.20

    def __post_init__(self) -> None:
        if not 0 <= self.low < self.high:
            raise InputError(f"flag thresholds must satisfy 0 <= low < high; got low {self.low}, "
                             f"high {self.high}", column="--low/--high")


@dataclass(frozen=True)
class Evaluation:
    """Every figure of an evaluation; the tables are what the CSV and XLSX files hold."""

    run_id: str
    scenario: str
    year: int
    through: int
    level: str
    synthetic: bool
    actuals_file: str
    thresholds: Thresholds
    reps: pd.DataFrame
    territories: pd.DataFrame
    regions: pd.DataFrame
    months: pd.DataFrame
    assumptions: pd.DataFrame
    unit_misses: pd.DataFrame
    balance: pd.DataFrame
    distribution: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)
    response: dict[str, Any] = field(default_factory=dict)

    @property
    def through_label(self) -> str:
        return f"{self.year}-{self.through:02d}"


def _divide(a, b) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    return np.divide(a, b, out=np.full(np.broadcast(a, b).shape, np.nan), where=b != 0)


def evaluate(run: RunRecord, actuals: Actuals, thresholds: Thresholds = Thresholds(),
             response: ResponseSpec | None = None) -> Evaluation:
    """Compare actuals with the run's plan (see the module docstring for every definition)."""
    if response is None:
        response = run.load_scenario().settings.response
    through = actuals.through
    months = list(range(1, through + 1))
    reps = run.reps.reset_index(drop=True).copy()
    weights = rep_month_weights(run)
    quotas = run.quotas.set_index("rep_id")
    month_cols = [f"{m:02d}" for m in months]
    reps["annual_quota"] = quotas.loc[reps["rep_id"], "annual"].astype(float).to_numpy()
    reps["quota_to_date"] = quotas.loc[reps["rep_id"], month_cols].astype(float).sum(
        axis=1).to_numpy()
    reps["expected_to_date"] = reps["expected_sales"].astype(float).to_numpy() * \
        weights.loc[reps["rep_id"], months].sum(axis=1).to_numpy()
    region_of = _territory_regions(run)
    reps["region"] = reps["territory_id"].map(region_of)

    table = actuals.table[actuals.table["month"] <= through]
    activity = [c for c in ("calls", "hours") if c in table.columns]
    if actuals.level == "rep":
        per_rep = table.groupby("id")[["sales", *activity]].sum()
        for column in ["sales", *activity]:
            reps[f"actual_{column}"] = per_rep.loc[reps["rep_id"], column].to_numpy()
    else:
        territory_of = run.assignment.set_index("unit_id")["territory_id"]
        per_territory = table.assign(territory_id=table["id"].map(territory_of)).groupby(
            "territory_id")[["sales", *activity]].sum()
        team_quota = reps.groupby("territory_id")["quota_to_date"].transform("sum")
        team_expected = reps.groupby("territory_id")["expected_to_date"].transform("sum")
        share = np.where(team_quota > 0, _divide(reps["quota_to_date"], team_quota),
                         _divide(reps["expected_to_date"], team_expected))
        share = np.nan_to_num(share, nan=1.0 / reps.groupby("territory_id")["rep_id"]
                              .transform("count").to_numpy())
        reps["team_share"] = share
        for column in ["sales", *activity]:
            totals = per_territory.reindex(reps["territory_id"])[column].fillna(0.0).to_numpy()
            reps[f"actual_{column}"] = totals * share

    reps = reps.rename(columns={"actual_sales": "actual_to_date"})
    reps["attainment"] = _divide(reps["actual_to_date"], reps["quota_to_date"])
    reps["gap_to_quota"] = reps["actual_to_date"] - reps["quota_to_date"]
    reps["territory_part"] = reps["expected_to_date"] - reps["quota_to_date"]
    reps["performance_part"] = reps["actual_to_date"] - reps["expected_to_date"]
    started = reps["quota_to_date"] > 0
    reps["projection"] = np.where(
        started, reps["actual_to_date"] + reps["attainment"].fillna(0) *
        (reps["annual_quota"] - reps["quota_to_date"]),
        reps["actual_to_date"] + reps["annual_quota"] - reps["quota_to_date"])
    reps["projected_attainment"] = _divide(reps["projection"], reps["annual_quota"])
    reps["flag"] = np.select(
        [~started, reps["attainment"] < thresholds.low, reps["attainment"] > thresholds.high],
        ["no quota yet", f"below {thresholds.low:.0%}", f"above {thresholds.high:.0%}"],
        "on track")
    reps["rank"] = reps["attainment"].rank(ascending=False, method="min").astype("Int64")

    # balance in practice: each rep's actual sales and activity against the mean of the active
    active = started.to_numpy()
    for column, label in [("actual_to_date", "sales_index"),
                          *[(f"actual_{c}", f"{c}_index") for c in activity]]:
        mean = reps.loc[active, column].mean() if active.any() else np.nan
        reps[label] = _divide(reps[column], mean)
    workload_index = run.territories.set_index("territory_id")["workload_per_rep_index"]
    reps["planned_workload_index"] = reps["territory_id"].map(workload_index).astype(float)

    territories = _territory_table(run, reps, region_of, activity)
    regions = _region_table(territories)
    month_table = _month_table(run, table, weights, months, actuals.year)
    with_sales = territories["actual_to_date"] > 0
    mape = float(territories.loc[with_sales, "ape"].mean()) if with_sales.any() else float("nan")
    total_actual = float(reps["actual_to_date"].sum())
    total_expected = float(reps["expected_to_date"].sum())
    total_quota = float(reps["quota_to_date"].sum())
    bias = (total_expected - total_actual) / total_actual if total_actual > 0 else float("nan")
    attained = reps.loc[started, "attainment"]
    summary = {
        "run_id": run.run_id, "scenario": run.scenario_name, "through": f"{actuals.year}-"
        f"{through:02d}", "level": actuals.level, "synthetic_actuals": actuals.synthetic,
        "actual_to_date": total_actual, "quota_to_date": total_quota,
        "expected_to_date": total_expected,
        "attainment": total_actual / total_quota if total_quota > 0 else float("nan"),
        "projection": float(reps["projection"].sum()),
        "annual_quota": float(reps["annual_quota"].sum()),
        "reps_with_quota": int(started.sum()),
        "share_at_or_above_quota": float((attained >= 1.0).mean()) if len(attained) else
        float("nan"),
        "median_attainment": float(attained.median()) if len(attained) else float("nan"),
        "flagged_below": int((reps["flag"] == f"below {thresholds.low:.0%}").sum()),
        "flagged_above": int((reps["flag"] == f"above {thresholds.high:.0%}").sum()),
        "mape": mape, "bias": bias, "low": thresholds.low, "high": thresholds.high,
    }
    unit_misses = _unit_misses(run, table, weights) if actuals.level == "unit" else \
        pd.DataFrame()
    assumptions = _assumptions(reps, month_table, unit_misses, activity, run, weights, months)
    recalibrated = recalibrate_response(run, actuals, response, reps, weights)
    return Evaluation(
        run_id=run.run_id, scenario=run.scenario_name, year=actuals.year, through=through,
        level=actuals.level, synthetic=actuals.synthetic, actuals_file=actuals.file,
        thresholds=thresholds, reps=_rep_columns(reps, activity), territories=territories,
        regions=regions, months=month_table, assumptions=assumptions,
        unit_misses=unit_misses.head(25), balance=_balance_table(reps, activity),
        distribution=_distribution(attained), summary=summary, response=recalibrated)


def _territory_regions(run: RunRecord) -> pd.Series:
    """A territory's region is that of its base unit (where its reps are based)."""
    if "region" not in run.assignment.columns:
        return pd.Series("", index=run.territories["territory_id"])
    region = run.assignment.set_index("unit_id")["region"].fillna("")
    return pd.Series(run.territories["site_unit"].map(region).fillna("").to_numpy(),
                     index=run.territories["territory_id"].to_numpy())


def _rep_columns(reps: pd.DataFrame, activity: list[str]) -> pd.DataFrame:
    columns = ["rank", "rep_id", "kind", "territory_id", "region", "start_month", "annual_quota",
               "quota_to_date", "expected_to_date", "actual_to_date", "attainment", "flag",
               "gap_to_quota", "territory_part", "performance_part", "projection",
               "projected_attainment", *[f"actual_{c}" for c in activity], "sales_index",
               *[f"{c}_index" for c in activity], "planned_workload_index"]
    return reps.sort_values(["rank", "rep_id"], na_position="last")[columns].reset_index(drop=True)


def _territory_table(run: RunRecord, reps: pd.DataFrame, region_of: pd.Series,
                     activity: list[str]) -> pd.DataFrame:
    sums = reps.groupby("territory_id")[["quota_to_date", "expected_to_date", "actual_to_date",
                                         "annual_quota", "projection",
                                         *[f"actual_{c}" for c in activity]]].sum()
    frame = run.territories[["territory_id", "rep_ids", "n_reps"]].set_index("territory_id")
    frame = frame.join(sums)
    frame.insert(0, "region", region_of.reindex(frame.index).to_numpy())
    frame["attainment"] = _divide(frame["actual_to_date"], frame["quota_to_date"])
    frame["error"] = frame["actual_to_date"] - frame["expected_to_date"]
    frame["ape"] = _divide(np.abs(frame["error"]), frame["actual_to_date"])
    frame["projected_attainment"] = _divide(frame["projection"], frame["annual_quota"])
    return frame.reset_index().sort_values("attainment", ascending=False,
                                           na_position="last").reset_index(drop=True)


def _region_table(territories: pd.DataFrame) -> pd.DataFrame:
    frame = territories.groupby("region")[["n_reps", "quota_to_date", "expected_to_date",
                                           "actual_to_date", "annual_quota", "projection"]].sum()
    frame.insert(0, "territories", territories.groupby("region").size())
    frame["attainment"] = _divide(frame["actual_to_date"], frame["quota_to_date"])
    frame["projected_attainment"] = _divide(frame["projection"], frame["annual_quota"])
    return frame.reset_index().sort_values("attainment", ascending=False).reset_index(drop=True)


def _month_table(run: RunRecord, table: pd.DataFrame, weights: pd.DataFrame, months: list[int],
                 year: int) -> pd.DataFrame:
    reps = run.reps.set_index("rep_id")
    expected = weights.loc[reps.index, months].mul(reps["expected_sales"].astype(float), axis=0)
    quota = run.quotas.set_index("rep_id").loc[reps.index, [f"{m:02d}" for m in months]]
    actual = table.groupby("month")["sales"].sum().reindex(months, fill_value=0.0)
    frame = pd.DataFrame({"month": [f"{year}-{m:02d}" for m in months],
                          "quota": quota.astype(float).sum(axis=0).to_numpy(),
                          "expected": expected.sum(axis=0).to_numpy(),
                          "actual": actual.to_numpy()})
    frame["attainment"] = _divide(frame["actual"], frame["quota"])
    frame["expected_share"] = frame["expected"] / frame["expected"].sum()
    frame["actual_share"] = _divide(frame["actual"], frame["actual"].sum())
    return frame


def _unit_expected_to_date(run: RunRecord, weights: pd.DataFrame, months: list[int]) -> pd.Series:
    """A unit's expected sales to date: its annual expected sales times its territory's share
    of expected sales falling in the months so far."""
    reps = run.reps.set_index("rep_id")
    to_date = (reps["expected_sales"].astype(float) *
               weights.loc[reps.index, months].sum(axis=1))
    by_territory = to_date.groupby(reps["territory_id"]).sum() / \
        reps["expected_sales"].astype(float).groupby(reps["territory_id"]).sum()
    units = run.assignment
    fraction = units["territory_id"].map(by_territory).fillna(0.0).to_numpy(float)
    return pd.Series(units["expected_sales"].to_numpy(float) * fraction,
                     index=units["unit_id"].to_numpy())


def _unit_misses(run: RunRecord, table: pd.DataFrame, weights: pd.DataFrame) -> pd.DataFrame:
    months = sorted(table["month"].unique().tolist())
    expected = _unit_expected_to_date(run, weights, months)
    actual = table.groupby("id")["sales"].sum().reindex(expected.index, fill_value=0.0)
    units = run.assignment.set_index("unit_id")
    frame = pd.DataFrame({
        "unit_id": expected.index, "name": units.get("name", units.index.to_series()).to_numpy(),
        "territory_id": units["territory_id"].to_numpy(),
        "expected_to_date": expected.to_numpy(), "actual_to_date": actual.to_numpy()})
    frame["miss"] = frame["actual_to_date"] - frame["expected_to_date"]
    frame["miss_share"] = _divide(frame["miss"], frame["expected_to_date"])
    order = frame["miss"].abs().sort_values(ascending=False).index
    return frame.loc[order].reset_index(drop=True)


def _assumptions(reps: pd.DataFrame, months: pd.DataFrame, unit_misses: pd.DataFrame,
                 activity: list[str], run: RunRecord, weights: pd.DataFrame,
                 month_numbers: list[int]) -> pd.DataFrame:
    """Each plan assumption with its planned and actual figure, the largest miss first."""
    rows = []

    def add(name: str, planned: float, actual: float, note: str) -> None:
        rows.append({"assumption": name, "planned": planned, "actual": actual,
                     "miss": (actual - planned) / planned if planned else float("nan"),
                     "note": note})

    add("sales to date (all reps)", reps["expected_to_date"].sum(), reps["actual_to_date"].sum(),
        "the plan's expected sales over the months so far")
    for kind, label in [("existing", "existing reps' sales"),
                        ("hire", "new hires' sales (start and ramp)")]:
        chosen = reps["kind"] == kind
        if chosen.any():
            add(label, reps.loc[chosen, "expected_to_date"].sum(),
                reps.loc[chosen, "actual_to_date"].sum(),
                "hires: the ramp assumption" if kind == "hire" else "full-year reps")
    if "hours" in activity:
        planned_hours = float((reps["effective_hours"].astype(float) *
                               weights.loc[reps["rep_id"], month_numbers].sum(axis=1)
                               .to_numpy()).sum())
        actual_hours = float(reps["actual_hours"].sum())
        add("selling hours to date", planned_hours, actual_hours,
            "effective hours spread like the quota")
        if planned_hours > 0 and actual_hours > 0:
            add("sales per selling hour (response)", reps["expected_to_date"].sum() /
                planned_hours, reps["actual_to_date"].sum() / actual_hours,
                "how sales respond to effort")
    for row in months.itertuples():
        rows.append({"assumption": f"seasonality: share of {row.month}",
                     "planned": row.expected_share, "actual": row.actual_share,
                     "miss": (row.actual_share - row.expected_share) / row.expected_share
                     if row.expected_share else float("nan"),
                     "note": "month's share of the sales to date"})
    if len(unit_misses):
        expected = unit_misses["expected_to_date"].sum()
        add("unit market figures (sum of absolute unit misses)", expected,
            expected + unit_misses["miss"].abs().sum(),
            "weighted absolute error over units: potential and response by unit")
    frame = pd.DataFrame(rows)
    order = frame["miss"].abs().sort_values(ascending=False, na_position="last").index
    return frame.loc[order].reset_index(drop=True)


def _balance_table(reps: pd.DataFrame, activity: list[str]) -> pd.DataFrame:
    columns = ["rep_id", "territory_id", "planned_workload_index", "actual_to_date",
               "sales_index", *[f"actual_{c}" for c in activity],
               *[f"{c}_index" for c in activity]]
    return reps[columns].sort_values("sales_index", ascending=False).reset_index(drop=True)


def _distribution(attained: pd.Series) -> pd.DataFrame:
    edges = [-np.inf, *ATTAINMENT_BINS, np.inf]
    labels = ["below 70 %", "70-85 %", "85-100 %", "100-120 %", "120 % and above"]
    counts = pd.cut(attained, edges, labels=labels, right=False).value_counts().reindex(labels)
    total = max(len(attained), 1)
    return pd.DataFrame({"attainment": labels, "reps": counts.to_numpy(),
                         "share": counts.to_numpy() / total})


# --- recalibrating the response curve ---------------------------------------------------------

def recalibrate_response(run: RunRecord, actuals: Actuals, prior: ResponseSpec,
                         reps: pd.DataFrame, weights: pd.DataFrame) -> dict[str, Any]:
    """New floor and ceiling of the sales response, fitted to the actuals, for re-optimisation.

    With actuals by unit the curve ``sales / potential = floor + (ceiling - floor) * lift`` (lift
    ``1 - 2^(-coverage / half)`` at the unit's planned effort, or at its actual hours where
    given) is linear in ``floor`` and ``ceiling - floor``; both are fitted by non-negative least
    squares weighted by potential on the annualised sales to date. ``half`` keeps its value (half
    a year at one effort level per unit cannot pin the curve's bend). Where the fit is not
    possible (rep-level actuals, too few units, coverage too uniform, a ceiling above 100 %)
    floor and ceiling are scaled by actual / expected sales to date instead.
    """
    from scipy.optimize import nnls

    months = list(range(1, actuals.through + 1))
    expected_total = float(reps["expected_to_date"].sum())
    actual_total = float(reps["actual_to_date"].sum())
    scale = actual_total / expected_total if expected_total > 0 else float("nan")
    fit: dict[str, Any] = {"method": "scale", "scale": scale}
    floor, ceiling = prior.floor * scale, prior.ceiling * scale
    reason = "actuals by rep: no unit detail" if actuals.level == "rep" else ""
    if actuals.level == "unit":
        units = run.assignment
        expected = _unit_expected_to_date(run, weights, months)
        annual = units["expected_sales"].to_numpy(float)
        fraction = _divide(expected.to_numpy(), annual)
        actual = actuals.table[actuals.table["month"] <= actuals.through].groupby("id")[
            "sales"].sum().reindex(units["unit_id"], fill_value=0.0).to_numpy()
        potential = units["potential"].to_numpy(float)
        workload = units["workload"].to_numpy(float)
        effort = units["effort_hours"].to_numpy(float)
        if actuals.has_hours:
            hours = actuals.table[actuals.table["month"] <= actuals.through].groupby("id")[
                "hours"].sum().reindex(units["unit_id"], fill_value=0.0).to_numpy()
            effort = np.where(fraction > 0, _divide(hours, fraction), effort)
        coverage = np.minimum(_divide(effort, workload), prior.max_coverage)
        lift = 1.0 - np.exp2(-np.nan_to_num(coverage) / prior.half)
        usable = (fraction > 0) & (potential > 0) & np.isfinite(coverage)
        y = _divide(actual, fraction * potential)
        if usable.sum() < MIN_UNITS_FOR_CURVE:
            reason = f"only {int(usable.sum())} units with sales to date"
        elif np.ptp(lift[usable]) < MIN_LIFT_SPREAD:
            reason = "the units' coverage hardly varies: floor and ceiling cannot be separated"
        else:
            w = np.sqrt(potential[usable] / potential[usable].mean())
            design = np.column_stack([np.ones(usable.sum()), lift[usable]]) * w[:, None]
            (f, span), _ = nnls(design, y[usable] * w)
            fitted = f + span * lift[usable]
            residual = np.sum(potential[usable] * (y[usable] - fitted) ** 2)
            total = np.sum(potential[usable] * (y[usable] - np.average(
                y[usable], weights=potential[usable])) ** 2)
            if span > 0 and f + span <= 1.0:
                floor, ceiling = float(f), float(f + span)
                fit = {"method": "least squares (floor, ceiling; half kept)", "scale": scale,
                       "units": int(usable.sum()),
                       "r2": float(1 - residual / total) if total > 0 else float("nan"),
                       "effort": "actual hours" if actuals.has_hours else "planned effort"}
            else:
                reason = (f"the fitted curve is not usable (floor {f:.3f}, ceiling "
                          f"{f + span:.3f})")
    if reason:
        fit["why_scale"] = reason
    if not (0 <= floor < ceiling <= 1):
        raise InputError(f"the actuals give a response curve outside 0 <= floor < ceiling <= 1 "
                         f"(floor {floor:.3f}, ceiling {ceiling:.3f}, actual / expected "
                         f"{scale:.3f})", file=actuals.file, column="sales")
    performance = {r.rep_id: (None if not np.isfinite(v := r.actual_to_date / r.expected_to_date
                                                      if r.expected_to_date > 0 else np.nan)
                              else round(float(v), 4)) for r in reps.itertuples()}
    return {
        "response": {"floor": round(floor, 6), "ceiling": round(ceiling, 6), "half": prior.half,
                     "max_coverage": prior.max_coverage},
        "previous": {"floor": prior.floor, "ceiling": prior.ceiling, "half": prior.half,
                     "max_coverage": prior.max_coverage},
        "fit": {**{k: (round(v, 6) if isinstance(v, float) else v) for k, v in fit.items()},
                "through": f"{actuals.year}-{actuals.through:02d}",
                "actuals": actuals.file, "synthetic_actuals": actuals.synthetic},
        "rep_performance": performance,
    }


# --- files ------------------------------------------------------------------------------------

def _attainment_figure(evaluation: Evaluation) -> go.Figure:
    import plotly.graph_objects as go

    reps = evaluation.reps.dropna(subset=["attainment"]).sort_values("attainment")
    low, high = evaluation.thresholds.low, evaluation.thresholds.high
    colour = np.where(reps["attainment"] < low, "#e15759",
                      np.where(reps["attainment"] > high, "#59a14f", "#4e79a7"))
    figure = go.Figure(go.Bar(
        y=reps["rep_id"], x=reps["attainment"], orientation="h", marker_color=colour,
        customdata=np.column_stack([reps["territory_id"], reps["actual_to_date"].map(money),
                                    reps["quota_to_date"].map(money)]),
        hovertemplate="%{y} (%{customdata[0]}): %{x:.1%} of quota to date<br>actual "
                      "%{customdata[1]}, quota %{customdata[2]}<extra></extra>"))
    for x, dash in [(low, "dot"), (1.0, "solid"), (high, "dot")]:
        figure.add_vline(x=x, line_dash=dash, line_color="#1f2933", line_width=1)
    figure.update_layout(xaxis_tickformat=".0%", xaxis_title="attainment, year to date",
                         plot_bgcolor="white")
    return figure


def _variance_figure(evaluation: Evaluation) -> go.Figure:
    import plotly.graph_objects as go

    reps = evaluation.reps.sort_values("gap_to_quota")
    figure = go.Figure([
        go.Bar(y=reps["rep_id"], x=reps["territory_part"], orientation="h", name="territory part",
               marker_color="#f28e2b",
               hovertemplate="%{y}: territory part %{x:,.0f}<extra></extra>"),
        go.Bar(y=reps["rep_id"], x=reps["performance_part"], orientation="h",
               name="performance part", marker_color="#76b7b2",
               hovertemplate="%{y}: performance part %{x:,.0f}<extra></extra>"),
        go.Scatter(y=reps["rep_id"], x=reps["gap_to_quota"], mode="markers", name="gap to quota",
                   marker=dict(color="#1f2933", symbol="diamond", size=8),
                   hovertemplate="%{y}: gap to quota %{x:,.0f}<extra></extra>"),
    ])
    figure.update_layout(barmode="relative", legend=dict(orientation="h", y=1.06),
                         xaxis_title="gap to quota to date", plot_bgcolor="white")
    return figure


def _distribution_figure(evaluation: Evaluation) -> go.Figure:
    import plotly.graph_objects as go

    d = evaluation.distribution
    figure = go.Figure(go.Bar(x=d["attainment"], y=d["reps"], marker_color="#4e79a7",
                              text=[pct(s, 0) for s in d["share"]], textposition="outside",
                              hovertemplate="%{x}: %{y} reps<extra></extra>"))
    figure.update_layout(yaxis_title="reps", plot_bgcolor="white")
    return figure


def _balance_figure(evaluation: Evaluation) -> go.Figure:
    import plotly.graph_objects as go

    b = evaluation.balance.sort_values("sales_index")
    traces = [go.Bar(y=b["rep_id"], x=b["planned_workload_index"], orientation="h",
                     name="planned workload", marker_color="#bab0ac"),
              go.Bar(y=b["rep_id"], x=b["sales_index"], orientation="h", name="actual sales",
                     marker_color="#4e79a7")]
    for column, colour in [("calls_index", "#f28e2b"), ("hours_index", "#59a14f")]:
        if column in b.columns:
            traces.append(go.Bar(y=b["rep_id"], x=b[column], orientation="h",
                                 name=column.replace("_index", ""), marker_color=colour))
    figure = go.Figure(traces)
    figure.add_vline(x=1.0, line_color="#1f2933", line_width=1)
    figure.update_layout(barmode="group", xaxis_title="per rep, x mean of the active reps",
                         legend=dict(orientation="h", y=1.04), plot_bgcolor="white")
    return figure


def _money_columns(frame: pd.DataFrame) -> dict:
    keys = ("quota", "expected", "actual_to_date", "gap", "part", "projection", "error",
            "actual_sales", "sales")
    return {c: (lambda v: money(v) if isinstance(v, (float, np.floating, int)) and np.isfinite(v)
                else "") for c in frame.columns
            if any(k in c for k in keys) and "attainment" not in c and "index" not in c
            and "share" not in c}


def _table(frame: pd.DataFrame, table_id: str, percent: tuple[str, ...] = ()) -> str:
    formats = _money_columns(frame)
    for column in frame.columns:
        if column in percent or any(k in column for k in ("attainment", "ape", "share")):
            formats[column] = lambda v: pct(v) if isinstance(v, (float, np.floating)) else str(v)
        if column.endswith("_index"):
            formats[column] = lambda v: f"{v:.2f}" if np.isfinite(v) else ""
    return html_table(frame, formats, table_id=table_id)


def build_evaluation_html(evaluation: Evaluation, currency: str) -> str:
    s = evaluation.summary
    through = evaluation.through_label
    kpis = [
        dict(label=f"Attainment to {through}", value=pct(s["attainment"]),
             note=f"actual {money(s['actual_to_date'])} of quota {money(s['quota_to_date'])} "
                  f"{currency}", tone="good" if s["attainment"] >= 1 else "warn"),
        dict(label="Projection to year end", value=money(s["projection"]),
             note=f"{pct(s['projection'] / s['annual_quota'])} of the annual quota "
                  f"{money(s['annual_quota'])}", tone=""),
        dict(label="Reps at or above quota", value=pct(s["share_at_or_above_quota"], 0),
             note=f"of {s['reps_with_quota']} reps with a quota; median attainment "
                  f"{pct(s['median_attainment'])}; sound plans aim at 60-70 %",
             tone="good" if 0.6 <= s["share_at_or_above_quota"] <= 0.7 else "warn"),
        dict(label="Flags", value=f"{s['flagged_below']} below · {s['flagged_above']} above",
             note=f"below {pct(s['low'], 0)} or above {pct(s['high'], 0)} of quota to date",
             tone="warn" if s["flagged_below"] else ""),
        dict(label="Plan accuracy (MAPE)", value=pct(s["mape"]),
             note=f"by territory; bias {pct(s['bias'])} (positive: the plan expected too much)",
             tone=""),
        dict(label="Recalibrated response", value=(
            f"{evaluation.response['response']['floor']:.3f} / "
            f"{evaluation.response['response']['ceiling']:.3f}"),
            note=(f"floor / ceiling (was {evaluation.response['previous']['floor']:.3f} / "
                  f"{evaluation.response['previous']['ceiling']:.3f}); "
                  f"{evaluation.response['fit']['method']}"), tone=""),
    ]
    top = evaluation.reps.dropna(subset=["attainment"])
    best = top.iloc[0] if len(top) else None
    worst = top.iloc[-1] if len(top) else None
    headline = (f"Through {through}, the sales force booked {money(s['actual_to_date'])} "
                f"{currency}: {pct(s['attainment'])} of the seasonal quota to date and "
                f"{pct(s['actual_to_date'] / s['expected_to_date'])} of what the plan expected. ")
    if best is not None:
        headline += (f"Best: {best['rep_id']} at {pct(best['attainment'])}; lowest: "
                     f"{worst['rep_id']} at {pct(worst['attainment'])}. ")
    main_miss = evaluation.assumptions.dropna(subset=["miss"])
    main_miss = main_miss[~main_miss["assumption"].str.startswith("unit market")]
    if len(main_miss):
        miss = main_miss.iloc[0]
        headline += (f"The plan assumption that missed most: {miss['assumption']} "
                     f"({miss['miss']:+.1%}).")
    warning = ("These actuals are SYNTHETIC (allocator simulate-actuals): they test the "
               "evaluation, they describe no real results.") if evaluation.synthetic else ""
    return render(
        "evaluation.html.j2",
        title=f"Evaluation to {through}: {evaluation.scenario}",
        subtitle=f"run {evaluation.run_id} · actuals {evaluation.actuals_file} "
                 f"({evaluation.level} level)",
        nav=[("#attainment", "Attainment"), ("#variance", "Variance split"),
             ("#distribution", "Distribution"), ("#accuracy", "Plan accuracy"),
             ("#balance", "Balance in practice"), ("#response", "Response"),
             ("evaluation.xlsx", "evaluation.xlsx"), ("report.html", "report.html")],
        headline=headline, warning=warning, kpis=kpis, currency=currency,
        low=pct(evaluation.thresholds.low, 0), high=pct(evaluation.thresholds.high, 0),
        attainment_div=figure_div(_attainment_figure(evaluation), "attainment-chart",
                                  max(320, 22 * len(evaluation.reps) + 100)),
        variance_div=figure_div(_variance_figure(evaluation), "variance-chart",
                                max(320, 22 * len(evaluation.reps) + 100)),
        distribution_div=figure_div(_distribution_figure(evaluation), "distribution-chart", 320),
        balance_div=figure_div(_balance_figure(evaluation), "balance-chart",
                               max(320, 26 * len(evaluation.reps) + 100)),
        rep_table=_table(evaluation.reps, "rep-table"),
        territory_table=_table(evaluation.territories, "territory-table"),
        region_table=_table(evaluation.regions, "region-table"),
        month_table=_table(evaluation.months, "month-table"),
        assumption_table=html_table(evaluation.assumptions, {
            "planned": _fmt_assumption, "actual": _fmt_assumption,
            "miss": lambda v: f"{v:+.1%}" if np.isfinite(v) else ""}, table_id="assumption-table"),
        unit_table=_table(evaluation.unit_misses, "unit-table", ("miss_share",))
        if len(evaluation.unit_misses) else "",
        balance_table=_table(evaluation.balance, "balance-table"),
        distribution_table=_table(evaluation.distribution, "distribution-table"),
        share=pct(s["share_at_or_above_quota"], 0), median=pct(s["median_attainment"]),
        response_yaml=yaml.safe_dump({k: v for k, v in evaluation.response.items()
                                      if k != "rep_performance"}, sort_keys=False),
    )


def _fmt_assumption(value: float) -> str:
    if not np.isfinite(value):
        return ""
    return f"{value:.1%}" if abs(value) <= 1 else f"{value:,.0f}"


def write_evaluation(run: RunRecord | str | Path, actuals_path: str | Path, *,
                     reports_dir: str | Path = "reports", thresholds: Thresholds = Thresholds()
                     ) -> tuple[Evaluation, dict[str, Path]]:
    """Evaluate a run against an actuals file and write evaluation.html/.xlsx/.csv and
    response_recalibrated.yaml into the run's report folder."""
    record = run if isinstance(run, RunRecord) else read_run(run)
    scenario = record.load_scenario()
    actuals = read_actuals(actuals_path, record, scenario)
    evaluation = evaluate(record, actuals, thresholds, scenario.settings.response)
    currency = scenario.settings.currency

    def xlsx(path: Path) -> None:
        summary = pd.DataFrame({"figure": list(evaluation.summary),
                                "value": list(evaluation.summary.values())})
        with pd.ExcelWriter(path, engine="openpyxl") as writer:
            write_sheet(writer, summary, "Summary")
            write_sheet(writer, evaluation.reps, "Reps")
            write_sheet(writer, evaluation.territories, "Territories")
            write_sheet(writer, evaluation.regions, "Regions")
            write_sheet(writer, evaluation.months, "Months")
            write_sheet(writer, evaluation.assumptions, "Assumptions")
            if len(evaluation.unit_misses):
                write_sheet(writer, evaluation.unit_misses, "Unit misses")
            write_sheet(writer, evaluation.balance, "Balance")
            write_sheet(writer, evaluation.distribution, "Distribution")

    def recalibrated(path: Path) -> None:
        header = (f"# Response parameters recalibrated from actuals through "
                  f"{evaluation.through_label}\n# for mid-year re-optimisation: the 'response' "
                  f"section replaces the scenario's.\n")
        if evaluation.synthetic:
            header += "# SYNTHETIC actuals: for testing only.\n"
        path.write_text(header + yaml.safe_dump(evaluation.response, sort_keys=False),
                        encoding="utf-8")

    files = publish({
        "evaluation.csv": lambda p: evaluation.reps.to_csv(p, index=False),
        "evaluation.xlsx": xlsx,
        "response_recalibrated.yaml": recalibrated,
        "evaluation.html": lambda p: p.write_text(build_evaluation_html(evaluation, currency),
                                                  encoding="utf-8"),
    }, report_folder(record, reports_dir))
    return evaluation, files


def summary_json(evaluation: Evaluation) -> str:
    return json.dumps({k: (None if isinstance(v, float) and not np.isfinite(v) else v)
                       for k, v in evaluation.summary.items()}, indent=2)


__all__ = ["Evaluation", "Thresholds", "evaluate", "recalibrate_response", "write_evaluation",
           "MONTH_NAMES"]
