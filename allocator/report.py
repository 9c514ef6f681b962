"""The run report: ``reports/<scenario>/<run-id>/`` with report.html, map.html, map.png, plan.xlsx."""

from __future__ import annotations

from pathlib import Path

from allocator.runs import RunRecord


def report_folder(run: RunRecord, reports_dir: str | Path = "reports") -> Path:
    """``<reports_dir>/<scenario>/<run-id>``: the folder every report of a run goes to."""
    return Path(reports_dir) / run.scenario_name / run.run_id
