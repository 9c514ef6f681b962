"""The sales-force sizing curve: the plan at each head count, and the best head count.

Each point is the scenario solved with its head count fixed (``strategy.headcount.min = max =
N``), so every point is planned by exactly the engine's per-head-count routine that ``solve``
uses when it visits ``N`` (staffing, alignment, exact re-solves, LP bound, plan check). The best
point is the point of highest objective within the scenario's allowed head counts, which is the
head count ``solve`` picks when its search visits the same points. The points run as a batch
(same executors, run folders and ``resume``).
"""

from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from allocator.batching import (BatchJob, BatchOutcome, PAGE, batch_id, display_table, execute,
                                write_folder_atomically)
from allocator.exceptions import InfeasibleError, InputError, NoSolutionError, SpecificationError

#: Errors that mean "this head count has no plan" (over budget, cannot balance in time): points
#: of the curve, not failures of the command.
NO_PLAN_ERRORS = (InfeasibleError, NoSolutionError, SpecificationError)


def parse_headcounts(spec: str | Sequence[int]) -> list[int]:
    """``"40:120:5"`` (first:last:step, last included), ``"40:120"`` (step 1) or ``"40,60,80"``."""
    if not isinstance(spec, str):
        values = [int(v) for v in spec]
    else:
        text = spec.strip()
        try:
            if ":" in text:
                pieces = [int(p) for p in text.split(":")]
                if len(pieces) not in (2, 3):
                    raise ValueError
                first, last = pieces[0], pieces[1]
                step = pieces[2] if len(pieces) == 3 else 1
                if step < 1 or last < first:
                    raise InputError("needs first <= last and a step of at least 1",
                                     column="--headcount", value=spec)
                values = list(range(first, last + 1, step))
            else:
                values = [int(p) for p in text.split(",")]
        except ValueError:
            raise InputError("head counts are FIRST:LAST:STEP, FIRST:LAST or N1,N2,... (whole "
                             "numbers)", column="--headcount", value=spec) from None
    if not values or min(values) < 1:
        raise InputError("head counts must be whole numbers of at least 1",
                         column="--headcount", value=spec)
    return sorted(set(values))


def default_headcounts(low: int, high: int, points: int = 15) -> list[int]:
    """The scenario's own head-count range in at most ``points`` even steps."""
    step = max(1, math.ceil((high - low) / max(points - 1, 1)))
    return list(range(low, high + 1, step))


@dataclass
class SizingCurve:
    """The curve's table (one row per head count), its best point and where it was written."""

    table: pd.DataFrame
    best: int | None
    scenario: str
    budget: float | None
    allowed: tuple[int, int]
    objective: str
    outcome: BatchOutcome
    out: Path | None = None

    @property
    def failed(self) -> pd.DataFrame:
        """Points that failed for another reason than having no plan (an engine error)."""
        return self.table[self.table["status"] == "error"]

    def summary(self) -> dict[str, Any]:
        best = self.table[self.table["headcount"] == self.best]
        return {
            "scenario": self.scenario, "best_headcount": self.best,
            "best": None if best.empty else _plain_row(best.iloc[0]),
            "allowed_headcount": list(self.allowed), "budget": self.budget,
            "points": int(len(self.table)),
            "with_plan": int((self.table["status"].isin(["optimal", "feasible"])).sum()),
            "no_plan": int((self.table["status"] == "no_plan").sum()),
            "failed": int(len(self.failed)), "wall_s": round(self.outcome.wall_s, 3),
            "executor": self.outcome.executor,
            "curve_csv": str(self.out / "curve.csv") if self.out else None,
            "html": str(self.out / "sizing.html") if self.out else None,
            "png": str(self.out / "sizing.png") if self.out else None,
        }


def _plain_row(row: pd.Series) -> dict[str, Any]:
    out = {}
    for key, value in row.items():
        if isinstance(value, (np.integer,)):
            value = int(value)
        elif isinstance(value, (np.floating, float)):
            value = None if not np.isfinite(value) else float(value)
        elif value is pd.NA:
            value = None
        out[key] = value
    return out


