"""The Python API for notebooks and scripts: the same operations as the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from allocator.scenario import Scenario, load_scenario
from allocator.solve import Progress, SolveResult, solve


def solve_and_write(scenario: str | Path | Scenario, *, models_dir: str | Path = "models",
                    progress: Progress | None = None, **options: Any) -> tuple[Path, dict]:
    """Solve a scenario (a file or a loaded value) and write its run folder.

    Returns the run folder and its ``result.json`` record.
    """
    import json

    from allocator.formulation import write_model
    from allocator.runs import write_run

    loaded = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    result: SolveResult = solve(loaded, progress=progress, **options)
    folder = write_run(result, models_dir,
                       model_writer=lambda path: write_model(result.plan, path))
    record = json.loads((folder / "result.json").read_text())
    return folder, record


__all__ = ["Scenario", "SolveResult", "load_scenario", "solve", "solve_and_write"]
