"""Hundreds of malformed scenarios, each a single break of a small valid one, through the CLI.

The breaks are derived systematically, not picked by hand: every numeric column of every table
gets every kind of bad value (text, empty, NaN, infinite, overflowing, negative, zero where it must
be positive, fractional where it must be whole), every identifier column gets empty, duplicate and
unknown identifiers, every required column is dropped or given twice, every table is removed,
emptied or garbled, the YAML file gets syntax errors at random lines, and every setting of the
settings models gets values outside its bounds, of the wrong type, unknown keys and impossible
combinations. Where a break lands (which row, which line) comes from one seeded generator, so a
failure is reproducible by its test id.

Each case must end with exit code 2 (3 for a scenario that is well formed but cannot be satisfied),
never a traceback, and a message naming the file and the offending column or setting, with the
row and the value where there is one.
"""

from __future__ import annotations

import copy
import csv
import io
import random
import shutil
import types
import typing
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import annotated_types
import geopandas as gpd
import pytest
import shapely
import yaml
from click.testing import CliRunner
from conftest import write_scenario
from pydantic import BaseModel

from allocator.cli import main
from allocator.diagnose import check_specification
from allocator.exceptions import (
    InfeasibleError,
    InputError,
    IslandWarning,
)
from allocator.scenario import load_scenario
from allocator.settings import Settings
from allocator.validate import validate_scenario

SEED = 20270106
YAML_NAME = "tiny.yaml"

# --- the valid scenarios every case breaks --------------------------------------------------------

REPS = [{"rep_id": "R1", "home_unit": "U1", "annual_cost": 90000},
        {"rep_id": "R2", "home_unit": "U5", "annual_cost": 95000}]


def write_edges_base(folder: Path) -> Path:
    """A 2 x 3 grid with an edge list, two reps (U1, U5) and two hire sites (U3, U6)."""
    return write_scenario(folder, reps=REPS, settings={"strategy": {"budget": 600000}})