def sizing_curve(scenario_file: str | Path, headcounts: str | Sequence[int] | None = None, *,
                 models_dir: str | Path = "models", out: str | Path | None = None,
                 reports_dir: str | Path = "reports", jobs: int | None = None,
                 scheduler: str | None = None, dask_local: int | None = None,
                 resume: bool = False, show_progress: bool = False,
                 **solver_options: Any) -> SizingCurve:
    """Solve the scenario at each head count and draw the sizing chart (HTML and PNG).

    ``headcounts`` defaults to the scenario's ``strategy.headcount`` range in about 15 steps.
    Writes ``curve.csv``, ``sizing.png`` and ``sizing.html`` into ``out`` (default
    ``<reports_dir>/sizing-<scenario>-<id>``) and one run folder per head count.
    """
    from allocator.scenario import load_scenario

    counts = None if headcounts is None else parse_headcounts(headcounts)
    path = Path(scenario_file)
    if not path.is_file():
        raise InputError("scenario file not found", file=str(path))
    base = load_scenario(path)
    strategy = base.settings.strategy
    allowed = (strategy.headcount.min, strategy.headcount.max)
    counts = counts or default_headcounts(*allowed)
    options = tuple((k, v) for k, v in solver_options.items() if v is not None)
    job_list = [BatchJob(label=f"{path.stem} N={n}", scenario_file=str(path.resolve()),
                         changes=(("strategy.headcount.min", n), ("strategy.headcount.max", n)),
                         solver_options=options, models_dir=str(Path(models_dir).resolve()))
                for n in counts]
    outcome = execute(job_list, jobs_in_parallel=jobs, scheduler=scheduler,
                      dask_local=dask_local, resume=resume, show_progress=show_progress,
                      title=f"sizing {base.name}")
    table = curve_table(outcome, counts, allowed, sizing_bounds(base, counts))
    best = best_headcount(table)
    curve = SizingCurve(table=table, best=best, scenario=base.name, budget=strategy.budget,
                        allowed=allowed, objective=strategy.objective, outcome=outcome)
    target = (Path(out) if out is not None else
              Path(reports_dir) / f"sizing-{base.name}-{batch_id(job_list)}")
    curve.out = write_folder_atomically(target, lambda folder: _write(curve, folder))
    return curve


def sizing_bounds(base, counts: Sequence[int]) -> dict[int, float]:
    """The engine's sizing bound ``UB(N)`` (pooled response, cheapest people) at each point;
    drawn as the ceiling the plans can approach. Empty where it does not apply."""
    from allocator.exceptions import AllocatorError
    from allocator.sizing import size_bounds

    if base.settings.strategy.objective == "balance":
        return {}
    try:
        widened = base.with_settings(strategy={"headcount": {"min": min(counts),
                                                             "max": max(counts)}})
    except AllocatorError:
        return {}
    return {b.headcount: b.value_bound for b in size_bounds(widened) if b.headcount in counts
            and b.feasible}


def curve_table(outcome: BatchOutcome, counts: Sequence[int], allowed: tuple[int, int],
                bounds: dict[int, float]) -> pd.DataFrame:
    """One row per head count: the plan's sales, cost and contribution, or why it has none."""
    rows = []
    comparison = outcome.comparison
    for position, n in enumerate(counts):
        row = comparison.iloc[position]
        error = outcome.errors.get(position)
        status = row["status"]
        if error is not None:
            status = "no_plan" if isinstance(error, NO_PLAN_ERRORS) else "error"
        rows.append({
            "headcount": n,
            "allowed": allowed[0] <= n <= allowed[1],
            "status": status,
            "expected_sales": row["expected_sales"], "cost": row["cost"],
            "contribution": row["contribution"], "objective": row["objective"],
            "bound": row["bound"], "sizing_bound": bounds.get(n, np.nan),
            "kept": row["kept"], "hires": row["hires"], "territories": row["territories"],
            "budget_used": row["budget_used"], "gap": row["gap"],
            "runtime_s": row["runtime_s"], "run_folder": row["run_folder"],
            "error": row["error"],
        })
    table = pd.DataFrame(rows)
    for column in ("expected_sales", "cost", "contribution", "objective", "bound",
                   "sizing_bound", "budget_used", "gap", "runtime_s"):
        table[column] = pd.to_numeric(table[column], errors="coerce").astype(float)
    for column in ("kept", "hires", "territories"):
        table[column] = table[column].astype("Int64")
    return table


