"""Shared fixtures: a factory of tiny hand-checkable scenarios, and one Texas solve per session."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
TEXAS = ROOT / "scenarios" / "texas.yaml"
DATA = Path(__file__).resolve().parent / "data"

SOLVERS = ["cpsat", "highs", "cbc"]

# Time limit of the Texas solve (seconds); the whole suite has to stay within a few minutes.
TEXAS_TIME_LIMIT = 60


def grid(rows: int, cols: int) -> tuple[list[str], dict[str, tuple[float, float]],
                                        list[tuple[str, str]]]:
    """Unit ids ``U1..Un`` of a rows x cols grid (row-major), their positions, rook edges."""
    ids, pos, edges = [], {}, []
    for r in range(rows):
        for c in range(cols):
            uid = f"U{r * cols + c + 1}"
            ids.append(uid)
            pos[uid] = (10.0 * c, 10.0 * r)
            if c > 0:
                edges.append((f"U{r * cols + c}", uid))
            if r > 0:
                edges.append((f"U{(r - 1) * cols + c + 1}", uid))
    return ids, pos, edges


def deep_merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


DEFAULT_SETTINGS: dict[str, Any] = {
    "name": "tiny",
    "description": "a tiny grid for tests",
    "year": 2027,
    "currency": "USD",
    "units": {"table": "units.csv", "id": "unit_id", "name": "name", "coordinates": "planar",
              "lon": None, "lat": None, "x": "x", "y": "y"},
    "adjacency": {"source": "edges", "edges": "edges.csv", "source_column": "a",
                  "target_column": "b", "islands": "error"},
    "reps": {"table": "reps.csv", "id": "rep_id", "home_unit": "home_unit",
             "annual_cost": "annual_cost", "capacity_hours": "capacity_hours",
             "productivity": "productivity", "lock": "free", "release_cost": 20000},
    "hiring": {"sites": {"table": "hire_sites.csv", "unit": "unit_id", "max_hires": "max_hires"},
               "annual_cost": 100000, "hire_cost": 10000, "training_cost": 5000,
               "capacity_hours": 1600, "productivity": 1.0, "ramp_months": 0,
               "ramp_productivity": 0.5, "start_month": 1},
    "managers": {"span": 8, "annual_cost": 10000},
    "strategy": {"objective": "max_contribution", "margin": 0.6, "budget": 400000,
                 "headcount": {"min": 1, "max": 3}, "target_growth": 0.05},
    "response": {"floor": 0.05, "ceiling": 0.6, "half": 0.5, "max_coverage": 3.0},
    "alignment": {"balance": [{"measure": "workload", "tolerance": 0.2}], "contiguity": True,
                  "candidates": 12},
    "travel": {"cost_per_km": 0.6, "hours_per_trip": 8, "circuity": 1.2},
    "quotas": {"method": "blend", "blend_weight": 0.5, "min_growth": -0.5, "max_growth": 1.0,
               "seasonality": [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1.2]},
    "solver": {"name": "cpsat", "time_limit": 5, "gap": 0.005, "seed": 0, "threads": 1},
}


def write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    lines = [",".join(header)] + [",".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_scenario(folder: Path, *, rows: int = 2, cols: int = 3,
                   workload: list[float] | None = None,
                   potential: list[float] | None = None,
                   last_year_sales: list[float] | None = None,
                   reps: list[dict[str, Any]] | None = None,
                   sites: list[tuple[str, int]] | None = None,
                   settings: dict[str, Any] | None = None,
                   name: str = "tiny") -> Path:
    """Write a tiny planar grid scenario (units, edges, reps, hire sites, YAML) into ``folder``.

    Defaults: a 2 x 3 grid ``U1 U2 U3 / U4 U5 U6`` 10 km apart, one existing rep ``R1`` at U1,
    hire sites U3 and U6 with one place each, budget 400,000, head count 1..3. ``sites=[]``
    writes no hire-site table.
    """
    folder.mkdir(parents=True, exist_ok=True)
    ids, pos, edges = grid(rows, cols)
    n = len(ids)
    workload = workload if workload is not None else [400.0] * n
    potential = potential if potential is not None else [1_000_000.0] * n
    last_year_sales = (last_year_sales if last_year_sales is not None
                       else [round(0.2 * p) for p in potential])
    assert len(workload) == len(potential) == len(last_year_sales) == n
    if reps is None:
        reps = [{"rep_id": "R1", "home_unit": "U1", "annual_cost": 90000}]
    if sites is None:
        sites = [("U3", 1), ("U6", 1)]
    write_csv(folder / "units.csv", ["unit_id", "name", "x", "y", "potential", "workload",
                                     "last_year_sales"],
              [[u, f"Unit {u}", pos[u][0], pos[u][1], potential[k], workload[k],
                last_year_sales[k]] for k, u in enumerate(ids)])
    write_csv(folder / "edges.csv", ["a", "b"], [list(e) for e in edges])
    write_csv(folder / "reps.csv", ["rep_id", "name", "home_unit", "annual_cost",
                                    "capacity_hours", "productivity"],
              [[r["rep_id"], r.get("name", f"Rep {r['rep_id']}"), r["home_unit"],
                r["annual_cost"], r.get("capacity_hours", 1600), r.get("productivity", 1.0)]
               for r in reps])
    merged = deep_merge(DEFAULT_SETTINGS, {"name": name, **(settings or {})})
    if sites:
        write_csv(folder / "hire_sites.csv", ["unit_id", "max_hires"], [list(s) for s in sites])
    else:  # no hire places: only the existing reps' homes can host territories
        merged["hiring"]["sites"] = None
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(merged, sort_keys=False), encoding="utf-8")
    return path


def write_districting(folder: Path, units, edges, *, territories: int, tolerance: float,
                      compactness: str, name: str = "districts", islands: str = "error",
                      settings: dict[str, Any] | None = None) -> Path:
    """A territory-design scenario over planar ``units`` (``unit_id, x, y, workload,
    customers``): both measures within ``tolerance``, 5 s and seed 0 unless ``settings`` says
    otherwise (see :func:`allocator.districting.write_districting_scenario`)."""
    from allocator.districting import write_districting_scenario

    settings = dict(settings or {})
    settings["solver"] = {"time_limit": 5, "seed": 0, **settings.get("solver", {})}
    return write_districting_scenario(folder, units, edges, territories=territories,
                                      tolerance=tolerance, measures=("workload", "customers"),
                                      compactness=compactness, name=name, islands=islands,
                                      settings=settings)


@pytest.fixture
def make_scenario(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``make_scenario(**options)`` writes a tiny scenario and returns its YAML path.

    Every call gets its own sub-folder of ``tmp_path``; see :func:`write_scenario`.
    """
    counter = iter(range(10_000))

    def factory(**options: Any) -> Path:
        return write_scenario(tmp_path / f"scenario{next(counter)}", **options)

    return factory


