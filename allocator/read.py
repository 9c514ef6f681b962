"""Readers: one per input format, each returning plain tables; none builds an optimisation model.

Every problem is reported as an :class:`InputError` naming the file, row, column and value.
Rows are counted as a spreadsheet user counts them: the header is row 1, the first record row 2.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from allocator.exceptions import InputError

TABLE_SUFFIXES = {".csv", ".parquet", ".pq", ".xlsx", ".xls"}
# the largest whole number a float holds exactly (counts are cast to 64-bit integers)
MAX_WHOLE = 2**53


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses a key given twice in one mapping.

    Plain YAML keeps the last of two equal keys, so a setting typed twice would be silently
    overridden; here it is an error naming the line of the second one.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                repeated = key in seen
            except TypeError:  # an unhashable key: the base class reports it
                break
            if repeated:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"the key '{key}' is given twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path) -> dict[str, Any]:
    """The scenario file as a dict; syntax errors name the line and column."""
    if not path.is_file():
        raise InputError("scenario file not found", file=str(path))
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        raise InputError(
            f"YAML syntax error: {err.problem}",
            file=str(path),
            row=None if mark is None else mark.line + 1,
            column=None if mark is None else f"character {mark.column + 1}",
        ) from None
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read YAML: {err}", file=str(path)) from None
    if not isinstance(data, dict):
        raise InputError("the scenario file must hold a mapping of sections", file=str(path))
    return data


def read_table(path: Path, sheet: str | None = None) -> pd.DataFrame:
    """A CSV, Parquet or XLSX table with every column read as text first (types are checked later)."""
    if not path.is_file():
        raise InputError("table file not found", file=str(path))
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise InputError(
            f"unknown table format '{suffix}' (use one of {sorted(TABLE_SUFFIXES)})", file=str(path)
        )
    try:
        if suffix == ".csv":
            # blank lines are kept (as empty rows) so that row numbers match what the user sees
            table = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True,
                                skip_blank_lines=False)
        elif suffix in {".parquet", ".pq"}:
            table = pd.read_parquet(path)
        else:
            table = pd.read_excel(path, sheet_name=sheet or 0, dtype=str, keep_default_na=False)
    except pd.errors.ParserError as err:
        ragged = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(err))
        if ragged:
            header, line, seen = ragged.groups()
            raise InputError(f"the row has {seen} fields but the header has {header}",
                             file=str(path), row=int(line), value=seen) from None
        raise InputError(f"cannot read table: {err}", file=str(path)) from None
    except (ValueError, OSError, pd.errors.EmptyDataError) as err:
        raise InputError(f"cannot read table: {err}", file=str(path)) from None
    _unique_header(path, sheet, suffix, table)
    # blank lines after the last record are not records (row numbers before them are unchanged)
    blank = (table.astype(str).apply(lambda column: column.str.strip()) == "").all(axis=1)
    while len(table) and bool(blank.iloc[len(table) - 1]):
        table, blank = table.iloc[:-1], blank.iloc[:-1]
    if table.empty:
        raise InputError("table has no rows", file=str(path))
    return table


def _unique_header(path: Path, sheet: str | None, suffix: str, table: pd.DataFrame) -> None:
    """A column name given twice is an error (pandas would rename the second to 'name.1')."""
    if suffix == ".csv":
        header = pd.read_csv(path, dtype=str, header=None, nrows=1, keep_default_na=False,
                             skipinitialspace=True).iloc[0].tolist()
    elif suffix in {".xlsx", ".xls"}:
        header = pd.read_excel(path, sheet_name=sheet or 0, dtype=str, header=None,
                               nrows=1).iloc[0].tolist()
    else:  # Parquet column names are unique by construction
        header = list(table.columns)
    repeated = [name for name, count in Counter(str(h).strip() for h in header).items()
                if count > 1]
    if repeated:
        raise InputError("the column name is given twice in the header", file=str(path), row=1,
                         column=repeated[0])


def require_columns(table: pd.DataFrame, columns: list[str], file: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise InputError(
            f"missing column(s) {missing}; the table has {list(table.columns)}",
            file=file,
            column=missing[0],
        )


def text_column(table: pd.DataFrame, column: str, file: str) -> pd.Series:
    """A column of identifiers: stripped text, never empty."""
    values = table[column].astype(str).str.strip()
    empty = values.eq("") | values.str.lower().isin(["nan", "none"])
    if empty.any():
        row = int(np.flatnonzero(empty.to_numpy())[0])
        raise InputError("empty identifier", file=file, row=row + 2, column=column, value="")
    return values


def number_column(
    table: pd.DataFrame,
    column: str,
    file: str,
    *,
    minimum: float | None = 0.0,
    strict: bool = False,
    integer: bool = False,
) -> np.ndarray:
    """A finite numeric column; ``minimum`` (inclusive, or exclusive if ``strict``) is enforced."""
    raw = table[column]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
    for row, (value, original) in enumerate(zip(values, raw, strict=True)):
        if not math.isfinite(value):
            raise InputError(
                "not a finite number", file=file, row=row + 2, column=column, value=original
            )
        if minimum is not None and (value < minimum or (strict and value == minimum)):
            bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
            raise InputError(
                f"must be {bound}", file=file, row=row + 2, column=column, value=original
            )
        if integer and value != int(value):
            raise InputError(
                "must be a whole number", file=file, row=row + 2, column=column, value=original
            )
        if integer and abs(value) > MAX_WHOLE:
            raise InputError(
                f"too large for a count (at most {MAX_WHOLE:,})", file=file, row=row + 2,
                column=column, value=original
            )
    return values


def unique_ids(ids: pd.Series, column: str, file: str) -> None:
    duplicated = ids.duplicated()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated.to_numpy())[0])
        raise InputError(
            "duplicate id", file=file, row=row + 2, column=column, value=ids.iloc[row]
        )


def known_ids(
    values: pd.Series, known: dict[str, int], column: str, file: str, what: str
) -> np.ndarray:
    """Map identifiers to positions; an unknown identifier is an error naming its row."""
    positions = values.map(known)
    unknown = positions.isna()
    if unknown.any():
        row = int(np.flatnonzero(unknown.to_numpy())[0])
        raise InputError(
            f"unknown {what}", file=file, row=row + 2, column=column, value=values.iloc[row]
        )
    return positions.to_numpy(dtype=np.int64)
