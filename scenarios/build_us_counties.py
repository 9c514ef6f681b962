"""Rebuild the embedded county scenarios ``us_counties/`` and ``texas/``.

Run from the repository root::

    python scenarios/build_us_counties.py --out scenarios

The script is deterministic: the same package versions give the same CSV files and the same
geometries (a GeoPackage also stores a write time, so its bytes differ from run to run).
Importing this module has no side effect; all the work happens in :func:`main`.

Inputs (read from installed packages, nothing is downloaded)
------------------------------------------------------------
* Polygons: ``bokeh_sampledata.us_counties.records()`` (package ``bokeh-sampledata`` 2026.1):
  Census TIGER/Line county polygons (geometry matching the 2009 release), NAD83
  longitude/latitude, interior holes kept (the independent cities of Virginia and other
  enclaves are holes in their surrounding county). The legacy ``data`` dictionary of the same
  module holds the same outlines but drops the holes, which makes every enclosing county
  overlap its enclaves; ``records()`` is used for that reason.
* Population: ``get_pop/static/usa_pop_counties_2019.csv`` (package ``get-pop`` 1.94.8), the
  Census Bureau's county population estimates, vintage 2019 (file ``co-est2019-alldata``),
  latin-1 encoded. Column ``POPESTIMATE2019`` (1 July 2019) is used; rows with ``SUMLEV`` 50
  are counties, rows with ``SUMLEV`` 40 are state totals (used only as a check).

Steps
-----
1. Keep the 48 contiguous states and DC (``CONTIGUOUS_STATES``). Alaska, Hawaii, Puerto Rico and
   the island areas are dropped by name (``EXCLUDED_STATES``); any other state code raises.
2. Reconcile the 2009 polygons with the 2019 county list:
   * Shannon County SD, FIPS 46113, was renamed Oglala Lakota County, FIPS 46102, in 2015: the
     polygon is re-keyed to 46102 (``FIPS_RENAMES``).
   * Bedford city VA, FIPS 51515, became part of Bedford County, 51019, in 2013: its polygon
     is unioned into 51019 (``FIPS_MERGES``); its population is added too if the population
     file lists it separately (vintage 2019 does not: 51019 already includes it).
   Every county polygon must then find exactly one population row and every population row of
   the kept states exactly one polygon; otherwise the script raises with the list.
   The county sum of every kept state must equal that state's total row.
3. Geometry, in EPSG:5070 (NAD83 / Conus Albers, metres):
   a. ``COARSE_UNITS``: Caldwell County MO (29025) is a coarse outline in the source (its
      vertices, unlike the others, do not match the Census geometry) that overlaps its
      neighbours by about 15 km2. The overlap is given to the neighbours.
   b. ``shapely.coverage_clean`` (merge strategy ``longest_border``, gap width
      ``GAP_WIDTH_M``) turns the polygons into an exact polygonal coverage: the remaining
      small overlaps (under 0.4 km2 each) go to the neighbour with the longest shared
      border, gaps narrower than ``GAP_WIDTH_M`` are merged into a neighbour, and shared
      borders get identical vertices. The result is the *full* shape of each county.
   c. ``GeoSeries.simplify_coverage`` (Visvalingam-Whyatt on the shared edges, so that a
      border shared by two counties is simplified once, identically for both) with tolerance
      ``SIMPLIFY_TOLERANCE_M`` metres; the outer boundary of the country is simplified too.
   d. Back to EPSG:4326 (WGS 84 longitude/latitude; NAD83 and WGS 84 are treated as equal, as
      usual at this scale) and coordinates rounded to ``COORD_GRID_DEG`` degrees
      (``shapely.set_precision``). This is the *stored* shape.
   e. Checks that raise: every stored shape is valid and non-empty, the stored shapes form a
      valid coverage, the GeoPackage is smaller than ``MAX_GPKG_BYTES``, and the rook
      adjacency of the stored shapes equals the rook adjacency of the full shapes. Rook
      adjacency: a pair of counties whose boundaries share a line of more than
      ``MIN_SHARED_BORDER_M`` metres (measured in EPSG:5070), found by a spatial join with the
      predicate ``intersects`` followed by the length of the intersection of the two
      boundaries. Pairs that meet only at a point (queen contacts, like the Four Corners) are
      not neighbours. Counties without any rook neighbour (islands) are listed, not changed.
4. ``lon``/``lat``: ``representative_point()`` of the full shape in EPSG:4326, rounded to 5
   decimals (a point inside the county, not its centroid).
5. Synthetic columns, one generator ``numpy.random.default_rng(SEED)``, units sorted by
   ``unit_id``, draws made in this order, each a vector over all units:
   ``z_p = lognormal(0, 0.30)``, ``z_w = lognormal(0, 0.20)``, ``z_s = lognormal(0, 0.15)``::

       potential       = round(population * 4 * z_p)            USD per year, whole dollars
       workload        = round(12 + population / 1900 * z_w, 1)  hours per year
       last_year_sales = round(potential * 0.11 * z_s)           USD, whole dollars

   (lognormal(0, s) has median 1 and mean exp(s*s/2).) 12 h is the minimum visiting effort of
   a county whatever its size.
6. Existing reps: one rep in each of the ``n`` most populous units that lie at least
   ``spacing`` km (great circle between the lon/lat points) from every unit already chosen
   (US: 70 reps, 100 km; Texas: 10 reps, 60 km): a legacy force based in distinct metros.
   Reps are numbered in the order of home-unit population
   (descending, then ``unit_id``) as ``R001``.. with name ``Rep 001``..; then, continuing the
   same generator, per rep in that order (again each a vector)::

       annual_cost    = round(150000 * lognormal(0, 0.08), -2)   USD, multiple of 100
       capacity_hours = 1600
       productivity   = round(clip(normal(1.0, 0.08), 0.8, 1.2), 2)
       tenure_years   = integers(1, 16)                           uniform 1..15

   The clip is part of the generating rule (it keeps the draws in a plausible range); it is
   not the cleaning of an input. The US reps are drawn first, then the Texas reps.
7. Hire sites: every unit with population at least ``HIRE_SITE_MIN_POP`` (US 150,000, Texas
   60,000) plus every unit that is home to an existing rep, with
   ``max_hires = 1 + floor(population / 1,500,000)``.
8. Texas is the subset ``state == "TX"`` of the US rows and shapes: the same synthetic values
   and the same stored geometry (nothing is drawn again for units); only the reps and hire
   sites are its own.

Outputs, per scenario folder: ``counties.gpkg`` (layer ``counties``: ``unit_id``, ``name``,
``state``, geometry in EPSG:4326), ``units.csv`` (``unit_id,name,state,population,lon,lat,
potential,workload,last_year_sales``), ``reps.csv`` (``rep_id,name,home_unit,annual_cost,
capacity_hours,productivity,tenure_years``) and ``hire_sites.csv`` (``unit_id,max_hires``).
Every shape is written as a MultiPolygon (one part for most counties).
``unit_id`` is the 5-character county FIPS code, ``name`` the Census 2019 name (with its
"County", "Parish" or "city" suffix), ``state`` the upper-case postal code.
"""

