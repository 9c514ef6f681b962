"""Actual results of the plan year: the reader, and a seeded generator of synthetic actuals.

An actuals table holds sales (and optionally activity) by month, either by unit or by rep:

=============  ===========================================================================
column         meaning
=============  ===========================================================================
``unit_id``    a unit of the run's scenario (unit level), **or**
``rep_id``     a rep of the run's plan (rep level; released reps are not in the plan)
``month``      ``YYYY-MM`` inside the scenario's plan year (``year`` in the scenario file)
``sales``      sales booked in that month, in the scenario's currency, finite and >= 0
``calls``      optional: sales calls made, >= 0
``hours``      optional: selling hours spent, >= 0
``source``     optional: free text saying where the figures come from (synthetic files say so)
=============  ===========================================================================

Every (id, month) appears at most once. The months covered run from January through the last
month present, and each of them must have at least one row (a whole missing month is an error,
not zero sales). An id with no row in a covered month booked nothing that month (zero): that is
how sales systems export sparse data, and the count of such cells is reported.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from allocator import read
from allocator.exceptions import InputError

if TYPE_CHECKING:
    from allocator.runs import RunRecord
    from allocator.scenario import Scenario

MONTH_PATTERN = re.compile(r"^(\d{4})-(\d{2})$")
ACTIVITY_COLUMNS = ("calls", "hours")
SYNTHETIC_SOURCE = "SYNTHETIC: allocator simulate-actuals"

# Synthetic actuals: spreads of the log-normal factors (median 1 after the mean correction).
REP_PERFORMANCE_SPREAD = 0.12  # a rep's skill: most reps within about +-25 % of plan
REP_EFFORT_SPREAD = 0.08  # hours a rep actually sells against the plan
UNIT_BIAS_SPREAD = 0.15  # how far the plan's potential of a unit is off, for the whole year
UNIT_NOISE_SPREAD = 0.20  # month-to-month noise of a unit's sales
HOURS_PER_CALL = 1.5  # selling hours per sales call (travel included), for the calls column


@dataclass(frozen=True)
class Actuals:
    """Validated actuals: one row per (id, month) of the covered months, zeros filled in.

    ``table`` has the columns ``id, month, sales`` and ``calls``/``hours`` where given, with
    ``month`` as an integer 1..12 of the plan year. ``level`` says what ``id`` is.
    """

    level: Literal["unit", "rep"]
    table: pd.DataFrame
    through: int
    year: int
    file: str
    source: str
    filled_zero: int

    @property
    def has_hours(self) -> bool:
        return "hours" in self.table.columns

    @property
    def has_calls(self) -> bool:
        return "calls" in self.table.columns

    @property
    def synthetic(self) -> bool:
        return "SYNTHETIC" in self.source.upper()

    def through_label(self) -> str:
        return f"{self.year}-{self.through:02d}"


def parse_month(text: str, year: int, *, file: str | None = None, row: int | None = None,
                column: str = "month") -> int:
    """``YYYY-MM`` of the plan year as a month number 1..12; anything else is an InputError."""
    match = MONTH_PATTERN.match(str(text).strip())
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise InputError("month must be written YYYY-MM (e.g. 2027-06)", file=file, row=row,
                         column=column, value=text)
    if int(match.group(1)) != year:
        raise InputError(f"month lies outside the plan year {year}", file=file, row=row,
                         column=column, value=text)
    return int(match.group(2))


def read_actuals(path: str | Path, run: RunRecord, scenario: Scenario | None = None, *,
                 year: int | None = None) -> Actuals:
    """Read and validate an actuals table (CSV, XLSX or Parquet) against a run.

    The plan year is ``year`` if given, else that of ``scenario`` (the run's, loaded again from
    its file when not given either).
    """
    file = str(path)
    if year is None:
        scenario = scenario if scenario is not None else run.load_scenario()
        year = scenario.settings.year
    frame = read.read_table(Path(path))
    frame.columns = [str(c).strip() for c in frame.columns]
    if "unit_id" in frame.columns and "rep_id" in frame.columns:
        raise InputError("give either unit_id (sales by unit) or rep_id (sales by rep), not both",
                         file=file, column="rep_id")
    if "unit_id" in frame.columns:
        level, id_column = "unit", "unit_id"
        known = {uid: k for k, uid in enumerate(run.assignment["unit_id"])}
    elif "rep_id" in frame.columns:
        level, id_column = "rep", "rep_id"
        known = {rid: k for k, rid in enumerate(run.reps["rep_id"])}
    else:
        raise InputError(f"needs a unit_id or a rep_id column; the table has {list(frame.columns)}",
                         file=file, column="unit_id")
    read.require_columns(frame, [id_column, "month", "sales"], file)
    allowed = {id_column, "month", "sales", "source", *ACTIVITY_COLUMNS}
    extra = [c for c in frame.columns if c not in allowed]
    if extra:
        raise InputError(f"unknown column(s) {extra}; allowed: {sorted(allowed)}", file=file,
                         column=extra[0])
    # blank lines of a CSV are read as empty rows; they carry no data and are left out
    frame = frame[~frame.astype(str).apply(lambda col: col.str.strip()).eq("").all(axis=1)]
    if frame.empty:
        raise InputError("table has no rows", file=file)
    rows = frame.index.to_numpy() + 2  # spreadsheet row numbers of the remaining records

    ids = frame[id_column].astype(str).str.strip()
    for k, value in enumerate(ids):
        if value == "" or value.lower() in {"nan", "none"}:
            raise InputError("empty identifier", file=file, row=int(rows[k]), column=id_column,
                             value="")
        if value not in known:
            what = "unit (not in the run's assignment)" if level == "unit" else \
                "rep (not a rep of the run's plan)"
            raise InputError(f"unknown {what}", file=file, row=int(rows[k]), column=id_column,
                             value=value)
    months = np.array([parse_month(v, year, file=file, row=int(rows[k]))
                       for k, v in enumerate(frame["month"].astype(str))], dtype=np.int64)
    table = pd.DataFrame({"id": ids.to_numpy(), "month": months})
    for column in ["sales", *[c for c in ACTIVITY_COLUMNS if c in frame.columns]]:
        table[column] = _non_negative(frame[column], rows, column, file)
    duplicated = table.duplicated(["id", "month"])
    if duplicated.any():
        k = int(np.flatnonzero(duplicated.to_numpy())[0])
        raise InputError(f"duplicate {id_column} and month (each pair may appear once)", file=file,
                         row=int(rows[k]), column="month", value=f"{ids.iloc[k]} {frame['month'].iloc[k]}")
    through = int(months.max())
    missing = sorted(set(range(1, through + 1)) - set(months.tolist()))
    if missing:
        raise InputError(
            f"no rows for month(s) {', '.join(f'{year}-{m:02d}' for m in missing)}: the actuals "
            f"must cover every month from {year}-01 through the last one given "
            f"({year}-{through:02d})", file=file, column="month")
    source = ""
    if "source" in frame.columns:
        source = "; ".join(sorted({str(s).strip() for s in frame["source"] if str(s).strip()}))
    full = pd.MultiIndex.from_product([list(known), range(1, through + 1)], names=["id", "month"])
    indexed = table.set_index(["id", "month"])
    filled = indexed.reindex(full, fill_value=0.0).reset_index()
    return Actuals(level=level, table=filled, through=through, year=year, file=file,
                   source=source, filled_zero=int(len(full) - len(indexed)))


def _non_negative(raw: pd.Series, rows: np.ndarray, column: str, file: str) -> np.ndarray:
    values = pd.to_numeric(raw.astype(str).str.strip(), errors="coerce").to_numpy(dtype=float)
    for k, value in enumerate(values):
        if not np.isfinite(value):
            raise InputError("not a finite number", file=file, row=int(rows[k]), column=column,
                             value=raw.iloc[k])
        if value < 0:
            raise InputError("must be >= 0", file=file, row=int(rows[k]), column=column,
                             value=raw.iloc[k])
    return values


# --- planned monthly shape ------------------------------------------------------------------------

def rep_month_weights(run: RunRecord) -> pd.DataFrame:
    """Each rep's share of the annual quota falling in each month (rows: rep_id, 12 columns).

    The quota table already carries the seasonality and each hire's start and ramp, so its
    monthly shape is the plan's expectation of when sales come in.
    """
    months = [f"{m:02d}" for m in range(1, 13)]
    quotas = run.quotas.set_index("rep_id")[months].astype(float)
    totals = quotas.sum(axis=1).replace(0.0, np.nan)
    weights = quotas.div(totals, axis=0).fillna(1.0 / 12)
    weights.columns = range(1, 13)
    return weights


def territory_month_weights(run: RunRecord) -> pd.DataFrame:
    """A territory's monthly shape: its reps' shapes weighted by their expected sales."""
    reps = run.reps.set_index("rep_id")
    weights = rep_month_weights(run).mul(reps["expected_sales"].astype(float), axis=0)
    weights["territory_id"] = reps["territory_id"]
    summed = weights.groupby("territory_id").sum()
    return summed.div(summed.sum(axis=1), axis=0)


# --- synthetic actuals ----------------------------------------------------------------------------

def simulate_actuals(run: RunRecord, through: str | int | None = None, seed: int = 0,
                     scenario: Scenario | None = None) -> pd.DataFrame:
    """Seeded synthetic monthly actuals by unit for the months January..``through``.

    Why these draws: real results differ from a plan because reps differ (a performance factor
    per rep, and how many of the planned hours they really sell), because the plan's market
    figures are off for some units all year (a bias per unit), and because months are noisy
    (noise per unit and month). Sales follow the plan's monthly shape (seasonality, and each
    hire's start and ramp). Every factor is log-normal with mean 1, so on average the plan is met.

    Columns: ``unit_id, month, sales, calls, hours, source``; ``source`` marks every row
    synthetic.
    """
    scenario = scenario if scenario is not None else run.load_scenario()
    year = scenario.settings.year
    last = 6 if through is None else (
        through if isinstance(through, int) else parse_month(through, year, column="--through"))
    if not 1 <= last <= 12:
        raise InputError("through must be a month 1..12", column="--through", value=through)
    rng = np.random.default_rng(seed)
    reps = run.reps.reset_index(drop=True)
    performance = _lognormal(rng, REP_PERFORMANCE_SPREAD, len(reps))
    effort = _lognormal(rng, REP_EFFORT_SPREAD, len(reps))
    # response to extra hours is concave: a rep selling 10 % more hours sells about 5 % more
    reps = reps.assign(performance=performance * effort ** 0.5, effort=effort)
    weights = rep_month_weights(run)
    expected = reps["expected_sales"].astype(float).to_numpy()
    hours = reps["effective_hours"].astype(float).to_numpy()

    # per territory and month: expected sales, and the factor of its reps (by expected sales)
    month_cols = list(range(1, last + 1))
    rep_month = weights.loc[reps["rep_id"], month_cols].to_numpy()
    by_territory = pd.DataFrame({
        "territory_id": reps["territory_id"],
        **{f"exp{m}": expected * rep_month[:, k] for k, m in enumerate(month_cols)},
        **{f"act{m}": expected * rep_month[:, k] * reps["performance"] for k, m in
           enumerate(month_cols)},
        **{f"hrs{m}": hours * rep_month[:, k] * reps["effort"] for k, m in
           enumerate(month_cols)},
    }).groupby("territory_id").sum()

    units = run.assignment
    n = len(units)
    bias = _lognormal(rng, UNIT_BIAS_SPREAD, n)
    noise = _lognormal(rng, UNIT_NOISE_SPREAD, (n, len(month_cols)))
    territory = units["territory_id"].to_numpy()
    territory_expected = units.groupby("territory_id")["expected_sales"].transform("sum")
    territory_effort = units.groupby("territory_id")["effort_hours"].transform("sum")
    sales_share = (units["expected_sales"] / territory_expected).to_numpy(float)
    effort_share = (units["effort_hours"] / territory_effort.replace(0.0, np.nan)).fillna(0.0)
    frames = []
    for k, m in enumerate(month_cols):
        terr = by_territory.loc[territory]
        sales = terr[f"act{m}"].to_numpy() * sales_share * bias * noise[:, k]
        unit_hours = terr[f"hrs{m}"].to_numpy() * effort_share.to_numpy(float)
        calls = rng.poisson(unit_hours / HOURS_PER_CALL)
        frames.append(pd.DataFrame({
            "unit_id": units["unit_id"].to_numpy(), "month": f"{year}-{m:02d}",
            "sales": np.round(sales, 2), "calls": calls, "hours": np.round(unit_hours, 1)}))
    table = pd.concat(frames, ignore_index=True)
    table["source"] = f"{SYNTHETIC_SOURCE} (seed {seed})"
    return table


def _lognormal(rng: np.random.Generator, spread: float, size) -> np.ndarray:
    """Log-normal draws with mean exactly 1 in expectation."""
    return rng.lognormal(-0.5 * spread ** 2, spread, size)


def write_table_atomic(table: pd.DataFrame, path: Path) -> Path:
    """Write a CSV through a temporary file in the same folder and rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".tmp-", suffix=".csv", dir=path.parent)
    os.close(handle)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes it private; a report is not
        table.to_csv(temporary, index=False)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