def write_geometry_base(folder: Path) -> Path:
    """The same grid as longitude/latitude squares in a GeoPackage, adjacency from geometry."""
    path = write_scenario(folder, reps=REPS, settings={"strategy": {"budget": 600000}})
    units = path.parent / "units.csv"
    rows = list(csv.reader(io.StringIO(units.read_text(encoding="utf-8"))))
    header = rows[0]
    header[header.index("x")], header[header.index("y")] = "lon", "lat"
    squares, ids = [], []
    for row in rows[1:]:
        k = int(row[0][1:]) - 1
        # corners on a grid of exact decimals, so that neighbours share their border exactly
        lon, lat = (-970 + k % 3) / 10, (310 + k // 3) / 10
        row[2], row[3] = f"{lon + 0.05:.4f}", f"{lat + 0.05:.4f}"
        squares.append(shapely.box(lon, lat, (-970 + k % 3 + 1) / 10, (310 + k // 3 + 1) / 10))
        ids.append(row[0])
    write_rows(units, rows)
    gpd.GeoDataFrame({"unit_id": ids}, geometry=squares, crs="EPSG:4326").to_file(
        path.parent / "units.gpkg", layer="units")
    (path.parent / "edges.csv").unlink()
    edit_settings(path, lambda d: (
        d["units"].update(coordinates="lonlat", x=None, y=None, lon="lon", lat="lat",
                          geometry={"file": "units.gpkg", "layer": "units", "id": "unit_id"}),
        d.update(adjacency={"source": "geometry", "islands": "error"})))
    return path


BASES: dict[str, Callable[[Path], Path]] = {"edges": write_edges_base,
                                            "geometry": write_geometry_base}


# --- editing helpers -----------------------------------------------------------------------------

def read_rows(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))


def write_rows(path: Path, rows: list[list[str]]) -> None:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8")


def set_cell(path: Path, row: int, column: str, value: str) -> None:
    """Overwrite one cell; ``row`` counts the header as row 1, as the messages do."""
    rows = read_rows(path)
    rows[row - 1][rows[0].index(column)] = value
    write_rows(path, rows)


def edit_settings(path: Path, edit: Callable[[dict], Any]) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def set_path(data: dict, dotted: tuple, value: Any) -> None:
    node = data
    for key in dotted[:-1]:
        node = node[key]
    node[dotted[-1]] = value


def delete_path(data: dict, dotted: tuple) -> None:
    node = data
    for key in dotted[:-1]:
        node = node[key]
    del node[dotted[-1]]


# --- a case --------------------------------------------------------------------------------------

@dataclass
class Case:
    """One break of a base scenario and what the message must say about it."""

    id: str
    base: str
    breaks: Callable[[Path], None]  # receives the scenario YAML path
    needles: tuple  # each must appear in the message (a tuple in it: one of its strings)
    exit_code: int = 2
    # "validate" or "solve" (failing before any solving) through the CLI; "checks" and
    # "diagnose": loading, then allocator.validate or allocator.diagnose
    command: str = "validate"
    marks: list = field(default_factory=list)


CASES: list[Case] = []
rng = random.Random(SEED)


def add(case: Case) -> None:
    """Keep a case; a random draw that repeats an earlier one gets a numbered id."""
    taken = {c.id for c in CASES}
    base, k = case.id, 1
    while case.id in taken:
        k += 1
        case.id = f"{base}-{k}"
    CASES.append(case)


# --- tables: bad values --------------------------------------------------------------------------

NOT_NUMBERS = ["abc", "", "NaN", "nan", "NA", "null", "None", "N/A", "inf", "-inf", "Infinity",
               "1e400", "-1e999", "1.2.3", "12abc", "0x1F", "true", "1,000", "1 000", "#DIV/0!",
               "--5", "5-", "∞", "1e", "e5", "½", "-", "."]
NEGATIVE = ["-1", "-0.001", "-1e6"]
NOT_POSITIVE = ["0", "0.0", "-0", "-2.5"]
NOT_WHOLE = ["1.5", "0.25", "2.000001", "1e20", "12345678901234567890"]

# file -> (data rows, {numeric column: kinds of bad value})
NUMERIC_COLUMNS = {
    "units.csv": (6, {"potential": NOT_NUMBERS + NEGATIVE, "workload": NOT_NUMBERS + NEGATIVE,
                      "last_year_sales": NOT_NUMBERS + NEGATIVE,
                      "x": NOT_NUMBERS, "y": NOT_NUMBERS}),
    "reps.csv": (2, {"annual_cost": NOT_NUMBERS + NEGATIVE,
                     "capacity_hours": NOT_NUMBERS + NOT_POSITIVE,
                     "productivity": NOT_NUMBERS + NOT_POSITIVE}),
    "hire_sites.csv": (2, {"max_hires": NOT_NUMBERS + NEGATIVE + NOT_WHOLE}),
}


def cell_break(file: str, row: int, column: str, value: str) -> Callable[[Path], None]:
    return lambda path: set_cell(path.parent / file, row, column, value)


def cell_needles(file: str, row: int, column: str, shown: str) -> tuple[str, ...]:
    return (file, f"row {row}", f"'{column}'", repr(shown))


for file, (n_rows, columns) in NUMERIC_COLUMNS.items():
    for column, kinds in columns.items():
        for kind in kinds:
            row = rng.randint(2, n_rows + 1)
            # the reader skips spaces after a comma, so the message shows the value without them
            add(Case(f"cell-{file}-{column}-{kind!r}", "edges", cell_break(file, row, column, kind),
                     cell_needles(file, row, column, kind.lstrip())))

# identifiers: empty, duplicate, unknown (references), a unit joined to itself (edges)
ID_BREAKS = [
    ("units.csv", 6, "unit_id", ["", "duplicate"]),
    ("reps.csv", 2, "rep_id", ["", "duplicate"]),
    ("reps.csv", 2, "home_unit", ["", "U99", "u1", "U 1", "U1.0", "R1"]),
    ("hire_sites.csv", 2, "unit_id", ["", "U99", "u3", "U0"]),
    ("edges.csv", 7, "a", ["", "U99", "u2", "self"]),
    ("edges.csv", 7, "b", ["", "U99", "U7", "self"]),
]
for file, n_rows, column, kinds in ID_BREAKS:
    for kind in kinds:
        for _ in range(2):  # two seeded rows each
            row = rng.randint(2, n_rows + 1)

            def breaks(path: Path, file=file, row=row, column=column, kind=kind) -> None:
                table = path.parent / file
                rows = read_rows(table)
                k = rows[0].index(column)
                if kind == "duplicate":
                    other = 2 if row != 2 else 3
                    value = rows[other - 1][k]
                elif kind == "self":
                    value = rows[row - 1][1 - k]
                else:
                    value = kind
                rows[row - 1][k] = value
                write_rows(table, rows)

            if kind == "duplicate":
                # the second of the two equal ids is named, with its row
                needles: tuple[str, ...] = (file, "duplicate", f"'{column}'")
            elif kind == "self":
                needles = (file, f"row {row}", "itself")
            else:
                needles = cell_needles(file, row, column, kind)
            add(Case(f"id-{file}-{column}-{kind or 'empty'}-row{row}", "edges", breaks, needles))

# a hire site listed twice: the message must show the unit id, not an internal position
for row in (2, 3):
    add(Case(f"id-hire_sites.csv-unit_id-duplicate-row{row}", "edges",
             cell_break("hire_sites.csv", row, "unit_id", "U6" if row == 2 else "U3"),
             ("hire_sites.csv", "duplicate", "'unit_id'", "'U6'" if row == 2 else "'U3'")))

# locks naming unknown reps
for row in range(2, 8):
    for value in ("R9", "r1", "U1"):
        def breaks(path: Path, row=row, value=value) -> None:
            units = path.parent / "units.csv"
            rows = read_rows(units)
            rows[0].append("lock")
            for k, line in enumerate(rows[1:], start=2):
                line.append(value if k == row else "")
            write_rows(units, rows)
            edit_settings(path, lambda d: d["units"].update(lock="lock"))

        add(Case(f"lock-unknown-{value}-row{row}", "edges", breaks,
                 cell_needles("units.csv", row, "lock", value)))


# --- tables: structure ---------------------------------------------------------------------------

REQUIRED = {"units.csv": ["unit_id", "name", "x", "y", "potential", "workload", "last_year_sales"],
            "reps.csv": ["rep_id", "home_unit", "annual_cost", "capacity_hours", "productivity"],
            "hire_sites.csv": ["unit_id", "max_hires"], "edges.csv": ["a", "b"]}
ALL_COLUMNS = {**REQUIRED, "reps.csv": ["rep_id", "name", "home_unit", "annual_cost",
                                        "capacity_hours", "productivity"]}


def drop_column(file: str, column: str, rename: str | None) -> Callable[[Path], None]:
    def breaks(path: Path) -> None:
        rows = read_rows(path.parent / file)
        k = rows[0].index(column)
        if rename is None:
            rows = [r[:k] + r[k + 1:] for r in rows]
        else:
            rows[0][k] = rename
        write_rows(path.parent / file, rows)
    return breaks


def duplicate_column(file: str, column: str, same: bool) -> Callable[[Path], None]:
    def breaks(path: Path) -> None:
        rows = read_rows(path.parent / file)
        k = rows[0].index(column)
        for r, line in enumerate(rows):
            line.append(line[k] if same or r == 0 else "0")
        write_rows(path.parent / file, rows)
    return breaks


for file, columns in REQUIRED.items():
    for column in columns:
        add(Case(f"column-missing-{file}-{column}", "edges", drop_column(file, column, None),
                 (file, column, "missing column")))
        add(Case(f"column-misspelt-{file}-{column}", "edges",
                 drop_column(file, column, column.upper() + "_"), (file, column, "missing column")))
for file, columns in ALL_COLUMNS.items():
    for column in columns:
        for same in (True, False):
            add(Case(f"column-twice-{file}-{column}-{'same' if same else 'other'}", "edges",
                     duplicate_column(file, column, same), (file, f"'{column}'", "twice")))


def ragged(file: str, row: int, extra: bool) -> Callable[[Path], None]:
    def breaks(path: Path) -> None:
        lines = (path.parent / file).read_text(encoding="utf-8").splitlines()
        lines[row - 1] = lines[row - 1] + ",7" if extra else lines[row - 1].rsplit(",", 1)[0]
        (path.parent / file).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return breaks


for file, columns in REQUIRED.items():
    n_rows = {"units.csv": 6, "reps.csv": 2, "hire_sites.csv": 2, "edges.csv": 7}[file]
    for extra in (True, False):
        row = rng.randint(2, n_rows + 1)
        add(Case(f"ragged-{file}-{'long' if extra else 'short'}-row{row}", "edges",
                 ragged(file, row, extra), (file, f"row {row}")))


def replace_file(file: str, content: bytes | None) -> Callable[[Path], None]:
    def breaks(path: Path) -> None:
        target = path.parent / file
        target.unlink()
        if content is not None:
            target.write_bytes(content)
    return breaks


def header_only(file: str) -> Callable[[Path], None]:
    def breaks(path: Path) -> None:
        target = path.parent / file
        target.write_text(target.read_text(encoding="utf-8").splitlines()[0] + "\n",
                          encoding="utf-8")
    return breaks


def as_folder(file: str) -> Callable[[Path], None]:
    def breaks(path: Path) -> None:
        (path.parent / file).unlink()
        (path.parent / file).mkdir()
    return breaks


for file in REQUIRED:
    junk = bytes(rng.randrange(128, 256) for _ in range(64))
    add(Case(f"file-missing-{file}", "edges", replace_file(file, None), (file, "not found")))
    add(Case(f"file-empty-{file}", "edges", replace_file(file, b""), (file,)))
    add(Case(f"file-header-only-{file}", "edges", header_only(file), (file, "no rows")))
    add(Case(f"file-binary-{file}", "edges", replace_file(file, junk), (file,)))
    add(Case(f"file-folder-{file}", "edges", as_folder(file), (file, "not found")))
    add(Case(f"file-blank-lines-{file}", "edges", replace_file(file, b"\n\n\n"), (file,)))


def rename_table(setting: tuple, file: str, new: str) -> Callable[[Path], None]:
    def breaks(path: Path) -> None:
        (path.parent / file).rename(path.parent / new)
        edit_settings(path, lambda d: set_path(d, setting, new))
    return breaks


for setting, file in ((("units", "table"), "units.csv"), (("reps", "table"), "reps.csv"),
                      (("hiring", "sites", "table"), "hire_sites.csv"),
                      (("adjacency", "edges"), "edges.csv")):
    new = file.replace(".csv", ".txt")
    add(Case(f"file-format-{file}", "edges", rename_table(setting, file, new),
             (new, "unknown table format")))
add(Case("file-scenario-missing", "edges", lambda p: p.unlink(), (YAML_NAME, "not found")))


# --- islands ---------------------------------------------------------------------------------------

def isolate(unit: str) -> Callable[[Path], None]:
    def breaks(path: Path) -> None:
        edges = path.parent / "edges.csv"
        rows = read_rows(edges)
        write_rows(edges, [rows[0]] + [r for r in rows[1:] if unit not in r])
    return breaks


for k in range(1, 7):
    add(Case(f"island-U{k}", "edges", isolate(f"U{k}"),
             (YAML_NAME, "adjacency.islands", f"'U{k}'", "no neighbour")))


# --- geometry --------------------------------------------------------------------------------------

def edit_geometry(edit: Callable[[gpd.GeoDataFrame], gpd.GeoDataFrame]) -> Callable[[Path], None]:
    def breaks(path: Path) -> None:
        file = path.parent / "units.gpkg"
        frame = edit(gpd.read_file(file, layer="units"))
        file.unlink()
        with warnings.catch_warnings():  # writing a layer without a CRS is the point of a case
            warnings.simplefilter("ignore", UserWarning)
            frame.to_file(file, layer="units")
    return breaks


def with_geometry(frame: gpd.GeoDataFrame, row: int, shape) -> gpd.GeoDataFrame:
    frame = frame.copy()
    frame.loc[row, "geometry"] = shape
    return frame


BOWTIE = shapely.Polygon([(-97.0, 31.0), (-96.9, 31.1), (-96.9, 31.0), (-97.0, 31.1)])
for row in range(6):
    uid = f"U{row + 1}"
    add(Case(f"geometry-empty-{uid}", "geometry",
             edit_geometry(lambda f, r=row: with_geometry(f, r, shapely.Polygon())),
             ("units.gpkg", "empty geometry", f"'{uid}'")))
    add(Case(f"geometry-invalid-{uid}", "geometry",
             edit_geometry(lambda f, r=row: with_geometry(f, r, BOWTIE)),
             ("units.gpkg", "invalid geometry", f"'{uid}'")))
    add(Case(f"geometry-missing-unit-{uid}", "geometry",
             edit_geometry(lambda f, r=row: f.drop(index=r)),
             ("units.gpkg", "no geometry", f"'{uid}'")))
    add(Case(f"geometry-duplicate-id-{uid}", "geometry",
             edit_geometry(lambda f, r=row: f.assign(unit_id=[
                 "U1" if k == r and r != 0 else ("U2" if k == r else u)
                 for k, u in enumerate(f["unit_id"])])),
             ("units.gpkg", "duplicate", "unit_id")))
add(Case("geometry-extra-unit", "geometry",
         edit_geometry(lambda f: gpd.GeoDataFrame(
             {"unit_id": [*f["unit_id"], "U99"]},
             geometry=[*f.geometry, shapely.box(-96.5, 31.5, -96.4, 31.6)], crs=f.crs)),
         ("units.gpkg", "not in the units table", "'U99'")))
add(Case("geometry-id-column-missing", "geometry",
         edit_geometry(lambda f: f.rename(columns={"unit_id": "fips"})),
         ("units.gpkg", "unit_id", "missing id column")))
add(Case("geometry-file-missing", "geometry", replace_file("units.gpkg", None),
         ("units.gpkg", "not found")))
add(Case("geometry-file-garbage", "geometry",
         replace_file("units.gpkg", bytes(rng.randrange(256) for _ in range(512))),
         ("units.gpkg", "cannot read geometry")))
add(Case("geometry-without-file", "edges",
         lambda p: edit_settings(p, lambda d: d["adjacency"].update(source="geometry")),
         (YAML_NAME, "adjacency.source")))

# coordinate reference systems that do not agree: caught by allocator.validate after loading
add(Case("crs-degrees-labelled-metres", "geometry",
         edit_geometry(lambda f: f.set_crs("EPSG:3857", allow_override=True)),
         ("units.csv", "row 2", "'lon'", "different coordinate systems"), command="checks"))
add(Case("crs-metres-labelled-degrees", "geometry",
         edit_geometry(lambda f: f.to_crs("EPSG:3857").set_crs("EPSG:4326", allow_override=True)),
         ("units.gpkg", "'geometry'", "'U1'", "not degrees")))
add(Case("crs-metres-without-crs", "geometry",
         edit_geometry(lambda f: f.to_crs("EPSG:3857").set_crs(None, allow_override=True)),
         ("units.gpkg", "'geometry'", "'U1'", "no CRS"), command="checks"))
add(Case("crs-planar-setting-with-degrees", "geometry",
         lambda p: edit_settings(p, lambda d: d["units"].update(
             coordinates="planar", lon=None, lat=None, x="lon", y="lat")),
         (YAML_NAME, "units.coordinates", "'planar'"), command="checks"))
for row in range(6):
    uid = f"U{row + 1}"
    add(Case(f"crs-point-elsewhere-{uid}", "geometry",
             cell_break("units.csv", row + 2, "lon", "-80.0"),
             ("units.csv", f"row {row + 2}", "'lon'", f"unit {uid}"), command="checks"))


# --- locks that no contiguous territory can honour -------------------------------------------------

def locks(assign: dict[str, str]) -> Callable[[Path], None]:
    def breaks(path: Path) -> None:
        units = path.parent / "units.csv"
        rows = read_rows(units)
        rows[0].append("owner")
        for line in rows[1:]:
            line.append(assign.get(line[0], ""))
        write_rows(units, rows)
        edit_settings(path, lambda d: d["units"].update(lock="owner"))
    return breaks


# grid U1 U2 U3 / U4 U5 U6; R1 lives in U1, R2 in U5
STRANDED = [({"U2": "R2", "U3": "R1"}, "U3", 4, "R1"),
            ({"U2": "R2", "U6": "R1"}, "U6", 7, "R1"),
            ({"U4": "R2", "U2": "R2", "U1": "R1", "U6": "R1"}, "U6", 7, "R1"),
            ({"U4": "R1", "U6": "R1", "U3": "R2"}, "U6", 7, "R1"),
            ({"U3": "R1", "U2": "R2", "U6": "R2"}, "U3", 4, "R1"),
            # a home locked to another rep: R1 (kept, it has a lock) must hold its home U1
            ({"U1": "R2", "U3": "R1"}, "U1", 2, "R2"),
            ({"U5": "R1", "U6": "R2"}, "U5", 6, "R1")]
for assign, unit, row, rep in STRANDED:
    add(Case(f"lock-contiguity-{'-'.join(f'{u}{r}' for u, r in assign.items())}", "edges",
             locks(assign), ("units.csv", f"row {row}", "'owner'", f"'{rep}'", unit),
             command="checks"))


# --- YAML syntax -----------------------------------------------------------------------------------

SYNTAX = {  # name -> (line maker, is the error reported on the broken line itself)
    "unclosed-list": (lambda i, k, v: f"{i}{k}: [{v}", False),
    "unclosed-map": (lambda i, k, v: f"{i}{k}: {{a: {v}", False),
    "unclosed-quote": (lambda i, k, v: f'{i}{k}: "{v}', False),
    "at-sign": (lambda i, k, v: f"{i}{k}: @{v}", True),
    "backtick": (lambda i, k, v: f"{i}{k}: `{v}", True),
    "two-colons": (lambda i, k, v: f"{i}{k}: {v}: x", True),
    "tab-indent": (lambda i, k, v: f"\t{i}{k}: {v}", True),
    "no-colon": (lambda i, k, v: f"{i}{k} {v}", False),
    "given-twice": (None, True),
}


def yaml_break(kind: str, line_no: int) -> Callable[[Path], None]:
    def breaks(path: Path) -> None:
        lines = path.read_text(encoding="utf-8").splitlines()
        indent, rest = lines[line_no - 1][: len(lines[line_no - 1]) - len(
            lines[line_no - 1].lstrip())], lines[line_no - 1].lstrip()
        key, value = rest.split(": ", 1)
        maker = SYNTAX[kind][0]
        if maker is None:
            lines.insert(line_no, lines[line_no - 1])
        else:
            lines[line_no - 1] = maker(indent, key, value)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return breaks


def scalar_lines() -> list[int]:
    """1-based numbers of the base YAML's ``key: scalar`` lines."""
    folder = Path(__import__("tempfile").mkdtemp())
    try:
        text = write_edges_base(folder).read_text(encoding="utf-8")
    finally:
        shutil.rmtree(folder)
    out = []
    for k, line in enumerate(text.splitlines(), start=1):
        stripped = line.lstrip()
        if stripped.startswith("- ") or ": " not in stripped:
            continue
        value = stripped.split(": ", 1)[1]
        if value and value[0] not in "[{'\"&*!|>" and value != "null":
            out.append(k)
    return out


SCALAR_LINES = scalar_lines()
for kind, (_, on_line) in SYNTAX.items():
    for line_no in sorted(rng.sample(SCALAR_LINES, 6)):
        row = line_no + 1 if kind == "given-twice" else line_no
        needles = (YAML_NAME, f"row {row}") if on_line else (YAML_NAME, "YAML", "row ")
        add(Case(f"yaml-{kind}-line{line_no}", "edges", yaml_break(kind, line_no), needles))

for name, text in {"list": "- a\n- b\n", "scalar": "hello\n", "empty": "", "null": "null\n",
                   "number": "42\n"}.items():
    add(Case(f"yaml-not-mapping-{name}", "edges",
             lambda p, t=text: p.write_text(t, encoding="utf-8"), (YAML_NAME, "mapping")))
add(Case("yaml-not-utf8", "edges",
         lambda p: p.write_bytes(b"name: caf\xe9\n" + p.read_bytes()), (YAML_NAME,)))


# --- settings: derived from the settings models ----------------------------------------------------

def base_settings() -> dict:
    folder = Path(__import__("tempfile").mkdtemp())
    try:
        return yaml.safe_load(write_edges_base(folder).read_text(encoding="utf-8"))
    finally:
        shutil.rmtree(folder)


BASE_SETTINGS = base_settings()


def leaves(model: type[BaseModel], data: dict, prefix: tuple) -> list[tuple[tuple, Any, Any]]:
    """(path, field info, plain type) of every scalar setting under ``data``'s sections."""
    out = []
    for name, info in model.model_fields.items():
        kind = info.annotation
        if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
            kind = next(a for a in typing.get_args(kind) if a is not type(None))
        path = (*prefix, name)
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            if isinstance(data.get(name), dict):
                out += leaves(kind, data[name], path)
        elif typing.get_origin(kind) is list:
            inner = typing.get_args(kind)[0]
            if isinstance(inner, type) and issubclass(inner, BaseModel) and data.get(name):
                out += leaves(inner, data[name][0], (*path, 0))
        elif typing.get_origin(kind) is dict:
            continue
        else:
            out.append((path, info, kind))
    return out


def bad_values(info, kind) -> list[tuple[str, Any]]:
    """Values a setting must refuse: beyond each bound, of the wrong type, not finite."""
    values: list[tuple[str, Any]] = []
    if kind in (int, float):
        step = 1 if kind is int else 0.001
        for bound in info.metadata:
            if isinstance(bound, annotated_types.Gt):
                values += [("at-gt-bound", bound.gt), ("below-gt-bound", bound.gt - 1)]
            elif isinstance(bound, annotated_types.Ge):
                values += [("below-ge-bound", bound.ge - step)]
            elif isinstance(bound, annotated_types.Lt):
                values += [("at-lt-bound", bound.lt), ("above-lt-bound", bound.lt + 1)]
            elif isinstance(bound, annotated_types.Le):
                values += [("above-le-bound", bound.le + step)]
        values += [("text", "lots"), ("list", [1, 2]), ("nan", float("nan")),
                   ("inf", float("inf")), ("-inf", float("-inf"))]
        if kind is int:
            values += [("fraction", 1.5)]
    elif kind is bool:
        values += [("text", "maybe"), ("number", 7)]
    elif typing.get_origin(kind) is typing.Literal:
        values += [("choice", "bogus"), ("number", 3), ("case", str(typing.get_args(kind)[0])
                                                         .upper())]
    elif kind is str:
        values += [("list", ["a", "b"]), ("mapping-free-list", [1])]
    return values


def settings_accept(data: dict) -> bool:
    try:
        Settings.model_validate(data)
    except Exception:  # noqa: BLE001 - any refusal counts
        return False
    return True


def settings_case(case_id: str, path: tuple, value: Any, needles: tuple[str, ...],
                  nonfinite: bool = False) -> None:
    data = copy.deepcopy(BASE_SETTINGS)
    set_path(data, path, value)
    if path == ("strategy", "target_sales"):  # one target at a time: drop the growth target
        del data["strategy"]["target_growth"]
    assert not (nonfinite and settings_accept(data)), f"{case_id}: a non-finite setting passes"
    add(Case(case_id, "edges",
             lambda p, data=data: p.write_text(yaml.safe_dump(data, sort_keys=False),
                                               encoding="utf-8"),
             needles))


for path, info, kind in leaves(Settings, BASE_SETTINGS, ()):
    dotted = ".".join(str(p) for p in path)
    for label, value in bad_values(info, kind):
        shown = repr(value) if not isinstance(value, list) else str(value)
        # a value that breaks a rule between settings is named by the section's rule, which
        # quotes the setting by its own name (quotas.min_growth -0.5 > max_growth -inf)
        settings_case(f"setting-{dotted}-{label}", path, value,
                      (YAML_NAME, (dotted, ".".join(map(str, path[-2:])), f"{path[-1]} "), shown),
                      nonfinite=label in {"nan", "inf", "-inf"})

# unknown keys in every section, a near miss of a real key
SECTIONS = [(), ("units",), ("adjacency",), ("reps",), ("hiring",), ("hiring", "sites"),
            ("managers",), ("strategy",), ("strategy", "headcount"), ("response",),
            ("alignment",), ("alignment", "balance", 0), ("travel",), ("quotas",), ("solver",)]
for section in SECTIONS:
    node = BASE_SETTINGS
    for key in section:
        node = node[key]
    for key in rng.sample(sorted(node), min(2, len(node))):
        typo = key + "s" if not key.endswith("s") else key[:-1]
        dotted = ".".join(str(p) for p in (*section, typo))
        add(Case(f"setting-unknown-{dotted}", "edges",
                 lambda p, s=section, t=typo: edit_settings(
                     p, lambda d: set_path(d, (*s, t), 123)),
                 (YAML_NAME, dotted, "123")))

# required settings removed
for path in [("name",), ("units",), ("strategy",), ("units", "table"), ("reps", "table"),
             ("hiring", "sites", "table")]:
    dotted = ".".join(path)
    add(Case(f"setting-required-{dotted}", "edges",
             lambda p, path=path: edit_settings(p, lambda d: delete_path(d, path)),
             (YAML_NAME, dotted)))
add(Case("setting-required-strategy.budget", "edges",
         lambda p: edit_settings(p, lambda d: delete_path(d, ("strategy", "budget"))),
         (YAML_NAME, "strategy", "budget")))

# settings that name columns or files which are not there
COLUMN_SETTINGS = {("units", "id"): "units.csv", ("units", "potential"): "units.csv",
                   ("units", "workload"): "units.csv", ("units", "last_year_sales"): "units.csv",
                   ("units", "name"): "units.csv", ("units", "region"): "units.csv",
                   ("units", "x"): "units.csv", ("units", "y"): "units.csv",
                   ("units", "lock"): "units.csv",
                   ("reps", "id"): "reps.csv", ("reps", "home_unit"): "reps.csv",
                   ("reps", "annual_cost"): "reps.csv", ("reps", "capacity_hours"): "reps.csv",
                   ("reps", "productivity"): "reps.csv",
                   ("hiring", "sites", "unit"): "hire_sites.csv",
                   ("hiring", "sites", "max_hires"): "hire_sites.csv",
                   ("adjacency", "source_column"): "edges.csv",
                   ("adjacency", "target_column"): "edges.csv"}
for path, file in COLUMN_SETTINGS.items():
    dotted = ".".join(path)
    add(Case(f"setting-column-absent-{dotted}", "edges",
             lambda p, path=path: edit_settings(p, lambda d: set_path(d, path, "no_such_column")),
             (file, "no_such_column", "missing column")))
add(Case("setting-column-absent-reps.name", "edges",
         lambda p: edit_settings(p, lambda d: set_path(d, ("reps", "name"), "no_such_column")),
         ("reps.csv", "no_such_column", "missing column")))
for path in [("units", "table"), ("reps", "table"), ("hiring", "sites", "table"),
             ("adjacency", "edges")]:
    add(Case(f"setting-file-absent-{'.'.join(path)}", "edges",
             lambda p, path=path: edit_settings(p, lambda d: set_path(d, path, "absent.csv")),
             ("absent.csv", "not found")))

# settings that clash with each other (or with the tables)
CLASHES: dict[str, tuple[Callable[[dict], Any], tuple[str, ...]]] = {
    "headcount-min-above-max": (lambda d: d["strategy"].update(headcount={"min": 3, "max": 2}),
                                ("strategy.headcount", "headcount.min 3", "headcount.max 2")),
    "floor-above-ceiling": (lambda d: d["response"].update(floor=0.5, ceiling=0.4),
                            ("response", "floor 0.5", "ceiling 0.4")),
    "floor-equals-ceiling": (lambda d: d["response"].update(floor=0.4, ceiling=0.4),
                             ("response", "floor 0.4", "ceiling 0.4")),
    "growth-bounds-crossed": (lambda d: d["quotas"].update(min_growth=0.5, max_growth=0.1),
                              ("quotas", "min_growth 0.5", "max_growth 0.1")),
    "two-targets": (lambda d: d["strategy"].update(target_sales=1e6),
                    ("strategy", "target_sales", "target_growth")),
    "no-target": (lambda d: d["strategy"].pop("target_growth"),
                  ("strategy", "target_sales", "target_growth")),
    "edges-without-file": (lambda d: d["adjacency"].update(edges=None),
                           ("adjacency", "adjacency.edges")),
    "no-balance-measure": (lambda d: d["alignment"].update(balance=[]),
                           ("alignment.balance", "at least one")),
    "balance-first-not-workload": (
        lambda d: d["alignment"].update(balance=[{"measure": "potential", "tolerance": 0.2}]),
        ("alignment.balance", "workload")),
    "balance-measure-not-a-column": (
        lambda d: d["alignment"].update(balance=[{"measure": "workload", "tolerance": 0.2},
                                                 {"measure": "visits", "tolerance": 0.2}]),
        ("units.csv", "'visits'")),  # a measure is a column of the units table
    "seasonality-eleven": (lambda d: d["quotas"].update(seasonality=[1] * 11),
                           ("quotas.seasonality", "12")),
    "seasonality-negative": (lambda d: d["quotas"].update(seasonality=[1] * 11 + [-1]),
                             ("quotas.seasonality", "non-negative")),
    "seasonality-zero": (lambda d: d["quotas"].update(seasonality=[0] * 12),
                         ("quotas.seasonality", "positive sum")),
    "seasonality-text": (lambda d: d["quotas"].update(seasonality=["high"] * 12),
                         ("quotas.seasonality", "'high'")),
    "section-is-list": (lambda d: d.update(strategy=[1, 2]), ("strategy",)),
    "section-is-text": (lambda d: d.update(solver="fast"), ("solver", "'fast'")),
    "islands-rule-unknown": (lambda d: d["adjacency"].update(islands="ignore"),
                             ("adjacency.islands", "'ignore'")),
}
for name, (edit, needles) in CLASHES.items():
    add(Case(f"setting-clash-{name}", "edges",
             lambda p, edit=edit: edit_settings(p, edit),
             needles if needles[0].endswith(".csv") else (YAML_NAME, *needles)))


# --- well formed, but no plan can satisfy it: exit 3 before any solving ----------------------------

for budget in sorted(rng.sample(range(10_000, 280_000, 1_000), 6)):
    add(Case(f"spec-budget-{budget}", "edges",
             lambda p, b=budget: edit_settings(p, lambda d: d["strategy"].update(
                 budget=b, headcount={"min": 3, "max": 4})),
             ("budget", "minimum head count is 3"), exit_code=3, command="solve"))
    add(Case(f"spec-budget-{budget}-diagnosis", "edges",
             lambda p, b=budget: edit_settings(p, lambda d: d["strategy"].update(
                 budget=b, headcount={"min": 3, "max": 4})),
             (f"the budget of {budget // 1000}K pays for at most", "minimum head count is 3"),
             exit_code=3, command="diagnose"))
for minimum in (5, 6, 9):
    def more_reps(p: Path, m=minimum) -> None:
        edit_settings(p, lambda d: d["strategy"].update(budget=5e6,
                                                        headcount={"min": m, "max": m + 1}))
    needles = ("at most 4 reps can be staffed (2 existing reps and 2 hire places)",
               f"the minimum head count is {minimum}")
    add(Case(f"spec-headcount-{minimum}", "edges", more_reps, needles, exit_code=3,
             command="solve"))
    add(Case(f"spec-headcount-{minimum}-diagnosis", "edges", more_reps, needles, exit_code=3,
             command="diagnose"))


# --- running the cases -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> dict[str, Path]:
    """Each base scenario written once; the cases copy its folder."""
    folders = {}
    for name, writer in BASES.items():
        folder = tmp_path_factory.mktemp(f"base-{name}")
        path = writer(folder)
        assert path.name == YAML_NAME
        folders[name] = folder
    return folders


def test_bases_are_valid(bases):
    """Every failure below comes from the one break made: the bases themselves pass every check."""
    for folder in bases.values():
        result = CliRunner().invoke(main, ["validate", str(folder / YAML_NAME)])
        assert result.exit_code == 0, result.output
        validate_scenario(load_scenario(folder / YAML_NAME))


def test_enough_cases():
    assert len(CASES) >= 500
    assert len({case.id for case in CASES}) == len(CASES)


def message_of(case: Case, path: Path) -> str:
    if case.command == "diagnose":
        with pytest.raises(InfeasibleError) as caught:
            check_specification(load_scenario(path))
        assert caught.value.exit_code == case.exit_code
        return str(caught.value)
    if case.command == "checks":
        with pytest.raises(InputError) as caught:
            validate_scenario(load_scenario(path))
        return str(caught.value)
    args = ["validate", str(path)] if case.command == "validate" else \
        ["solve", str(path), "--quiet", "--time-limit", "5", "--models-dir",
         str(path.parent / "models")]
    result = CliRunner().invoke(main, args)
    # CliRunner keeps an uncaught exception in result.exception; SystemExit is the clean exit
    assert isinstance(result.exception, SystemExit), (result.exception, result.output)
    assert "Traceback" not in result.output
    assert result.exit_code == case.exit_code, result.output
    assert result.output.startswith("error: "), result.output
    assert not (path.parent / "models").exists() or not any(
        (path.parent / "models").rglob("result.json"))
    return result.output


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_malformed(case: Case, bases, tmp_path):
    folder = tmp_path / "scenario"
    shutil.copytree(bases[case.base], folder)
    path = folder / YAML_NAME
    case.breaks(path)
    message = message_of(case, path)
    missing = [needle for needle in case.needles
               if not (any(n in message for n in needle) if isinstance(needle, tuple)
                       else needle in message)]
    assert not missing, f"message lacks {missing}: {message}"


def test_islands_are_joined_with_a_warning(bases, tmp_path):
    """With ``adjacency.islands: nearest`` a unit with no neighbour is linked to its nearest unit,
    and the link is reported, never made silently (``error`` refuses it, as the cases above)."""
    folder = tmp_path / "scenario"
    shutil.copytree(bases["edges"], folder)
    path = folder / YAML_NAME
    isolate("U6")(path)
    edit_settings(path, lambda d: d["adjacency"].update(islands="nearest"))
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    # U6 sits 10 km from both U3 and U5; the link goes to one of them
    assert "warning: joined 1 island group(s) to their nearest unit: U6->U" in result.output
    summary = CliRunner().invoke(main, ["validate", str(path), "--json"])
    assert '"islands_joined": 1' in summary.stdout
    with pytest.warns(IslandWarning, match="U6->U"):
        scenario = load_scenario(path)
    (link,) = scenario.islands
    ids = scenario.units["unit_id"]
    assert ids.iloc[link[0]] == "U6" and ids.iloc[link[1]] in {"U3", "U5"}


def test_debug_shows_the_traceback(bases, tmp_path):
    """The one way to see the traceback of an input error is to ask for it."""
    folder = tmp_path / "scenario"
    shutil.copytree(bases["edges"], folder)
    set_cell(folder / "units.csv", 3, "workload", "lots")
    result = CliRunner().invoke(main, ["validate", str(folder / YAML_NAME), "--debug"])
    assert isinstance(result.exception, InputError)
    assert result.exception.row == 3 and result.exception.value == "lots"