from __future__ import annotations

import argparse
import importlib.resources
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import shapely

SEED = 20261127

PROJECTED_CRS = "EPSG:5070"  # NAD83 / Conus Albers, metres
STORAGE_CRS = "EPSG:4326"
GAP_WIDTH_M = 1000.0
SIMPLIFY_TOLERANCE_M = 500.0
COORD_GRID_DEG = 1e-5
MIN_SHARED_BORDER_M = 1.0
MAX_GPKG_BYTES = 4_000_000
LAYER = "counties"

# State FIPS -> postal code of the 48 contiguous states and DC.
CONTIGUOUS_STATES = {
    "01": "AL", "04": "AZ", "05": "AR", "06": "CA", "08": "CO", "09": "CT", "10": "DE",
    "11": "DC", "12": "FL", "13": "GA", "16": "ID", "17": "IL", "18": "IN", "19": "IA",
    "20": "KS", "21": "KY", "22": "LA", "23": "ME", "24": "MD", "25": "MA", "26": "MI",
    "27": "MN", "28": "MS", "29": "MO", "30": "MT", "31": "NE", "32": "NV", "33": "NH",
    "34": "NJ", "35": "NM", "36": "NY", "37": "NC", "38": "ND", "39": "OH", "40": "OK",
    "41": "OR", "42": "PA", "44": "RI", "45": "SC", "46": "SD", "47": "TN", "48": "TX",
    "49": "UT", "50": "VT", "51": "VA", "53": "WA", "54": "WV", "55": "WI", "56": "WY",
}
EXCLUDED_STATES = {"AK", "HI", "PR", "AS", "GU", "MP", "VI"}

