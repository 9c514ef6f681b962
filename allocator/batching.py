"""Batch planning: many scenarios and sweeps solved unattended, compared side by side.

A batch is a list of jobs; a job is one scenario file plus setting changes (a point of a sweep)
and solver options, all plain picklable values, so the same :func:`run_job` runs in a local
process pool or on Dask workers. Each job writes its own run folder (atomically, see
:mod:`allocator.runs`) and returns its ``result.json`` record; a job that fails is recorded with
its error and the others go on. ``resume`` skips jobs whose scenario (same hash: same tables, same
settings after the changes, same solver options) already has a complete run folder, so a batch
that was killed resumes to the same results.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import itertools
import json
import math
import os
import shutil
import time
import types
import typing
from collections import deque
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import pandas as pd
from pydantic import BaseModel, TypeAdapter, ValidationError

from allocator.exceptions import AllocatorError, InputError
from allocator.settings import Settings

#: Short names for settings people sweep most; the issue text and the help use them.
SETTING_ALIASES = {"alignment.tolerance": "alignment.balance[0].tolerance"}

#: Solver options of ``allocator solve`` that a batch passes to every scenario.
SOLVER_OPTIONS = ("solver", "time_limit", "gap", "seed", "threads")
_SOLVER_FIELDS = {"solver": "name", "time_limit": "time_limit", "gap": "gap", "seed": "seed",
                  "threads": "threads"}

#: KPI columns of the comparison, in order, taken from ``result.json``'s ``kpis``.
KPI_COLUMNS = ("headcount", "kept", "hires", "released", "managers", "territories",
               "expected_sales", "contribution", "cost", "budget_used", "workload_index_min",
               "workload_index_max")
RESULT_COLUMNS = ("objective", "bound", "gap", "runtime_s", "solver", "seed")
#: Columns that name one particular run rather than its results (differ between two batches
#: that solved the same scenarios).
RUN_IDENTITY_COLUMNS = ("runtime_s", "run_id", "run_folder")


# --- setting paths and sweeps -------------------------------------------------------------------

@dataclass(frozen=True)
class SettingPath:
    """A dotted path into the scenario settings, e.g. ``strategy.budget`` or
    ``alignment.balance[0].tolerance`` (a list element by position or by its ``measure``)."""

    text: str
    parts: tuple[str | int, ...]
    annotation: Any

    def check(self, value: Any, raw: str) -> None:
        """Reject a value of the wrong type now, before any scenario is solved (range checks
        need the whole scenario and happen per scenario)."""
        try:
            TypeAdapter(self.annotation).validate_python(value)
        except ValidationError as err:
            expected = getattr(self.annotation, "__name__", str(self.annotation))
            raise InputError(f"value does not fit setting '{self.text}' (expects {expected}: "
                             f"{err.errors()[0]['msg']})", column=self.text, value=raw) from None

    def apply(self, settings: dict[str, Any], value: Any, file: str) -> None:
        """Set the value in a ``Settings.model_dump()`` dictionary, in place."""
        node: Any = settings
        for depth, part in enumerate(self.parts[:-1]):
            child = _step(node, part, self.text, file)
            if child is None:
                raise InputError(f"setting '{self.text}': the scenario has no "
                                 f"'{_join(self.parts[:depth + 1])}' section to change",
                                 file=file, column=self.text)
            node = child
        last = self.parts[-1]
        if isinstance(node, list):
            node[_list_position(node, last, self.text, file)] = value
        else:
            node[last] = value


def _step(node: Any, key: str | int, path: str, file: str) -> Any:
    if isinstance(node, list):
        return node[_list_position(node, key, path, file)]
    return node.get(key)


def _list_position(items: list, key: str | int, path: str, file: str) -> int:
    if isinstance(key, int):
        if not -len(items) <= key < len(items):
            raise InputError(f"setting '{path}': position {key} is past the {len(items)} "
                             "element(s) of the list", file=file, column=path, value=key)
        return key
    for position, item in enumerate(items):
        if isinstance(item, dict) and item.get("measure") == key:
            return position
    raise InputError(f"setting '{path}': no element with measure '{key}'", file=file,
                     column=path, value=key)


def _join(parts: Sequence[str | int]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def parse_setting_path(text: str) -> SettingPath:
    """Resolve ``text`` against the settings model; an unknown name is an :class:`InputError`
    that lists the names allowed at that point."""
    key = SETTING_ALIASES.get(text.strip(), text.strip())
    tokens: list[tuple[str | int, bool]] = []  # (name or index, written in brackets)
    for piece in key.split("."):
        name, _, rest = piece.partition("[")
        if not name:
            raise InputError("empty name in setting path", value=text)
        tokens.append((name, False))
        while rest:
            index, close, rest = rest.partition("]")
            if not close or not index or (rest and not rest.startswith("[")):
                raise InputError("unbalanced or empty [ ] in setting path", value=text)
            rest = rest[1:]
            tokens.append((int(index) if index.lstrip("-").isdigit() else index, True))
    parts = tuple(part for part, _ in tokens)
    annotation: Any = Settings
    for depth, (part, bracket) in enumerate(tokens):
        where = _join(parts[:depth]) or "the settings"
        if isinstance(annotation, _ListOf):
            if not bracket:
                raise InputError(f"'{where}' is a list: name an element, e.g. {where}[0]",
                                 value=text)
            annotation = annotation.item
            continue
        if bracket:
            raise InputError(f"'{where}' is not a list", value=text)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            raise InputError(f"setting path goes past the plain value '{where}'", value=text)
        fields = annotation.model_fields
        if part not in fields:
            raise InputError(f"unknown setting '{part}' in {where}; known: "
                             f"{', '.join(sorted(fields))}", value=text)
        annotation = _unwrap(fields[part].annotation)
    if isinstance(annotation, _ListOf):
        raise InputError(f"'{key}' is a list: name an element, e.g. {key}[0]", value=text)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        raise InputError(f"'{key}' is a section; name one of its settings: "
                         f"{', '.join(sorted(annotation.model_fields))}", value=text)
    return SettingPath(text=text.strip(), parts=parts, annotation=annotation)


@dataclass(frozen=True)
class _ListOf:
    item: Any


def _unwrap(annotation: Any) -> Any:
    """``X | None`` -> ``X``; ``list[X]`` -> ``_ListOf(X)``."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _unwrap(args[0])
        return annotation
    if origin is list:
        return _ListOf(typing.get_args(annotation)[0])
    return annotation


