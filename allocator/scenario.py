"""The scenario: an immutable, validated value holding everything a solve needs.

``load_scenario`` reads a scenario YAML file and its tables; variants (a sweep, a tighter budget)
are made with :func:`dataclasses.replace` on the scenario or :meth:`Scenario.with_settings`, which
validate again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from pydantic import ValidationError

from allocator import read
from allocator.exceptions import InputError, IslandWarning
from allocator.geometry import Coordinates, join_islands, rook_adjacency
from allocator.settings import Settings


@dataclass(frozen=True)
class Scenario:
    """Problem data. Units, reps and sites are indexed by position (0..n-1).

    ``units`` has the columns ``unit_id, name, region, potential, workload, last_year_sales,
    lock`` (the rep id a unit must stay with, or "") and one column per extra balance measure.
    ``reps`` has ``rep_id, name, home, annual_cost, capacity_hours, productivity`` where ``home`` is
    a unit position. ``sites`` has ``unit, max_hires`` and lists every unit that can host a
    territory: the homes of existing reps and the hire sites.
    """

    settings: Settings
    units: pd.DataFrame
    coordinates: Coordinates
    edges: np.ndarray
    reps: pd.DataFrame
    sites: pd.DataFrame
    geometry: gpd.GeoSeries | None = None
    islands: tuple[tuple[int, int], ...] = ()
    edge_length: np.ndarray | None = None  # length of each edge (adjacency.length), if given
    source: str = "<memory>"
    sha256: str = ""
    _extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = len(self.units)
        if n == 0:
            raise InputError("the scenario has no units", file=self.source)
        if len(self.coordinates.points) != n:
            raise InputError("coordinates and units differ in length", file=self.source)
        if self.geometry is not None and len(self.geometry) != n:
            raise InputError("geometry and units differ in length", file=self.source)
        if len(self.edges) and (self.edges.min() < 0 or self.edges.max() >= n):
            raise InputError("an adjacency edge names a unit that does not exist", file=self.source)
        if self.edge_length is not None and len(self.edge_length) != len(self.edges):
            raise InputError("edge lengths and edges differ in length", file=self.source)
        if len(self.reps) and not self.reps["home"].between(0, n - 1).all():
            raise InputError("a rep's home unit does not exist", file=self.source)
        for spec in self.settings.alignment.balance:
            if spec.measure not in self.units.columns:
                raise InputError(
                    f"balance measure '{spec.measure}' is not a column of the units table",
                    file=self.source,
                    column=spec.measure,
                )
        if not self.sha256:
            object.__setattr__(self, "sha256", self._hash())

    def _hash(self) -> str:
        digest = hashlib.sha256()
        digest.update(self.settings.model_dump_json().encode())
        digest.update(pd.util.hash_pandas_object(self.units, index=False).to_numpy().tobytes())
        digest.update(pd.util.hash_pandas_object(self.reps, index=False).to_numpy().tobytes())
        digest.update(pd.util.hash_pandas_object(self.sites, index=False).to_numpy().tobytes())
        digest.update(np.ascontiguousarray(self.edges).tobytes())
        if self.edge_length is not None:
            digest.update(np.ascontiguousarray(self.edge_length).tobytes())
        return digest.hexdigest()

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def n_units(self) -> int:
        return len(self.units)

    def with_settings(self, **changes: Any) -> Scenario:
        """A variant with some settings replaced, e.g. ``with_settings(strategy={"budget": 2e7})``.

        Nested sections are merged; the result is validated again and gets its own hash.
        """
        merged = _merge(self.settings.model_dump(), changes)
        try:
            settings = Settings.model_validate(merged)
        except ValidationError as err:
            raise _settings_error(err, self.source) from None
        return dataclasses.replace(self, settings=settings, sha256="")

    def target_sales(self) -> float:
        strategy = self.settings.strategy
        if strategy.target_sales is not None:
            return float(strategy.target_sales)
        if strategy.target_growth is None:  # 'balance' without a target: last year's sales
            return float(self.units["last_year_sales"].sum())
        return float(self.units["last_year_sales"].sum() * (1.0 + strategy.target_growth))


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _settings_error(err: ValidationError, file: str) -> InputError:
    first = err.errors()[0]
    location = ".".join(str(part) for part in first["loc"])
    value = first.get("input")
    if isinstance(value, dict):
        value = None
    return InputError(f"setting '{location}': {first['msg']}", file=file, column=location, value=value)


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario YAML file and every table it names."""
    path = Path(path)
    raw = read.read_yaml(path)
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as err:
        raise _settings_error(err, str(path)) from None
    folder = path.parent
    digest = hashlib.sha256(path.read_bytes())

    def table(relative: str, sheet: str | None = None) -> tuple[pd.DataFrame, str]:
        file = folder / relative
        frame = read.read_table(file, sheet)
        digest.update(file.read_bytes())
        return frame, str(file)

    units, coordinates, geometry = _read_units(settings, table, folder, digest)
    if geometry is not None:
        from allocator.validate import check_geometry_crs

        # before the adjacency projects it: mislabelled metres would crash or mislead there
        spec = settings.units
        check_geometry_crs(geometry, coordinates.points, settings, units["unit_id"].to_numpy(),
                           str(folder / spec.table),
                           str(folder / spec.geometry.file) if spec.geometry else str(path),
                           str(path))
    edges, islands, lengths = _read_adjacency(settings, units, coordinates, geometry, table,
                                              str(path))
    index = {uid: pos for pos, uid in enumerate(units["unit_id"])}
    reps = _read_reps(settings, table, index)
    sites = _read_sites(settings, table, index, reps)
    _check_locks(units, reps, str(folder / settings.units.table), settings.units.lock)
    scenario = Scenario(
        settings=settings,
        units=units,
        coordinates=coordinates,
        edges=edges,
        reps=reps,
        sites=sites,
        geometry=geometry,
        islands=tuple(islands),
        edge_length=lengths,
        source=str(path),
        sha256=digest.hexdigest(),
    )
    from allocator.validate import check_locks_contiguous

    check_locks_contiguous(scenario)
    return scenario