FIPS_RENAMES = {"46113": "46102"}  # Shannon County SD -> Oglala Lakota County (2015)
FIPS_MERGES = {"51515": "51019"}  # Bedford city VA -> Bedford County (2013)
COARSE_UNITS = ("29025",)  # Caldwell County MO: coarse outline, cedes its overlaps

POPULATION_FILE = ("get_pop", "static/usa_pop_counties_2019.csv")
POPULATION_COLUMN = "POPESTIMATE2019"

POTENTIAL_PER_PERSON = 4.0
POTENTIAL_SIGMA = 0.30
WORKLOAD_BASE_HOURS = 12.0
PERSONS_PER_WORKLOAD_HOUR = 1900.0
WORKLOAD_SIGMA = 0.20
SALES_SHARE = 0.11
SALES_SIGMA = 0.15

REP_COST_MEDIAN = 150_000.0
REP_COST_SIGMA = 0.08
REP_CAPACITY_HOURS = 1600
REP_PRODUCTIVITY_MEAN = 1.0
REP_PRODUCTIVITY_SD = 0.08
REP_PRODUCTIVITY_RANGE = (0.8, 1.2)
REP_TENURE_RANGE = (1, 15)
POP_PER_EXTRA_HIRE = 1_500_000

UNIT_COLUMNS = ["unit_id", "name", "state", "population", "lon", "lat", "potential",
                "workload", "last_year_sales"]
REP_COLUMNS = ["rep_id", "name", "home_unit", "annual_cost", "capacity_hours",
               "productivity", "tenure_years"]
SITE_COLUMNS = ["unit_id", "max_hires"]


@dataclass(frozen=True)
class ScenarioRule:
    folder: str
    state: str | None  # None: all units
    n_reps: int
    rep_spacing_km: float
    hire_site_min_pop: int


US = ScenarioRule("us_counties", None, n_reps=70, rep_spacing_km=100.0, hire_site_min_pop=150_000)
TEXAS = ScenarioRule("texas", "TX", n_reps=10, rep_spacing_km=60.0, hire_site_min_pop=60_000)


class DataError(RuntimeError):
    """The source data does not fit the derivation; the message says where."""


# --------------------------------------------------------------------------- inputs


def load_polygons() -> gpd.GeoDataFrame:
    """County polygons of the 48 contiguous states and DC, keyed by the 2009 FIPS code."""
    from bokeh_sampledata.us_counties import records

    frame = gpd.GeoDataFrame(records(), geometry="geometry", crs="EPSG:4269")
    states = set(frame["state"])
    unknown = sorted(states - set(CONTIGUOUS_STATES.values()) - EXCLUDED_STATES)
    if unknown:
        raise DataError(f"polygons of unknown state codes {unknown}")
    frame = frame[frame["state"].isin(CONTIGUOUS_STATES.values())].copy()
    wrong_state = frame[frame["state_fips"].map(CONTIGUOUS_STATES) != frame["state"]]
    if len(wrong_state):
        raise DataError(f"state code does not match the state FIPS: {wrong_state['fips'].tolist()}")
    if not frame["fips"].is_unique:
        raise DataError(f"duplicate FIPS {frame['fips'][frame['fips'].duplicated()].tolist()}")
    frame = frame.rename(columns={"fips": "unit_id"})
    return frame[["unit_id", "state", "name", "geometry"]].reset_index(drop=True)


