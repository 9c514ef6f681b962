"""Inputs of a mid-year re-optimisation: the disruption limit, people changes and locks.

Readers only: each returns a small validated value and never builds a model. Every problem is an
:class:`InputError` naming the file, row or key, and the offending value.

The disruption limit (``--max-moved``) is written ``[units:|value:]SHARE``:

- ``5%`` or ``units:5%``: at most 5 % of all units may change owner;
- ``value:5%``: the units that change owner may carry at most 5 % of last year's sales;
- a bare number between 0 and 1 is a share too (``0.05`` is ``5%``).

People changes are a small YAML file::

    departures:            # reps who leave; their units go to other reps
      - R012
      - rep_id: NEW-48201-1
    vacancies:             # reps who leave but whose seat stays open: their territory is kept
      - R031               # as it is, unstaffed, for a later backfill
    hires:                 # people who join during the year
      - rep_id: H-2027-01
        name: Jane Doe               # optional
        home_unit: "48201"           # where they are based (a unit id)
        start_month: 8               # first month they work (1..12)
        ramp_months: 3               # optional; default: the scenario's hiring.ramp_months
        ramp_productivity: 0.5       # optional; default: hiring.ramp_productivity
        annual_cost: 150000          # optional; default: hiring.annual_cost (full-year salary)
        capacity_hours: 1600         # optional; default: hiring.capacity_hours
        productivity: 1.0            # optional; default: hiring.productivity

Locks are a table (CSV, XLSX or Parquet) with a ``unit_id`` column, a ``territory_id`` column,
or both (one of them filled per row): a locked unit keeps its owner; a locked territory keeps
every unit it has.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from allocator import read
from allocator.exceptions import InputError

_LIMIT = re.compile(r"^\s*(?:(units|value)\s*:)?\s*([0-9]*\.?[0-9]+)\s*(%?)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class DisruptionLimit:
    """At most ``share`` of the ``measure`` (unit count, or last year's sales) may change owner."""

    measure: Literal["units", "value"]
    share: float

    @classmethod
    def parse(cls, text: str, *, option: str = "--max-moved") -> DisruptionLimit:
        match = _LIMIT.match(str(text))
        if not match:
            raise InputError("write the limit as SHARE, units:SHARE or value:SHARE, where SHARE "
                             "is a percentage (5%) or a fraction (0.05)", column=option,
                             value=text)
        measure = (match.group(1) or "units").lower()
        number = float(match.group(2))
        share = number / 100.0 if match.group(3) else number
        if not 0.0 <= share <= 1.0:
            raise InputError("the share must lie between 0 % and 100 %", column=option,
                             value=text)
        return cls(measure=measure, share=share)  # type: ignore[arg-type]

    def label(self) -> str:
        return f"{self.measure}:{self.share:.4g}" if self.share * 100 % 1 else \
            f"{self.measure}:{self.share * 100:.0f}%"


@dataclass(frozen=True)
class Hire:
    """Someone who joins during the plan year, based at ``home_unit``."""

    rep_id: str
    home_unit: str
    start_month: int
    name: str = "new hire"
    ramp_months: int | None = None
    ramp_productivity: float | None = None
    annual_cost: float | None = None
    capacity_hours: float | None = None
    productivity: float | None = None


@dataclass(frozen=True)
class PeopleChanges:
    """Who leaves (their units go to others), who leaves with the seat kept open, who joins."""

    departures: tuple[str, ...] = ()
    vacancies: tuple[str, ...] = ()
    hires: tuple[Hire, ...] = ()
    file: str | None = None

    @property
    def empty(self) -> bool:
        return not (self.departures or self.vacancies or self.hires)

    def as_dict(self) -> dict[str, Any]:
        return {"departures": list(self.departures), "vacancies": list(self.vacancies),
                "hires": [{k: v for k, v in h.__dict__.items() if v is not None}
                          for h in self.hires]}


@dataclass(frozen=True)
class Locks:
    """Units and whole territories of the parent plan that must not change."""

    units: tuple[str, ...] = ()
    territories: tuple[str, ...] = ()
    file: str | None = None
    rows: dict[str, int] = field(default_factory=dict, compare=False)


_HIRE_KEYS = {"rep_id", "name", "home_unit", "start_month", "ramp_months", "ramp_productivity",
              "annual_cost", "capacity_hours", "productivity"}


def read_people_changes(path: str | Path) -> PeopleChanges:
    """Read the people-changes YAML file (format in the module docstring)."""
    file = str(path)
    data = read.read_yaml(Path(path))
    unknown = set(data) - {"departures", "vacancies", "hires"}
    if unknown:
        raise InputError("unknown section; allowed: departures, vacancies, hires", file=file,
                         column=sorted(unknown)[0])
    departures = _rep_list(data.get("departures"), "departures", file)
    vacancies = _rep_list(data.get("vacancies"), "vacancies", file)
    hires = []
    raw_hires = data.get("hires") or []
    if not isinstance(raw_hires, list):
        raise InputError("must be a list of hires", file=file, column="hires")
    for k, item in enumerate(raw_hires):
        where = f"hires[{k}]"
        if not isinstance(item, dict):
            raise InputError("each hire is a mapping with rep_id, home_unit and start_month",
                             file=file, column=where, value=item)
        extra = set(item) - _HIRE_KEYS
        if extra:
            raise InputError(f"unknown key; allowed: {sorted(_HIRE_KEYS)}", file=file,
                             column=f"{where}.{sorted(extra)[0]}")
        for key in ("rep_id", "home_unit", "start_month"):
            if item.get(key) in (None, ""):
                raise InputError("missing", file=file, column=f"{where}.{key}")
        start = _number(item["start_month"], f"{where}.start_month", file, integer=True)
        if not 1 <= start <= 12:
            raise InputError("start_month must be a month 1..12", file=file,
                             column=f"{where}.start_month", value=item["start_month"])
        options: dict[str, Any] = {}
        for key, low, high, integer in (("ramp_months", 0, 12, True),
                                        ("ramp_productivity", 0, 1, False),
                                        ("annual_cost", 0, math.inf, False),
                                        ("capacity_hours", 0, math.inf, False),
                                        ("productivity", 0, math.inf, False)):
            if item.get(key) is not None:
                value = _number(item[key], f"{where}.{key}", file, integer=integer)
                strict_low = key in ("capacity_hours", "productivity")
                if value < low or value > high or (strict_low and value <= 0):
                    raise InputError(f"must lie in {'(' if strict_low else '['}{low}, {high}]",
                                     file=file, column=f"{where}.{key}", value=item[key])
                options[key] = value
        hires.append(Hire(rep_id=str(item["rep_id"]).strip(), home_unit=str(item["home_unit"]).strip(),
                          start_month=int(start), name=str(item.get("name") or "new hire"),
                          **options))
    ids = [*departures, *vacancies, *(h.rep_id for h in hires)]
    seen: set[str] = set()
    for rid in ids:
        if rid in seen:
            raise InputError("the same rep appears twice in the people changes", file=file,
                             value=rid)
        seen.add(rid)
    return PeopleChanges(tuple(departures), tuple(vacancies), tuple(hires), file)


def _rep_list(raw: Any, section: str, file: str) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InputError("must be a list of rep ids", file=file, column=section, value=raw)
    out = []
    for k, item in enumerate(raw):
        if isinstance(item, dict):
            if set(item) - {"rep_id", "month", "note"} or "rep_id" not in item:
                raise InputError("write a rep id, or a mapping with rep_id (and optional note)",
                                 file=file, column=f"{section}[{k}]", value=item)
            item = item["rep_id"]
        text = str(item).strip() if item is not None else ""
        if not text:
            raise InputError("empty rep id", file=file, column=f"{section}[{k}]")
        out.append(text)
    return out


def _number(value: Any, where: str, file: str, *, integer: bool = False) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError("not a number", file=file, column=where, value=value) from None
    if not math.isfinite(number) or (integer and not number.is_integer()):
        raise InputError("must be a finite " + ("whole number" if integer else "number"),
                         file=file, column=where, value=value)
    return number


def read_locks(path: str | Path) -> Locks:
    """Read a locks table: ``unit_id`` and/or ``territory_id`` columns, one filled per row."""
    file = str(path)
    frame = read.read_table(Path(path))
    frame.columns = [str(c).strip() for c in frame.columns]
    columns = [c for c in ("unit_id", "territory_id") if c in frame.columns]
    if not columns:
        raise InputError(f"needs a unit_id or a territory_id column; the table has "
                         f"{list(frame.columns)}", file=file, column="unit_id")
    extra = [c for c in frame.columns if c not in ("unit_id", "territory_id", "note")]
    if extra:
        raise InputError("unknown column; allowed: unit_id, territory_id, note", file=file,
                         column=extra[0])
    units: list[str] = []
    territories: list[str] = []
    rows: dict[str, int] = {}
    for k, record in enumerate(frame.to_dict(orient="records")):
        row = k + 2
        values = {c: _text(record.get(c)) for c in columns}
        filled = [c for c, v in values.items() if v]
        if len(filled) != 1:
            raise InputError("fill exactly one of unit_id and territory_id per row", file=file,
                             row=row, column=columns[0], value=record.get(columns[0]))
        column = filled[0]
        (units if column == "unit_id" else territories).append(values[column])
        rows[values[column]] = row
    return Locks(tuple(units), tuple(territories), file, rows)


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if pd.isna(value) if not isinstance(value, str) else False:
        return ""
    text = str(value).strip()
    return "" if text.lower() in ("nan", "none") else text