def _read_units(settings: Settings, table, folder: Path, digest) -> tuple:
    spec = settings.units
    frame, file = table(spec.table, spec.sheet)
    measures = [b.measure for b in settings.alignment.balance if b.measure != "workload"]
    numeric = {"potential": spec.potential, "workload": spec.workload,
               "last_year_sales": spec.last_year_sales}
    wanted = [spec.id, *numeric.values(), *measures]
    planar = spec.coordinates == "planar"
    xy = (spec.x, spec.y) if planar else (spec.lon, spec.lat)
    if spec.geometry is None or all(xy):
        wanted += [c for c in xy if c]
    for optional in (spec.name, spec.region, spec.lock):
        if optional:
            wanted.append(optional)
    read.require_columns(frame, wanted, file)
    ids = read.text_column(frame, spec.id, file)
    read.unique_ids(ids, spec.id, file)
    units = pd.DataFrame({"unit_id": ids.to_numpy()})
    units["name"] = frame[spec.name].astype(str).to_numpy() if spec.name else units["unit_id"]
    units["region"] = frame[spec.region].astype(str).to_numpy() if spec.region else ""
    for canonical, column in numeric.items():
        units[canonical] = read.number_column(frame, column, file, minimum=0.0)
    if not (units["workload"] > 0).any():
        raise InputError("every workload is zero", file=file, column=spec.workload)
    for measure in measures:
        units[measure] = read.number_column(frame, measure, file, minimum=0.0)
    units["lock"] = frame[spec.lock].astype(str).str.strip().to_numpy() if spec.lock else ""
    units.loc[units["lock"].str.lower().isin(["nan", "none"]), "lock"] = ""

    geometry = None
    if spec.geometry is not None:
        geometry = _read_geometry(spec.geometry, folder, units["unit_id"], digest)
    if all(xy):
        lo, hi = (None, None) if planar else (-180.0, 180.0)
        a = read.number_column(frame, xy[0], file, minimum=lo)
        b = read.number_column(frame, xy[1], file, minimum=None if planar else -90.0)
        if not planar:
            for values, column, limit in ((a, xy[0], hi), (b, xy[1], 90.0)):
                bad = np.flatnonzero(np.abs(values) > limit)
                if len(bad):
                    raise InputError(f"outside ±{limit:g} degrees", file=file, row=int(bad[0]) + 2,
                                     column=column, value=values[bad[0]])
        points = np.column_stack([a, b])
    elif geometry is not None:
        reps_points = geometry.to_crs(4326) if not planar and geometry.crs else geometry
        inner = reps_points.representative_point()
        points = np.column_stack([inner.x.to_numpy(), inner.y.to_numpy()])
    else:
        raise InputError("units need coordinates (columns) or a geometry file", file=file)
    return units, Coordinates(points=points, planar=planar), geometry


