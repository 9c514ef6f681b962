"""The scenario file's settings: typed, validated, with defaults and stated units of measure.

A scenario YAML file has one section per model below. Every money figure is in the scenario's
``currency`` per plan year unless stated; hours are hours per plan year; distances are kilometres
(or the coordinate unit for ``coordinates: planar``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Section(BaseModel):
    # infinite or NaN figures are never a setting (a budget of .inf would disable the budget)
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class TableSpec(_Section):
    """A table file (CSV, Parquet or XLSX) relative to the scenario file."""

    table: str
    sheet: str | None = None


class GeometrySpec(_Section):
    """A geometry file that geopandas reads, joined to the units by ``id``."""

    file: str
    layer: str | None = None
    id: str = "unit_id"


class UnitsSpec(TableSpec):
    id: str = "unit_id"
    potential: str = "potential"
    workload: str = "workload"
    last_year_sales: str = "last_year_sales"
    name: str | None = None
    region: str | None = None
    lon: str | None = "lon"
    lat: str | None = "lat"
    x: str | None = None
    y: str | None = None
    coordinates: Literal["lonlat", "planar"] = "lonlat"
    lock: str | None = Field(None, description="column naming the rep a unit must stay with")
    geometry: GeometrySpec | None = None
    measures_of_units: dict[str, str] = Field(
        default_factory=lambda: {
            "potential": "currency/year",
            "workload": "hours/year",
            "last_year_sales": "currency",
        },
        description="unit of measure of each numeric column, stated for the reader",
    )


class AdjacencySpec(_Section):
    source: Literal["geometry", "edges"] = "geometry"
    edges: str | None = None
    source_column: str = "a"
    target_column: str = "b"
    length: str | None = Field(
        None, description="edge column with the length of the link (distance unit); diameters "
        "are then shortest-path distances over the graph, else straight-line distances")
    islands: Literal["nearest", "error"] = "nearest"

    @model_validator(mode="after")
    def _edges_file(self) -> AdjacencySpec:
        if self.source == "edges" and not self.edges:
            raise ValueError("adjacency.source is 'edges' but adjacency.edges names no file")
        return self


class RepsSpec(TableSpec):
    id: str = "rep_id"
    home_unit: str = "home_unit"
    annual_cost: str = "annual_cost"
    capacity_hours: str = "capacity_hours"
    productivity: str = "productivity"
    name: str | None = "name"
    lock: Literal["free", "keep"] = Field(
        "free", description="'keep': every existing rep stays; 'free': the optimiser may let reps go"
    )
    release_cost: float = Field(0.0, ge=0, description="severance per rep let go (currency)")


class HireSitesSpec(TableSpec):
    unit: str = "unit_id"
    max_hires: str = "max_hires"


class HiringSpec(_Section):
    sites: HireSitesSpec | None = None
    annual_cost: float = Field(150_000, ge=0)
    hire_cost: float = Field(20_000, ge=0)
    training_cost: float = Field(12_000, ge=0)
    capacity_hours: float = Field(1_600, gt=0)
    productivity: float = Field(1.0, gt=0)
    ramp_months: int = Field(4, ge=0, le=12)
    ramp_productivity: float = Field(0.5, ge=0, le=1)
    start_month: int = Field(1, ge=1, le=12)

    def first_year_factor(self) -> float:
        """Share of a full year's effective hours a hire delivers in the plan year."""
        months = 13 - self.start_month
        ramp = min(self.ramp_months, months)
        return (months - ramp + ramp * self.ramp_productivity) / 12.0


class ManagersSpec(_Section):
    span: int = Field(8, ge=1, description="reps per manager (span of control)")
    annual_cost: float = Field(200_000, ge=0)