@pytest.fixture(scope="session")
def texas():
    """The Texas scenario, loaded once."""
    from allocator.scenario import load_scenario

    return load_scenario(TEXAS)


@pytest.fixture(scope="session")
def texas_result(texas):
    """The Texas scenario solved once per session (time limit 60 s)."""
    from allocator.solve import solve

    return solve(texas, time_limit=TEXAS_TIME_LIMIT)


TINY_RUN_OPTIONS: dict[str, Any] = dict(
    rows=3, cols=4,
    reps=[{"rep_id": "R1", "home_unit": "U1", "annual_cost": 90000},
          {"rep_id": "R2", "home_unit": "U12", "annual_cost": 95000}],
    sites=[("U6", 2)],
    settings={"hiring": {"ramp_months": 2, "start_month": 3},
              "strategy": {"headcount": {"min": 2, "max": 4}, "budget": 600000}},
)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A solved run folder of a 3 x 4 grid (about 2 s): two kept reps and a two-hire team
    territory whose hires start in March with a two-month ramp."""
    from allocator.api import solve_and_write

    root = tmp_path_factory.mktemp("tiny_run")
    scenario = write_scenario(root / "scenario", **TINY_RUN_OPTIONS)
    folder, _ = solve_and_write(scenario, models_dir=root / "models")
    return folder


@pytest.fixture(scope="session")
def texas_run(texas_result, tmp_path_factory) -> Path:
    """The session's Texas solve written as a run folder (for reports and evaluation)."""
    from allocator.runs import write_run

    return write_run(texas_result, tmp_path_factory.mktemp("texas_models"))


@pytest.fixture(scope="session")
def browser():
    """Headless Debian chromium driven by playwright, one for the whole session (playwright's
    synchronous API cannot be started twice at once); missing chromium fails the tests."""
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("Debian's chromium is not installed (apt-get install chromium): the HTML "
                    "pages cannot be checked")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True,
                                              args=["--no-sandbox", "--disable-gpu"])
        yield launched
        launched.close()