def parse_value(raw: str) -> Any:
    """A sweep value as written on the command line: number, true/false, null, or text."""
    text = raw.strip()
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "none"):
        return None
    return text


@dataclass(frozen=True)
class Sweep:
    """One swept setting and its values (``raw`` keeps the text the user wrote, for labels)."""

    path: SettingPath
    values: tuple[Any, ...]
    raw: tuple[str, ...]


def parse_sweep(spec: str) -> Sweep:
    """``"strategy.budget=20e6,25e6"`` -> the path and its checked values."""
    key, equals, values = spec.partition("=")
    if not equals or not key.strip():
        raise InputError("a sweep is KEY=V1,V2,... (e.g. strategy.budget=20e6,25e6)",
                         column="--sweep", value=spec)
    path = parse_setting_path(key)
    raw = tuple(v.strip() for v in values.split(","))
    if not values.strip() or any(not v for v in raw):
        raise InputError(f"empty value in sweep of '{path.text}'", column="--sweep", value=spec)
    parsed = tuple(parse_value(v) for v in raw)
    if any(a == b for i, a in enumerate(parsed) for b in parsed[i + 1:]):
        raise InputError(f"a value is given twice in the sweep of '{path.text}'",
                         column="--sweep", value=spec)
    for value, text in zip(parsed, raw, strict=True):
        path.check(value, text)
    return Sweep(path, parsed, raw)