class HeadcountSpec(_Section):
    min: int = Field(1, ge=1)
    max: int = Field(1000, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> HeadcountSpec:
        if self.min > self.max:
            raise ValueError(f"headcount.min {self.min} is above headcount.max {self.max}")
        return self


class StrategySpec(_Section):
    objective: Literal["max_contribution", "min_cost", "balance"] = Field(
        "max_contribution", description="'balance': a fixed head count (headcount.min = max) "
        "drawn into balanced, contiguous territories of least compactness measure; the response "
        "and costs are reported, not optimised")
    margin: float = Field(0.6, gt=0, le=1, description="contribution margin on sales")
    budget: float | None = Field(None, gt=0, description="sales-expense budget (currency)")
    headcount: HeadcountSpec = HeadcountSpec()
    target_sales: float | None = Field(None, gt=0)
    target_growth: float | None = Field(None, gt=-1)
    over_assignment: float = Field(1.0, ge=1.0, le=1.5, description="sum of quotas / target")

    @model_validator(mode="after")
    def _one_target(self) -> StrategySpec:
        both = self.target_sales is not None and self.target_growth is not None
        if self.objective == "balance":
            if both:
                raise ValueError("give at most one of strategy.target_sales or "
                                 "strategy.target_growth")
            if self.headcount.min != self.headcount.max:
                raise ValueError(f"objective 'balance' draws a fixed head count: headcount.min "
                                 f"({self.headcount.min}) must equal headcount.max "
                                 f"({self.headcount.max})")
            return self
        if self.budget is None:
            raise ValueError(f"objective '{self.objective}' needs strategy.budget")
        if (self.target_sales is None) == (self.target_growth is None):
            raise ValueError("give exactly one of strategy.target_sales or strategy.target_growth")
        return self


class ResponseSpec(_Section):
    """Sales of a unit as a concave, saturating function of selling effort.

    ``sales(e) = potential * (floor + (ceiling - floor) * (1 - 2 ** (-(e / workload) / half)))``
    where ``e / workload`` is the coverage (1 = the hours the unit needs).
    """

    floor: float = Field(0.10, ge=0, lt=1, description="share of potential sold with no effort")
    ceiling: float = Field(0.60, gt=0, le=1, description="share of potential at saturation")
    half: float = Field(0.5, gt=0, description="coverage that closes half the gap to the ceiling")
    max_coverage: float = Field(3.0, gt=0, description="most effort per unit, in units of workload")

    @model_validator(mode="after")
    def _ordered(self) -> ResponseSpec:
        if self.floor >= self.ceiling:
            raise ValueError(f"response.floor {self.floor} must be below ceiling {self.ceiling}")
        return self


class BalanceSpec(_Section):
    measure: str = Field("workload", description="a numeric column of the units table")
    tolerance: float = Field(0.10, gt=0, lt=1, description="allowed relative deviation per rep")


class TravelSpec(_Section):
    cost_per_km: float = Field(0.6, ge=0)
    hours_per_trip: float = Field(8.0, gt=0, description="selling hours delivered per round trip")
    circuity: float = Field(1.2, ge=1, description="road km per straight-line km")


class AlignmentSpec(_Section):
    balance: list[BalanceSpec] = Field(default_factory=lambda: [BalanceSpec()])
    contiguity: bool = True
    compactness: Literal["travel", "diameter"] = "travel"
    candidates: int = Field(12, ge=1, description="nearest sites a unit may join (pruning)")
    max_reps_per_territory: int = Field(6, ge=1)

    @field_validator("balance")
    @classmethod
    def _nonempty(cls, value: list[BalanceSpec]) -> list[BalanceSpec]:
        if not value:
            raise ValueError("alignment.balance needs at least one measure")
        if value[0].measure != "workload":
            raise ValueError("the first balance measure must be 'workload' (it sizes territories)")
        return value


class QuotaSpec(_Section):
    method: Literal["potential", "history", "blend", "expected"] = "blend"
    blend_weight: float = Field(0.5, ge=0, le=1, description="weight of potential in 'blend'")
    min_growth: float = Field(-0.10, gt=-1)
    max_growth: float = Field(0.30)
    seasonality: list[float] = Field(default_factory=lambda: [1.0] * 12)

    @field_validator("seasonality")
    @classmethod
    def _twelve(cls, value: list[float]) -> list[float]:
        if len(value) != 12 or any(v < 0 for v in value) or sum(value) <= 0:
            raise ValueError("quotas.seasonality needs 12 non-negative weights with a positive sum")
        return value

    @model_validator(mode="after")
    def _bounds(self) -> QuotaSpec:
        if self.min_growth > self.max_growth:
            raise ValueError(f"quotas.min_growth {self.min_growth} > max_growth {self.max_growth}")
        return self


class SolverSpec(_Section):
    name: Literal["cpsat", "highs", "cbc"] = "cpsat"
    time_limit: float = Field(60.0, gt=0, description="seconds for the whole solve: of counted "
                              "work when 'deterministic' (calibrated to a 2-core machine; the "
                              "wall time of a solve runs about 1.1 to 1.5 times it), else of "
                              "wall time")
    gap: float = Field(0.005, ge=0, lt=1, description="stop when the relative gap is below this")
    seed: int = 0
    threads: int = Field(1, ge=1, description="threads of the integer programming solver; on a "
                         "large map 2 or more also bound the head-count ranges in a second "
                         "process while the first plans")
    deterministic: bool = Field(
        True, description="count the search's work instead of reading the wall clock, so that "
        "a seed gives the same plan on any machine load (the wall clock stays a safety stop at "
        "three times the limit)")
    exact_max_pairs: int = Field(
        6000, ge=0, description="largest unit x site model the chosen solver gets whole"
    )


class Settings(_Section):
    """All settings of a scenario except its tables."""

    name: str
    description: str = ""
    year: int = 2027
    currency: str = "USD"
    units: UnitsSpec
    adjacency: AdjacencySpec = AdjacencySpec()
    reps: RepsSpec | None = None
    hiring: HiringSpec = HiringSpec()
    managers: ManagersSpec = ManagersSpec()
    strategy: StrategySpec
    response: ResponseSpec = ResponseSpec()
    alignment: AlignmentSpec = AlignmentSpec()
    travel: TravelSpec = TravelSpec()
    quotas: QuotaSpec = QuotaSpec()
    solver: SolverSpec = SolverSpec()
