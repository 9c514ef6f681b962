"""Checks across tables that a loaded scenario must pass before it is solved.

The readers check each table on its own (types, ranges, identifiers). What they cannot see is a
contradiction *between* inputs: unit coordinates and a geometry file in different coordinate
reference systems, or locks that no contiguous territory can honour. Each check raises an
:class:`InputError` naming the file, row, column and value, like the readers do.

:func:`validate_scenario` runs them all; it is meant to be called at the end of loading.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

import geopandas as gpd
import numpy as np

from allocator.exceptions import InputError
from allocator.geometry import neighbours
from allocator.scenario import Scenario
from allocator.settings import Settings


def validate_scenario(scenario: Scenario) -> None:
    """Every cross-table check; raises :class:`InputError` at the first contradiction."""
    check_crs(scenario)
    check_locks_contiguous(scenario)


def _file(scenario: Scenario, relative: str) -> str:
    if scenario.source.startswith("<"):
        return relative
    return str(Path(scenario.source).parent / relative)


def check_crs(scenario: Scenario) -> None:
    """The geometry and the unit coordinates must be in one coordinate reference system.

    See :func:`check_geometry_crs`, which does the work on the parts of a scenario, so that
    loading can call it before the geometry is first projected.
    """
    if scenario.geometry is None:
        return
    spec = scenario.settings.units
    check_geometry_crs(scenario.geometry, scenario.coordinates.points, scenario.settings,
                       scenario.units["unit_id"].to_numpy(), _file(scenario, spec.table),
                       _file(scenario, spec.geometry.file) if spec.geometry else scenario.source,
                       scenario.source)


def check_geometry_crs(geometry: gpd.GeoSeries, points: np.ndarray, settings: Settings,
                       ids: np.ndarray, units_file: str, geometry_file: str,
                       scenario_file: str) -> None:
    """Catch the three CRS mistakes that would silently turn distances into nonsense.

    A geometry whose declared CRS is geographic but whose numbers are not degrees (projected
    metres labelled EPSG:4326), a geometry in degrees read as ``coordinates: planar``, and unit
    coordinate columns that do not lie where their geometry is (the two files in different CRS).
    ``geometry`` and ``points`` are in the order of ``ids`` (the units table).
    """
    spec = settings.units
    planar = spec.coordinates == "planar"
    crs = geometry.crs
    bounds = geometry.bounds.to_numpy()  # minx, miny, maxx, maxy per unit
    degrees = (np.abs(bounds[:, [0, 2]]) <= 180.0).all(axis=1) & \
        (np.abs(bounds[:, [1, 3]]) <= 90.0).all(axis=1)
    if crs is not None and crs.is_geographic and not degrees.all():
        row = int(np.flatnonzero(~degrees)[0])
        raise InputError(
            f"the geometry declares the geographic CRS {crs.to_string()} but its coordinates "
            f"are not degrees (bounds {np.round(bounds[row], 3).tolist()}); it was probably "
            "written in a projected CRS: declare that CRS in the file",
            file=geometry_file, column="geometry", value=ids[row])
    if crs is None and not planar and not degrees.all():
        row = int(np.flatnonzero(~degrees)[0])
        raise InputError(
            "the geometry has no CRS and its coordinates are not degrees, but "
            "units.coordinates is 'lonlat'; declare the CRS in the geometry file",
            file=geometry_file, column="geometry", value=ids[row])
    if planar and crs is not None and crs.is_geographic:
        raise InputError(
            f"units.coordinates is 'planar' but the geometry's CRS {crs.to_string()} is "
            "geographic (degrees); use coordinates: lonlat", file=scenario_file,
            column="units.coordinates", value="planar")
    xy = (spec.x, spec.y) if planar else (spec.lon, spec.lat)
    if not all(xy):
        return  # the points were derived from the geometry itself
    shapes = geometry
    if not planar and crs is not None:
        shapes = geometry.to_crs(4326)
    box = shapes.bounds.to_numpy()
    margin = np.maximum(box[:, 2] - box[:, 0], box[:, 3] - box[:, 1])
    outside = ((points[:, 0] < box[:, 0] - margin) | (points[:, 0] > box[:, 2] + margin)
               | (points[:, 1] < box[:, 1] - margin) | (points[:, 1] > box[:, 3] + margin))
    if outside.any():
        row = int(np.flatnonzero(outside)[0])
        raise InputError(
            f"unit {ids[row]} lies at ({points[row, 0]:g}, {points[row, 1]:g}) but its geometry "
            f"spans x {box[row, 0]:g}..{box[row, 2]:g}, y {box[row, 1]:g}..{box[row, 3]:g}: the "
            f"{'/'.join(xy)} columns and the geometry file are in different coordinate systems",
            file=units_file, row=row + 2, column=xy[0], value=f"{points[row, 0]:g}")


def check_locks_contiguous(scenario: Scenario) -> None:
    """Locked units must be reachable from their rep's home without crossing another territory.

    A territory holds its rep's home (its site) and must be connected. Existing reps with
    different homes never share a territory, so the units locked to one rep, and the homes of the
    reps that must be kept (those with locks, or all under ``reps.lock: keep``), lie in other
    territories: a locked unit that every path from its rep's home crosses such a unit cannot be
    served by any contiguous plan.
    """
    if not scenario.settings.alignment.contiguity or scenario.reps.empty:
        return
    units = scenario.units
    lock = units["lock"].to_numpy()
    if not any(lock):
        return
    spec = scenario.settings.units
    file = _file(scenario, spec.table)
    column = spec.lock or "lock"
    ids = units["unit_id"].to_numpy()
    reps = scenario.reps
    rep_ids = reps["rep_id"].to_numpy()
    homes = reps["home"].to_numpy()
    home_of = dict(zip(rep_ids, homes, strict=True))
    keep_all = scenario.settings.reps is not None and scenario.settings.reps.lock == "keep"
    locked_reps = {r for r in lock if r}
    kept_homes = {int(home_of[r]) for r in rep_ids if keep_all or r in locked_reps}
    lock_home = np.array([home_of.get(r, -1) if r else -1 for r in lock], dtype=np.int64)
    adjacency = neighbours(scenario.edges, scenario.n_units)
    for rep in sorted(locked_reps):
        home = int(home_of[rep])
        blocked = np.zeros(scenario.n_units, dtype=bool)
        blocked[(lock_home >= 0) & (lock_home != home)] = True
        blocked[[h for h in kept_homes if h != home]] = True
        if blocked[home]:
            owner = lock[home] or next(r for r in rep_ids if int(home_of[r]) == home and r != rep)
            raise InputError(
                f"unit {ids[home]} is the home of rep {rep} but is locked to rep {owner}, whose "
                "territory is another", file=file, row=home + 2, column=column, value=lock[home])
        reached = np.zeros(scenario.n_units, dtype=bool)
        reached[home] = True
        queue = deque([home])
        while queue:
            u = queue.popleft()
            for v in adjacency[u]:
                if not reached[v] and not blocked[v]:
                    reached[v] = True
                    queue.append(v)
        stranded = np.flatnonzero((lock == rep) & ~reached)
        if len(stranded):
            row = int(stranded[0])
            raise InputError(
                f"unit {ids[row]} is locked to rep {rep}, but every path to it from the rep's "
                f"home {ids[home]} crosses units that lie in other territories (locked to another "
                "rep, or another kept rep's home); no contiguous territory can hold it",
                file=file, row=row + 2, column=column, value=rep)