def _read_geometry(spec, folder: Path, ids: pd.Series, digest) -> gpd.GeoSeries:
    file = folder / spec.file
    if not file.exists():
        raise InputError("geometry file not found", file=str(file))
    try:
        frame = gpd.read_file(file, layer=spec.layer) if spec.layer else gpd.read_file(file)
    except Exception as err:  # pyogrio raises several unrelated types for unreadable files
        raise InputError(f"cannot read geometry: {err}", file=str(file)) from None
    digest.update(file.read_bytes())
    if spec.id not in frame.columns:
        raise InputError(f"missing id column; the layer has {list(frame.columns)}",
                         file=str(file), column=spec.id)
    geo_ids = frame[spec.id].astype(str).str.strip()
    read.unique_ids(geo_ids, spec.id, str(file))
    invalid = frame.geometry.isna() | frame.geometry.is_empty
    if invalid.any():
        row = int(np.flatnonzero(invalid.to_numpy())[0])
        raise InputError("empty geometry", file=str(file), row=row + 2, column="geometry",
                         value=geo_ids.iloc[row])
    bad = ~frame.geometry.is_valid
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError("invalid geometry (self-intersecting or malformed)", file=str(file),
                         row=row + 2, column="geometry", value=geo_ids.iloc[row])
    position = pd.Series(np.arange(len(frame)), index=geo_ids.to_numpy())
    missing = ~ids.isin(position.index)
    if missing.any():
        raise InputError("unit has no geometry", file=str(file), column=spec.id,
                         value=ids[missing].iloc[0])
    extra = ~position.index.isin(ids)
    if extra.any():
        raise InputError("geometry for a unit that is not in the units table", file=str(file),
                         column=spec.id, value=position.index[extra][0])
    ordered = frame.geometry.iloc[position.loc[ids.to_numpy()].to_numpy()]
    return gpd.GeoSeries(ordered.to_numpy(), crs=frame.crs)


def _read_adjacency(settings, units, coordinates, geometry, table, scenario_file):
    spec = settings.adjacency
    n = len(units)
    lengths = None
    if spec.length is not None and spec.source != "edges":
        raise InputError("adjacency.length names an edge column, but adjacency.source is not "
                         "'edges'", file=scenario_file, column="adjacency.length",
                         value=spec.length)
    if spec.source == "edges":
        frame, file = table(spec.edges)
        read.require_columns(frame, [spec.source_column, spec.target_column], file)
        index = {uid: pos for pos, uid in enumerate(units["unit_id"])}
        a = read.known_ids(read.text_column(frame, spec.source_column, file), index,
                           spec.source_column, file, "unit")
        b = read.known_ids(read.text_column(frame, spec.target_column, file), index,
                           spec.target_column, file, "unit")
        self_loop = np.flatnonzero(a == b)
        if len(self_loop):
            raise InputError("an edge joins a unit to itself", file=file,
                             row=int(self_loop[0]) + 2, column=spec.source_column,
                             value=units["unit_id"].iloc[a[self_loop[0]]])
        pairs = np.sort(np.column_stack([a, b]), axis=1)
        edges, first = np.unique(pairs, axis=0, return_index=True)
        if spec.length is not None:
            read.require_columns(frame, [spec.length], file)
            given = read.number_column(frame, spec.length, file, minimum=0.0)
            lengths = given[first]
            # an edge listed twice must give one length
            back = np.unique(pairs, axis=0, return_inverse=True)[1].ravel()
            clash = np.flatnonzero(given != lengths[back])
            if len(clash):
                raise InputError("the edge is listed again with another length", file=file,
                                 row=int(clash[0]) + 2, column=spec.length,
                                 value=frame[spec.length].iloc[clash[0]])
    elif geometry is not None:
        projected = geometry
        if geometry.crs is not None and geometry.crs.is_geographic:
            projected = geometry.to_crs(geometry.estimate_utm_crs() if n < 50 else "EPSG:3857")
        edges = rook_adjacency(projected)
    else:
        raise InputError("adjacency.source is 'geometry' but the units have no geometry file",
                         file=scenario_file, column="adjacency.source")
    if n == 1:
        return edges.reshape(0, 2), [], None if lengths is None else lengths[:0]
    joined, added = join_islands(edges.reshape(-1, 2), coordinates, n)
    if lengths is not None and added:  # a link to an island is as long as the gap it bridges
        extra = joined[len(edges):]
        lengths = np.concatenate([lengths, coordinates.distance(extra[:, 0], extra[:, 1])])
    if added:
        ids = units["unit_id"].to_numpy()
        text = ", ".join(f"{ids[a]}->{ids[b]}" for a, b in added[:10])
        if spec.islands == "error":
            raise InputError(f"{len(added)} unit group(s) have no neighbour in the rest of the map "
                             f"(nearest links: {text}); set adjacency.islands: nearest to join "
                             "them to their nearest unit", file=scenario_file,
                             column="adjacency.islands", value=ids[added[0][0]])
        warnings.warn(f"joined {len(added)} island group(s) to their nearest unit: {text}",
                      IslandWarning, stacklevel=3)
    return joined, added, lengths