def load_population() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(county rows, state rows) of the contiguous states from the 2019 estimates file."""
    package, name = POPULATION_FILE
    with importlib.resources.files(package).joinpath(name).open("rb") as handle:
        table = pd.read_csv(handle, encoding="latin-1", dtype={"STATE": str, "COUNTY": str},
                            usecols=["SUMLEV", "STATE", "COUNTY", "CTYNAME", POPULATION_COLUMN])
    table["state_fips"] = table["STATE"].str.zfill(2)
    table = table[table["state_fips"].isin(CONTIGUOUS_STATES)]
    counties = table[table["SUMLEV"] == 50].copy()
    states = table[table["SUMLEV"] == 40].copy()
    counties["unit_id"] = counties["state_fips"] + counties["COUNTY"].str.zfill(3)
    counties = counties.rename(columns={"CTYNAME": "census_name", POPULATION_COLUMN: "population"})
    if not counties["unit_id"].is_unique:
        raise DataError("duplicate FIPS in the population file")
    return (counties[["unit_id", "state_fips", "census_name", "population"]].reset_index(drop=True),
            states[["state_fips", POPULATION_COLUMN]].reset_index(drop=True))


def reconcile(polygons: gpd.GeoDataFrame, counties: pd.DataFrame, states: pd.DataFrame,
              log: list[str]) -> gpd.GeoDataFrame:
    """Apply the known FIPS changes, join population by FIPS, raise on anything unmatched."""
    poly_ids, pop_ids = set(polygons["unit_id"]), set(counties["unit_id"])
    log.append(f"polygons kept: {len(polygons)}; population county rows kept: {len(counties)}")
    log.append(f"before reconciliation, polygons without population: {sorted(poly_ids - pop_ids)}")
    log.append("before reconciliation, population rows without polygon: "
               f"{sorted(pop_ids - poly_ids)}")

    polygons = polygons.copy()
    counties = counties.copy()
    for old, new in FIPS_MERGES.items():
        if old in poly_ids:
            target = polygons["unit_id"] == new
            if target.sum() != 1:
                raise DataError(f"merge target {new} of {old} is not a single polygon")
            pair = polygons["unit_id"].isin([old, new])
            merged = shapely.union_all(polygons.loc[pair, "geometry"].values)
            polygons.loc[target, "geometry"] = gpd.GeoSeries([merged], index=polygons.index[target])
            polygons = polygons[polygons["unit_id"] != old]
            log.append(f"merged polygon {old} into {new}")
        if old in pop_ids:
            add = int(counties.loc[counties["unit_id"] == old, "population"].sum())
            counties.loc[counties["unit_id"] == new, "population"] += add
            counties = counties[counties["unit_id"] != old]
            log.append(f"added population {add} of {old} to {new}")
        else:
            log.append(f"population file has no separate row for {old} (already part of {new})")
    for old, new in FIPS_RENAMES.items():
        if old in set(polygons["unit_id"]):
            polygons.loc[polygons["unit_id"] == old, "unit_id"] = new
            log.append(f"renamed polygon {old} -> {new}")
        if old in set(counties["unit_id"]):
            counties.loc[counties["unit_id"] == old, "unit_id"] = new
            log.append(f"renamed population row {old} -> {new}")

    poly_ids, pop_ids = set(polygons["unit_id"]), set(counties["unit_id"])
    missing_pop, missing_poly = sorted(poly_ids - pop_ids), sorted(pop_ids - poly_ids)
    if missing_pop or missing_poly:
        raise DataError(f"unmatched after the known FIPS changes: polygons without population "
                        f"{missing_pop}, population rows without polygon {missing_poly}")
    log.append("after reconciliation: every polygon has a population row and vice versa")

    by_state = counties.groupby("state_fips")["population"].sum()
    totals = states.set_index("state_fips")[POPULATION_COLUMN]
    off = by_state.sub(totals, fill_value=0)
    if (off != 0).any() or len(totals) != len(CONTIGUOUS_STATES):
        raise DataError(f"county sums differ from state totals: {off[off != 0].to_dict()}")

    joined = polygons.merge(counties[["unit_id", "census_name", "population"]],
                            on="unit_id", how="inner", validate="one_to_one")
    if len(joined) != len(polygons) or joined["population"].isna().any():
        raise DataError("population join lost rows")
    joined["population"] = joined["population"].astype(np.int64)
    return joined.sort_values("unit_id").reset_index(drop=True)


# --------------------------------------------------------------------------- geometry


def clean_coverage(frame: gpd.GeoDataFrame, log: list[str]) -> gpd.GeoSeries:
    """Full-resolution shapes in PROJECTED_CRS that form an exact polygonal coverage."""
    projected = frame.to_crs(PROJECTED_CRS)
    geoms = projected.geometry.values.copy()
    tree = shapely.STRtree(geoms)
    for unit in COARSE_UNITS:
        pos = int(np.flatnonzero(projected["unit_id"].to_numpy() == unit)[0])
        others = [i for i in tree.query(geoms[pos], predicate="intersects") if i != pos]
        before = geoms[pos].area
        geoms[pos] = shapely.difference(geoms[pos], shapely.union_all(geoms[others]))
        log.append(f"coarse unit {unit}: ceded {(before - geoms[pos].area) / 1e6:.2f} km2 "
                   f"of overlap to its neighbours")
    cleaned = shapely.coverage_clean(geoms, gap_width=GAP_WIDTH_M, merge_strategy="longest_border")
    bad = [u for u, g in zip(projected["unit_id"], cleaned)
           if g is None or g.is_empty or g.geom_type not in ("Polygon", "MultiPolygon")]
    if bad:
        raise DataError(f"coverage cleaning left non-polygonal or empty shapes: {bad}")
    if not shapely.coverage_is_valid(cleaned):
        raise DataError("coverage cleaning did not give a valid coverage")
    change = (shapely.area(cleaned) - shapely.area(projected.geometry.values)) / 1e6
    moved = [f"{u} {c:+.2f}" for u, c in zip(projected["unit_id"], change) if abs(c) >= 0.1]
    log.append(f"coverage cleaning: area changes of at least 0.1 km2 (km2): {moved}")
    union = shapely.union_all(cleaned)
    holes = sum(len(p.interiors) for p in getattr(union, "geoms", [union]))
    log.append(f"full coverage: {shapely.get_num_geometries(union)} separate parts, "
               f"{holes} interior gaps left, {shapely.get_num_coordinates(cleaned).sum()} vertices")
    return gpd.GeoSeries(cleaned, index=frame.index, crs=PROJECTED_CRS)


def simplify_for_storage(full: gpd.GeoSeries) -> gpd.GeoSeries:
    """Coverage-simplified shapes in STORAGE_CRS, coordinates on a COORD_GRID_DEG grid."""
    simplified = full.simplify_coverage(SIMPLIFY_TOLERANCE_M)
    stored = simplified.to_crs(STORAGE_CRS)
    return gpd.GeoSeries(shapely.set_precision(stored.values, COORD_GRID_DEG),
                         index=full.index, crs=STORAGE_CRS)


def rook_edges(unit_ids: pd.Series, shapes: gpd.GeoSeries) -> set[tuple[str, str]]:
    """Pairs (a, b), a < b, whose boundaries share more than MIN_SHARED_BORDER_M metres."""
    frame = gpd.GeoDataFrame({"unit_id": unit_ids.to_numpy()},
                             geometry=shapes.to_crs(PROJECTED_CRS).to_numpy(), crs=PROJECTED_CRS)
    pairs = gpd.sjoin(frame, frame, predicate="intersects")
    pairs = pairs[pairs["unit_id_left"] < pairs["unit_id_right"]]
    a = frame.geometry.values[pairs.index.to_numpy()]
    b = frame.geometry.values[pairs["index_right"].to_numpy()]
    shared = shapely.length(shapely.intersection(shapely.boundary(a), shapely.boundary(b)))
    keep = shared > MIN_SHARED_BORDER_M
    return set(zip(pairs["unit_id_left"].to_numpy()[keep], pairs["unit_id_right"].to_numpy()[keep]))


def check_stored(unit_ids: pd.Series, full_edges: set[tuple[str, str]], stored: gpd.GeoSeries,
                 log: list[str]) -> set[tuple[str, str]]:
    """Raise unless the stored shapes are a valid coverage with the adjacency of the full ones."""
    bad = unit_ids[~(stored.is_valid & ~stored.is_empty)].tolist()
    if bad:
        raise DataError(f"stored shapes invalid or empty: {bad}")
    if not shapely.coverage_is_valid(stored.values):
        raise DataError("stored shapes are not a valid coverage")
    stored_edges = rook_edges(unit_ids, stored)
    log.append(f"rook adjacency: full shapes {len(full_edges)} edges, stored shapes "
               f"{len(stored_edges)} edges")
    if full_edges != stored_edges:
        raise DataError(f"simplification changed the adjacency: lost "
                        f"{sorted(full_edges - stored_edges)}, gained "
                        f"{sorted(stored_edges - full_edges)}")
    log.append("adjacency check passed: stored adjacency equals full adjacency")
    return full_edges


def describe_graph(unit_ids: pd.Series, names: pd.Series, edges: set[tuple[str, str]],
                   label: str, log: list[str]) -> dict:
    graph = nx.Graph()
    graph.add_nodes_from(unit_ids)
    graph.add_edges_from(edges)
    name_of = dict(zip(unit_ids, names))
    islands = sorted(n for n in graph if graph.degree(n) == 0)
    parts = sorted((len(c) for c in nx.connected_components(graph)), reverse=True)
    log.append(f"{label}: {graph.number_of_nodes()} units, {graph.number_of_edges()} rook edges, "
               f"islands {[f'{u} {name_of[u]}' for u in islands]}, connected parts {parts}")
    return {"edges": graph.number_of_edges(), "islands": islands, "parts": parts}


# --------------------------------------------------------------------------- synthetic data


def add_synthetic_columns(units: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    units = units.sort_values("unit_id").reset_index(drop=True)
    n = len(units)
    pop = units["population"].to_numpy(dtype=float)
    z_p = rng.lognormal(0.0, POTENTIAL_SIGMA, n)
    z_w = rng.lognormal(0.0, WORKLOAD_SIGMA, n)
    z_s = rng.lognormal(0.0, SALES_SIGMA, n)
    potential = np.rint(pop * POTENTIAL_PER_PERSON * z_p)
    units["potential"] = potential.astype(np.int64)
    units["workload"] = np.round(WORKLOAD_BASE_HOURS + pop / PERSONS_PER_WORKLOAD_HOUR * z_w, 1)
    units["last_year_sales"] = np.rint(potential * SALES_SHARE * z_s).astype(np.int64)
    return units


def allocate_reps(units: pd.DataFrame, n_reps: int, spacing_km: float) -> pd.Series:
    """One rep in each of the ``n_reps`` most populous units that lie at least ``spacing_km``
    from every unit already chosen (index unit_id, in population order).

    A legacy force based in distinct metros: a dense region does not get a rep per county.
    """
    ranked = units.sort_values(["population", "unit_id"], ascending=[False, True])
    lon = np.radians(ranked["lon"].to_numpy(float))
    lat = np.radians(ranked["lat"].to_numpy(float))
    chosen: list[int] = []
    for k in range(len(ranked)):
        if len(chosen) == n_reps:
            break
        if chosen:
            c = np.array(chosen)
            h = (np.sin((lat[c] - lat[k]) / 2) ** 2
                 + np.cos(lat[k]) * np.cos(lat[c]) * np.sin((lon[c] - lon[k]) / 2) ** 2)
            if (2 * 6371.0088 * np.arcsin(np.sqrt(h))).min() < spacing_km:
                continue
        chosen.append(k)
    assert len(chosen) == n_reps, "not enough spaced units for the reps"
    return pd.Series(1, index=ranked["unit_id"].to_numpy()[chosen])


def make_reps(units: pd.DataFrame, rule: ScenarioRule, rng: np.random.Generator) -> pd.DataFrame:
    counts = allocate_reps(units, rule.n_reps, rule.rep_spacing_km)
    homes = [uid for uid, k in counts.items() for _ in range(k)]  # population order
    n = len(homes)
    cost = np.round(REP_COST_MEDIAN * rng.lognormal(0.0, REP_COST_SIGMA, n), -2)
    productivity = np.round(np.clip(rng.normal(REP_PRODUCTIVITY_MEAN, REP_PRODUCTIVITY_SD, n),
                                    *REP_PRODUCTIVITY_RANGE), 2)
    tenure = rng.integers(REP_TENURE_RANGE[0], REP_TENURE_RANGE[1] + 1, n)
    return pd.DataFrame({
        "rep_id": [f"R{i:03d}" for i in range(1, n + 1)],
        "name": [f"Rep {i:03d}" for i in range(1, n + 1)],
        "home_unit": homes,
        "annual_cost": cost.astype(np.int64),
        "capacity_hours": REP_CAPACITY_HOURS,
        "productivity": productivity,
        "tenure_years": tenure.astype(np.int64),
    })[REP_COLUMNS]


def make_hire_sites(units: pd.DataFrame, reps: pd.DataFrame, rule: ScenarioRule) -> pd.DataFrame:
    chosen = units[(units["population"] >= rule.hire_site_min_pop)
                   | units["unit_id"].isin(reps["home_unit"])]
    sites = pd.DataFrame({"unit_id": chosen["unit_id"].to_numpy(),
                          "max_hires": 1 + chosen["population"].to_numpy() // POP_PER_EXTRA_HIRE})
    return sites.sort_values("unit_id").reset_index(drop=True)[SITE_COLUMNS]


# --------------------------------------------------------------------------- writing


def write_scenario(folder: Path, units: pd.DataFrame, shapes: gpd.GeoSeries, reps: pd.DataFrame,
                   sites: pd.DataFrame) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    gpkg = folder / "counties.gpkg"
    if gpkg.exists():
        gpkg.unlink()
    layer = gpd.GeoDataFrame(units[["unit_id", "name", "state"]].reset_index(drop=True),
                             geometry=shapes.to_numpy(), crs=STORAGE_CRS)
    layer.to_file(gpkg, layer=LAYER, driver="GPKG", engine="pyogrio", promote_to_multi=True)
    units[UNIT_COLUMNS].to_csv(folder / "units.csv", index=False, lineterminator="\n")
    reps.to_csv(folder / "reps.csv", index=False, lineterminator="\n")
    sites.to_csv(folder / "hire_sites.csv", index=False, lineterminator="\n")


def summary(label: str, units: pd.DataFrame, reps: pd.DataFrame, sites: pd.DataFrame) -> str:
    return (f"{label}: {len(units)} units, population {units['population'].sum():,}, "
            f"potential {units['potential'].sum():,} USD, "
            f"workload {units['workload'].sum():,.1f} h, "
            f"last_year_sales {units['last_year_sales'].sum():,} USD; {len(reps)} reps in "
            f"{reps['home_unit'].nunique()} units, {len(sites)} hire sites with "
            f"{sites['max_hires'].sum()} places")


def build(out: Path) -> list[str]:
    log: list[str] = []
    polygons = load_polygons()
    counties, states = load_population()
    frame = reconcile(polygons, counties, states, log)

    full = clean_coverage(frame, log)
    raw_edges = rook_edges(frame["unit_id"], frame.geometry)
    full_edges = rook_edges(frame["unit_id"], full)
    log.append(f"rook adjacency of the uncleaned source polygons: {len(raw_edges)} edges; "
               f"cleaning added {sorted(full_edges - raw_edges)}, removed "
               f"{sorted(raw_edges - full_edges)}")
    stored = simplify_for_storage(full)
    edges = check_stored(frame["unit_id"], full_edges, stored, log)

    points = full.to_crs(STORAGE_CRS).representative_point()
    outside = frame["unit_id"][~stored.contains(points)].tolist()
    log.append(f"representative points outside the stored (simplified) shape: {outside}")

    units = pd.DataFrame({
        "unit_id": frame["unit_id"],
        "name": frame["census_name"],
        "state": frame["state"],
        "population": frame["population"],
        "lon": np.round(points.x.to_numpy(), 5),
        "lat": np.round(points.y.to_numpy(), 5),
    })
    rng = np.random.default_rng(SEED)
    units = add_synthetic_columns(units, rng)
    shapes = gpd.GeoSeries(stored.to_numpy(), index=frame["unit_id"].to_numpy(), crs=STORAGE_CRS)
    shapes = shapes.loc[units["unit_id"].to_numpy()]
    describe_graph(units["unit_id"], units["name"], edges, "us_counties", log)

    for rule in (US, TEXAS):
        mask = units["state"] == rule.state if rule.state else pd.Series(True, index=units.index)
        sub = units[mask].reset_index(drop=True)
        sub_shapes = shapes.loc[sub["unit_id"].to_numpy()]
        reps = make_reps(sub, rule, rng)
        sites = make_hire_sites(sub, reps, rule)
        folder = out / rule.folder
        write_scenario(folder, sub, sub_shapes, reps, sites)
        size = (folder / "counties.gpkg").stat().st_size
        if size >= MAX_GPKG_BYTES:
            raise DataError(f"{folder / 'counties.gpkg'} is {size} bytes, over {MAX_GPKG_BYTES}")
        if rule.state:
            keep = set(sub["unit_id"])
            sub_edges = {e for e in edges if e[0] in keep and e[1] in keep}
            if sub_edges != rook_edges(sub["unit_id"], sub_shapes):
                raise DataError(f"{rule.folder}: subset adjacency differs from the US one")
            describe_graph(sub["unit_id"], sub["name"], sub_edges, rule.folder, log)
        log.append(f"{rule.folder}/counties.gpkg: {size:,} bytes")
        log.append(summary(rule.folder, sub, reps, sites))
    return log


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent,
                        help="folder that receives us_counties/ and texas/ (default: this folder)")
    args = parser.parse_args(argv)
    for line in build(args.out):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