def _sweeps(sweep: Mapping[str, Sequence[Any]] | Sequence[str] | None) -> list[Sweep]:
    if not sweep:
        return []
    if isinstance(sweep, Mapping):
        out = []
        for key, values in sweep.items():
            path = parse_setting_path(key)
            values = tuple(values) if isinstance(values, (list, tuple)) else (values,)
            if not values:
                raise InputError(f"no values in sweep of '{key}'", column=key)
            for value in values:
                path.check(value, repr(value))
            out.append(Sweep(path, values, tuple(_short(v) for v in values)))
    else:
        out = [parse_sweep(spec) for spec in sweep]
    seen: set[tuple] = set()
    for s in out:
        if s.path.parts in seen:
            raise InputError("the same setting is swept twice", column="--sweep",
                             value=s.path.text)
        seen.add(s.path.parts)
    return out


def _short(value: Any) -> str:
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:g}"
    return str(value)


# --- jobs ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BatchJob:
    """One scenario of a batch: plain values only, so that it pickles to any worker."""

    label: str
    scenario_file: str  # absolute: workers may run in another folder
    changes: tuple[tuple[str, Any], ...]  # (setting path text, value), in sweep order
    solver_options: tuple[tuple[str, Any], ...]
    models_dir: str  # absolute
    expected_sha256: str | None = None

    def key(self) -> str:
        """What the job solves, as text: equal keys solve the same thing."""
        return json.dumps([self.scenario_file, self.changes, self.solver_options], default=str)


def scenario_files(patterns: Sequence[str | Path]) -> list[Path]:
    """Scenario files named directly or by glob patterns (``scenarios/*.yaml``), each once."""
    files: list[Path] = []
    for pattern in patterns:
        text = str(pattern)
        if glob.has_magic(text):
            matches = sorted(Path(p) for p in glob.glob(text, recursive=True))
            matches = [p for p in matches if p.is_file()]
            if not matches:
                raise InputError("no scenario file matches the pattern", file=text)
        else:
            matches = [Path(text)]
            if not matches[0].is_file():
                raise InputError("scenario file not found", file=text)
        for path in matches:
            if path.resolve() not in {f.resolve() for f in files}:
                files.append(path)
    if not files:
        raise InputError("no scenario files given")
    return files


def make_jobs(scenarios: Sequence[str | Path], sweeps: Sequence[Sweep], *,
              models_dir: str | Path, solver_options: Mapping[str, Any]) -> list[BatchJob]:
    """The cartesian product of the scenario files and every sweep's values, in that order."""
    files = scenario_files(scenarios)
    stems = [f.stem for f in files]
    options = tuple((k, v) for k, v in solver_options.items() if v is not None)
    jobs = []
    for file, stem in zip(files, stems, strict=True):
        name = stem if stems.count(stem) == 1 else str(file)
        value_lists = [list(zip(s.values, s.raw, strict=True)) for s in sweeps]
        for combination in itertools.product(*value_lists):
            changes = tuple((s.path.text, value) for s, (value, _) in
                            zip(sweeps, combination, strict=True))
            label = name if not sweeps else name + " " + " ".join(
                f"{s.path.text}={raw}" for s, (_, raw) in zip(sweeps, combination, strict=True))
            jobs.append(BatchJob(label=label, scenario_file=str(file.resolve()),
                                 changes=changes, solver_options=options,
                                 models_dir=str(Path(models_dir).resolve())))
    return jobs


def build_variant(job: BatchJob, base=None):
    """The scenario a job solves: its file, then the sweep changes and solver options, validated
    again (a value out of range is an :class:`InputError` of this scenario only)."""
    from allocator.scenario import load_scenario

    scenario = base if base is not None else load_scenario(job.scenario_file)
    if not job.changes and not job.solver_options:
        return scenario
    settings = scenario.settings.model_dump()
    for text, value in job.changes:
        parse_setting_path(text).apply(settings, value, job.scenario_file)
    touched = {parse_setting_path(text).parts[0] for text, _ in job.changes}
    changes: dict[str, Any] = {section: settings[section] for section in touched}
    if job.solver_options:
        solver = dict(changes.get("solver", {}))
        solver.update({_SOLVER_FIELDS[k]: v for k, v in job.solver_options})
        changes["solver"] = solver
    return scenario.with_settings(**changes)