def best_headcount(table: pd.DataFrame) -> int | None:
    """The head count of highest objective among the points with a plan, within the allowed
    range where any allowed point has a plan (ties: the smaller organisation)."""
    planned = table[table["status"].isin(["optimal", "feasible"])]
    inside = planned[planned["allowed"]]
    pool = inside if len(inside) else planned
    if pool.empty:
        return None
    top = pool["objective"].max()
    return int(pool.loc[pool["objective"] == top, "headcount"].min())


# --- chart and page -----------------------------------------------------------------------------

def draw(curve: SizingCurve):
    """The classic sizing chart: sales, cost and contribution against head count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = curve.table
    planned = table[table["status"].isin(["optimal", "feasible"])]
    money = pd.concat([table[["expected_sales", "cost", "contribution", "sizing_bound"]]
                       .stack(), pd.Series([curve.budget or 0.0])])
    scale, unit = (1e6, "millions") if np.nanmax(np.abs(money.to_numpy(float))) >= 1e6 else \
        (1e3, "thousands")
    fig, ax = plt.subplots(figsize=(11, 5.2), dpi=110)
    x = planned["headcount"]
    ax.plot(x, planned["expected_sales"] / scale, "o-", color="#1f77b4", label="expected sales")
    ax.plot(x, planned["cost"] / scale, "s-", color="#d62728", label="cost")
    ax.plot(x, planned["contribution"] / scale, "^-", color="#2ca02c",
            label="contribution (margin x sales - cost)")
    bounds = table.dropna(subset=["sizing_bound"])
    if len(bounds) and curve.objective == "max_contribution":
        ax.plot(bounds["headcount"], bounds["sizing_bound"] / scale, ":", color="#2ca02c",
                alpha=0.6, label="contribution bound (sizing)")
    if curve.budget:
        ax.axhline(curve.budget / scale, color="#7f7f7f", linestyle="--",
                   label=f"budget {curve.budget / scale:,.2f}")
    low, high = curve.allowed
    ax.axvspan(max(low, table["headcount"].min()) - 0.5, min(high, table["headcount"].max()) + 0.5,
               color="#f2f2f2", zorder=0, label="allowed head count")
    no_plan = table[~table["status"].isin(["optimal", "feasible"])]
    for k, n in enumerate(no_plan["headcount"]):
        ax.axvline(n, color="#d62728", alpha=0.15, linewidth=3,
                   label="no plan (see the table)" if k == 0 else None)
    if curve.best is not None:
        best = table[table["headcount"] == curve.best].iloc[0]
        y = (best["contribution"] if curve.objective != "min_cost" else best["cost"]) / scale
        ax.plot([curve.best], [y], marker="*", markersize=20, color="#ff7f0e", zorder=5,
                linestyle="none", label=f"best: {curve.best} reps")
        ax.annotate(f"best {curve.best} reps\n{best['contribution'] / scale:,.2f} contribution",
                    (curve.best, y), textcoords="offset points", xytext=(10, 14), fontsize=9)
    ax.set_xlabel("head count (reps)")
    ax.set_ylabel(f"per plan year, {unit}")
    ax.set_title(f"Sales-force sizing: {curve.scenario}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    return fig


def _write(curve: SizingCurve, folder: Path) -> None:
    import matplotlib.pyplot as plt

    curve.table.to_csv(folder / "curve.csv", index=False)
    fig = draw(curve)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    (folder / "sizing.png").write_bytes(buffer.getvalue())
    image = base64.b64encode(buffer.getvalue()).decode("ascii")
    if curve.best is None:
        text = "No head count of the curve has a plan."
    else:
        best = curve.table[curve.table["headcount"] == curve.best].iloc[0]
        text = (f"Best head count {curve.best}: expected sales {best['expected_sales']:,.0f}, "
                f"cost {best['cost']:,.0f}, contribution {best['contribution']:,.0f}"
                + (f", budget {curve.budget:,.0f}" if curve.budget else "") +
                f". Allowed head counts {curve.allowed[0]}-{curve.allowed[1]}.")
    shown = display_table(curve.table.drop(columns=["run_folder"]))
    body = (f'<img alt="sizing chart" src="data:image/png;base64,{image}">\n'
            + shown.to_html(index=False, border=0, classes="curve", escape=True))
    page = PAGE.format(title=html.escape(f"Sizing curve: {curve.scenario}"),
                       summary=html.escape(text), body=body)
    (folder / "sizing.html").write_text(page, encoding="utf-8")