def _read_reps(settings: Settings, table, index: dict[str, int]) -> pd.DataFrame:
    columns = ["rep_id", "name", "home", "annual_cost", "capacity_hours", "productivity"]
    spec = settings.reps
    if spec is None:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in columns}).astype(
            {"rep_id": str, "name": str, "home": np.int64})
    frame, file = table(spec.table, spec.sheet)
    read.require_columns(frame, [spec.id, spec.home_unit, spec.annual_cost, spec.capacity_hours,
                                 spec.productivity], file)
    ids = read.text_column(frame, spec.id, file)
    read.unique_ids(ids, spec.id, file)
    homes = read.known_ids(read.text_column(frame, spec.home_unit, file), index, spec.home_unit,
                           file, "home unit")
    return pd.DataFrame({
        "rep_id": ids.to_numpy(),
        "name": _rep_names(frame, spec, ids, file),
        "home": homes,
        "annual_cost": read.number_column(frame, spec.annual_cost, file),
        "capacity_hours": read.number_column(frame, spec.capacity_hours, file, strict=True),
        "productivity": read.number_column(frame, spec.productivity, file, strict=True),
    })


def _rep_names(frame: pd.DataFrame, spec, ids: pd.Series, file: str) -> np.ndarray:
    """The names column; without one, the ids stand in, unless the file named a column."""
    if spec.name and spec.name in frame:
        return frame[spec.name].astype(str).to_numpy()
    if spec.name and "name" in spec.model_fields_set:
        read.require_columns(frame, [spec.name], file)
    return ids.to_numpy()


def _read_sites(settings: Settings, table, index: dict[str, int], reps: pd.DataFrame):
    spec = settings.hiring.sites
    max_hires = pd.Series(0, index=np.unique(reps["home"].to_numpy()), dtype=np.int64)
    if spec is not None:
        frame, file = table(spec.table, spec.sheet)
        read.require_columns(frame, [spec.unit, spec.max_hires], file)
        named = read.text_column(frame, spec.unit, file)
        read.unique_ids(named, spec.unit, file)  # on the ids as written, so errors name them
        units = read.known_ids(named, index, spec.unit, file, "unit")
        hires = read.number_column(frame, spec.max_hires, file, integer=True).astype(np.int64)
        max_hires = max_hires.add(pd.Series(hires, index=units), fill_value=0).astype(np.int64)
    if max_hires.empty:
        raise InputError("no rep and no hire site: nobody can cover the units",
                         file=settings.units.table, column="hiring.sites")
    return pd.DataFrame({"unit": max_hires.index.to_numpy(dtype=np.int64),
                         "max_hires": max_hires.to_numpy()})


def _check_locks(units: pd.DataFrame, reps: pd.DataFrame, file: str, column: str | None) -> None:
    locked = units["lock"].to_numpy()
    known = set(reps["rep_id"])
    for row, rep in enumerate(locked):
        if rep and rep not in known:
            raise InputError("lock names an unknown rep", file=file, row=row + 2,
                             column=column or "lock", value=rep)