def run_job(job: BatchJob) -> dict[str, Any]:
    """Solve one job and write its run folder; the worker side of every executor.

    Errors are raised, not caught: the executor hands the exception back to the batch.
    """
    from allocator.api import solve_and_write

    scenario = build_variant(job)
    if job.expected_sha256 is not None and scenario.sha256 != job.expected_sha256:
        raise InputError("the scenario changed on disk while the batch ran (its hash differs "
                         "from the one the batch planned)", file=job.scenario_file)
    folder, record = solve_and_write(scenario, models_dir=job.models_dir)
    return {"record": record, "folder": str(folder)}


# --- running ------------------------------------------------------------------------------------

def completed_runs(models_dir: str | Path) -> dict[str, Path]:
    """Scenario hash -> the newest complete run folder under ``models_dir``.

    Run folders appear only when complete (written to ``.tmp-*`` and renamed), so a folder with a
    readable ``result.json`` is a finished run; ``.tmp-*`` leftovers of a killed run are skipped.
    """
    found: dict[str, Path] = {}
    for result in sorted(Path(models_dir).glob("*/*/result.json")):
        folder = result.parent
        if folder.name.startswith("."):
            continue
        try:
            record = json.loads(result.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            continue
        if not isinstance(record, dict) or "parent_run" in record:
            continue  # a mid-year re-optimisation of a run is not a solve of its scenario
        sha = record.get("scenario_sha256")
        if sha:
            found[sha] = folder  # sorted: later run ids (timestamps) win
    return found


def comparison_row(job: BatchJob, record: Mapping[str, Any] | None = None,
                   folder: str | Path | None = None, error: BaseException | None = None,
                   sha256: str | None = None) -> dict[str, Any]:
    """One row of ``comparison.csv``: the job, its sweep values and its KPIs (or its error)."""
    row: dict[str, Any] = {"label": job.label, "scenario": None,
                           "scenario_file": job.scenario_file}
    row.update({text: value for text, value in job.changes})
    row.update({"status": "error", "termination": None, "error": None})
    row.update({column: None for column in KPI_COLUMNS})
    if record is not None:
        kpis = record.get("kpis", {})
        row.update({"scenario": record.get("scenario"), "status": record.get("status"),
                    "termination": record.get("termination")})
        row.update({column: kpis.get(column) for column in KPI_COLUMNS})
        # disruption figures are there only for runs re-optimised from an earlier plan
        disruption = record.get("disruption")
        if isinstance(disruption, Mapping):
            row.update({f"disruption.{k}": v for k, v in disruption.items()
                        if isinstance(v, (int, float)) or v is None})
        row.update({column: record.get(column) for column in RESULT_COLUMNS})
        row.update({"scenario_sha256": record.get("scenario_sha256"),
                    "run_id": record.get("run_id"), "run_folder": str(folder)})
    else:
        row.update({column: None for column in RESULT_COLUMNS})
        row.update({"scenario_sha256": sha256, "run_id": None, "run_folder": None})
        row["error"] = f"{type(error).__name__}: {error}" if error is not None else None
    return row


@dataclass
class BatchOutcome:
    """What a batch did: the comparison table and the counts the summary reports."""

    comparison: pd.DataFrame
    out: Path | None
    executor: str
    solved: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    errors: dict[int, BaseException] = field(default_factory=dict)  # by job position

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> dict[str, Any]:
        errors = self.comparison.loc[self.comparison["status"] == "error", ["label", "error"]]
        return {
            "scenarios": int(len(self.comparison)), "solved": len(self.solved),
            "resumed": len(self.resumed), "failed": len(self.failed),
            "executor": self.executor, "wall_s": round(self.wall_s, 3),
            "comparison_csv": str(self.out / "comparison.csv") if self.out else None,
            "comparison_html": str(self.out / "comparison.html") if self.out else None,
            "errors": errors.to_dict(orient="records"),
        }


def execute(jobs: Sequence[BatchJob], *, jobs_in_parallel: int | None = None,
            scheduler: str | None = None, dask_local: int | None = None, resume: bool = False,
            show_progress: bool = False, title: str = "batch") -> BatchOutcome:
    """Run the jobs (skipping completed ones when resuming); one row per job, in job order."""
    from allocator.executors import open_executor
    from allocator.scenario import load_scenario

    started = time.perf_counter()
    rows: list[dict[str, Any] | None] = [None] * len(jobs)
    outcome = BatchOutcome(pd.DataFrame(), None, "none (nothing left to run)")
    done_before = completed_runs(jobs[0].models_dir) if resume and jobs else {}
    # plan every job here: a scenario that does not load or validate fails now, alone, and the
    # hash tells which jobs a resumed batch has already done
    loaded: tuple[str, Any] = ("", None)  # jobs come grouped by file: hold one file at a time
    to_run: deque[tuple[int, BatchJob]] = deque()
    for position, job in enumerate(jobs):
        try:
            if loaded[0] != job.scenario_file:
                try:
                    loaded = (job.scenario_file, load_scenario(job.scenario_file))
                except AllocatorError as err:
                    loaded = (job.scenario_file, err)
            base = loaded[1]
            if isinstance(base, AllocatorError):
                raise base
            sha = build_variant(job, base).sha256
        except AllocatorError as err:
            rows[position] = comparison_row(job, error=err)
            outcome.failed.append(job.label)
            outcome.errors[position] = err
            continue
        if sha in done_before:
            folder = done_before[sha]
            record = json.loads((folder / "result.json").read_text(encoding="utf-8"))
            rows[position] = comparison_row(job, record, folder)
            outcome.resumed.append(job.label)
            continue
        to_run.append((position, _with_sha(job, sha)))

    with contextlib.ExitStack() as stack:
        bar = stack.enter_context(_progress(show_progress, title, len(jobs)))
        bar.advance(len(jobs) - len(to_run), failed=len(outcome.failed))
        if to_run:
            pool = stack.enter_context(open_executor(jobs=jobs_in_parallel, scheduler=scheduler,
                                                     dask_local=dask_local))
            outcome.executor = pool.description
            running: dict[Any, tuple[int, BatchJob]] = {}
            while to_run or running:
                while to_run and len(running) < pool.slots:
                    position, job = to_run.popleft()
                    try:
                        running[pool.submit(run_job, job)] = (position, job)
                    except Exception as err:  # a broken pool refuses work
                        if pool.restart_if_broken(err):
                            to_run.appendleft((position, job))
                            continue
                        raise
                bar.update(running=len(running))
                finished, _ = wait(list(running), timeout=0.5, return_when=FIRST_COMPLETED)
                broken = None
                for future in finished:
                    position, job = running.pop(future)
                    try:
                        result = future.result()
                    except BaseException as err:  # the job's own error, or its worker's death
                        if isinstance(err, (KeyboardInterrupt, SystemExit)):
                            raise
                        rows[position] = comparison_row(job, error=_explain(err),
                                                        sha256=job.expected_sha256)
                        outcome.failed.append(job.label)
                        outcome.errors[position] = _explain(err)
                        broken = broken or err
                    else:
                        rows[position] = comparison_row(job, result["record"], result["folder"])
                        outcome.solved.append(job.label)
                    bar.advance(1, failed=len(outcome.failed))
                if broken is not None:
                    pool.restart_if_broken(broken)
            bar.update(running=0)
    outcome.comparison = _frame([row for row in rows if row is not None])
    outcome.wall_s = time.perf_counter() - started
    return outcome


def _with_sha(job: BatchJob, sha: str) -> BatchJob:
    return BatchJob(job.label, job.scenario_file, job.changes, job.solver_options,
                    job.models_dir, sha)


def _explain(err: BaseException) -> BaseException:
    from concurrent.futures.process import BrokenProcessPool

    if isinstance(err, BrokenProcessPool):
        return AllocatorError("a worker process died while this scenario ran (killed, out of "
                              "memory, or a crash in a solver library)")
    return err


_COUNT_COLUMNS = ("headcount", "kept", "hires", "released", "managers", "territories", "seed")


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    for column in _COUNT_COLUMNS:  # counts stay integers next to the empty cells of failures
        if column in frame:
            frame[column] = frame[column].astype("Int64")
    # the error text last, so that the KPIs stay side by side
    columns = [c for c in frame.columns if c != "error"] + ["error"]
    return frame[columns]


class _Bar:
    """The progress display: scenarios done (of all), running and failed."""

    def __init__(self, progress, task) -> None:
        self.progress, self.task = progress, task

    def advance(self, steps: int, failed: int) -> None:
        if self.progress is not None:
            self.progress.update(self.task, advance=steps, failed=failed)

    def update(self, running: int) -> None:
        if self.progress is not None:
            self.progress.update(self.task, running=running)


@contextlib.contextmanager
def _progress(active: bool, title: str, total: int) -> Iterator[_Bar]:
    if not active:
        yield _Bar(None, None)
        return
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn)

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("done · {task.fields[running]} running · {task.fields[failed]} failed"),
               TimeElapsedColumn()]
    with Progress(*columns, console=Console(stderr=True)) as progress:
        task = progress.add_task(title, total=total, running=0, failed=0)
        yield _Bar(progress, task)


# --- outputs ------------------------------------------------------------------------------------

def write_folder_atomically(out: str | Path, writer: Callable[[Path], None]) -> Path:
    """Let ``writer`` fill a temporary sibling folder, then put it in place of ``out``.

    A kill at any moment leaves either the old folder or the new one (plus, at worst, a hidden
    ``.tmp-*``/``.old-*`` sibling), never a folder with some files new and some missing.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".tmp-{out.name}-{os.getpid()}"
    old = out.parent / f".old-{out.name}-{os.getpid()}"
    for leftover in (tmp, old):
        shutil.rmtree(leftover, ignore_errors=True)
    tmp.mkdir()
    try:
        writer(tmp)
        if out.exists():
            os.rename(out, old)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not out.exists():
            os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return out


_MONEY = ("expected_sales", "contribution", "cost", "objective", "bound", "sizing_bound")


def display_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The table as people read it: money with separators, shares as percentages."""
    shown = frame.astype(object)

    def fmt(column: str, pattern: str) -> None:
        if column in shown:
            shown[column] = [v if isinstance(v, str) or _missing(v) else pattern.format(v)
                             for v in shown[column]]

    for column in _MONEY:
        fmt(column, "{:,.0f}")
    for column in ("budget_used", "gap"):
        fmt(column, "{:.2%}")
    for column in ("workload_index_min", "workload_index_max"):
        fmt(column, "{:.3f}")
    fmt("runtime_s", "{:.1f}")
    for column in shown.columns:  # the rest (sweep values and the like): plain, with separators
        shown[column] = [_plain_number(v) for v in shown[column]]
    return shown.map(lambda v: "" if _missing(v) else v)


def _plain_number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or _missing(value):
        return value
    if float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:.6g}"


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; font-size: 0.85em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right;
          white-space: nowrap; }}
th {{ background: #f0f0f0; position: sticky; top: 0; }}
td:first-child, th:first-child {{ text-align: left; }}
img {{ max-width: 100%; }}
</style></head>
<body>
<h1>{title}</h1>
<p>{summary}</p>
{body}
</body></html>
"""


def comparison_html(frame: pd.DataFrame, summary: str, title: str = "Batch comparison") -> str:
    """A self-contained page (no scripts, no external files) with the comparison table."""
    import html

    shown = display_table(frame.drop(columns=["scenario_file", "scenario_sha256", "run_folder",
                                              "error"], errors="ignore"))
    body = shown.to_html(index=False, border=0, classes="comparison", escape=True)
    failures = frame[frame["status"] == "error"] if "status" in frame else frame.iloc[:0]
    if len(failures):
        items = "\n".join(f"<li><b>{html.escape(str(row.label))}</b>: "
                          f"{html.escape(str(row.error))}</li>" for row in failures.itertuples())
        body += f"\n<h2>Failures</h2>\n<ul class=\"failures\">\n{items}\n</ul>"
    return PAGE.format(title=html.escape(title), summary=html.escape(summary), body=body)


def write_comparison(outcome: BatchOutcome, out: str | Path) -> Path:
    frame = outcome.comparison
    n_ok = int((frame["status"] != "error").sum()) if len(frame) else 0
    text = (f"{len(frame)} scenarios: {n_ok} with a plan ({len(outcome.resumed)} from earlier "
            f"runs), {len(outcome.failed)} failed.")

    def writer(folder: Path) -> None:
        frame.to_csv(folder / "comparison.csv", index=False)
        (folder / "comparison.html").write_text(comparison_html(frame, text), encoding="utf-8")

    outcome.out = write_folder_atomically(out, writer)
    return outcome.out


def batch_id(jobs: Sequence[BatchJob]) -> str:
    """Same jobs, same id: a resumed batch writes its comparison where the first attempt would."""
    digest = hashlib.sha256("\n".join(job.key() for job in jobs).encode())
    return digest.hexdigest()[:10]


def run_batch(scenarios: str | Path | Sequence[str | Path], *,
              sweep: Mapping[str, Sequence[Any]] | Sequence[str] | None = None,
              models_dir: str | Path = "models", out: str | Path | None = None,
              reports_dir: str | Path = "reports", jobs: int | None = None,
              scheduler: str | None = None, dask_local: int | None = None, resume: bool = False,
              show_progress: bool = False, **solver_options: Any) -> BatchOutcome:
    """Expand, run and compare; writes ``comparison.csv`` and ``comparison.html`` into ``out``
    (default ``<reports_dir>/batch-<id>``, the id a hash of the jobs)."""
    unknown = set(solver_options) - set(SOLVER_OPTIONS)
    if unknown:
        raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}")
    files = [scenarios] if isinstance(scenarios, (str, Path)) else list(scenarios)
    job_list = make_jobs(files, _sweeps(sweep), models_dir=models_dir,
                         solver_options=solver_options)
    outcome = execute(job_list, jobs_in_parallel=jobs, scheduler=scheduler,
                      dask_local=dask_local, resume=resume, show_progress=show_progress)
    target = Path(out) if out is not None else Path(reports_dir) / f"batch-{batch_id(job_list)}"
    write_comparison(outcome, target)
    return outcome


def batch(scenarios: str | Path | Sequence[str | Path], *,
          sweep: Mapping[str, Sequence[Any]] | Sequence[str] | None = None,
          models_dir: str | Path = "models", out: str | Path | None = None,
          reports_dir: str | Path = "reports", jobs: int | None = None,
          scheduler: str | None = None, dask_local: int | None = None, resume: bool = False,
          show_progress: bool = False, **solver_options: Any) -> pd.DataFrame:
    """Solve many scenarios and return their comparison table (one row per scenario).

    ``sweep`` maps setting paths to values, e.g. ``{"strategy.budget": [2e7, 2.5e7],
    "alignment.tolerance": [0.05, 0.1]}`` (every combination is one scenario), or is a list of
    ``"KEY=V1,V2"`` texts as on the command line. ``solver_options`` are those of
    :func:`allocator.solve.solve` (``solver``, ``time_limit``, ``gap``, ``seed``, ``threads``).
    A scenario that fails has ``status == "error"`` and its message in ``error``; the others go
    on. The table's ``attrs["summary"]`` holds the counts and the output paths.
    """
    outcome = run_batch(scenarios, sweep=sweep, models_dir=models_dir, out=out,
                        reports_dir=reports_dir, jobs=jobs, scheduler=scheduler,
                        dask_local=dask_local, resume=resume, show_progress=show_progress,
                        **solver_options)
    table = outcome.comparison
    table.attrs["summary"] = outcome.summary()
    return table
