"""A solve killed at any moment leaves no partial run folder.

``allocator solve`` runs as a real process on a tiny scenario and is sent SIGKILL at seeded random
moments: half spread over its whole lifetime, half inside the write phase (from the moment its
hidden ``.tmp-*`` folder appears). After every kill, each folder a reader would take for a run
must be complete and readable; the only other thing allowed is a hidden ``.tmp-*`` folder, which
readers refuse and which does not stop the next run.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from allocator.exceptions import InputError
from allocator.runs import REQUIRED_RUN_FILES, read_run
from conftest import write_scenario

SEED = 6
KILLS = 20
POLL_S = 0.002


def start(scenario: Path, models: Path) -> subprocess.Popen:
    # a session of its own, so that the kill reaches any child a solver may start
    return subprocess.Popen(
        [sys.executable, "-m", "allocator.cli", "solve", str(scenario), "--models-dir",
         str(models), "--time-limit", "2", "--seed", "1", "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def temp_folders(models: Path) -> list[Path]:
    base = models / "tiny"
    return [p for p in base.iterdir() if p.name.startswith(".tmp-")] if base.exists() else []


def run_folders(models: Path) -> list[Path]:
    base = models / "tiny"
    return [p for p in base.iterdir() if not p.name.startswith(".tmp-")] if base.exists() else []


def assert_only_complete_runs(models: Path) -> None:
    """Every folder that is not a hidden temporary one is a whole run, readable as such."""
    for folder in run_folders(models):
        assert folder.is_dir(), folder
        for name in REQUIRED_RUN_FILES:
            assert (folder / name).is_file(), f"{folder.name} lacks {name}"
        record = json.loads((folder / "result.json").read_text(encoding="utf-8"))
        assert record["status"] in {"optimal", "feasible"} and record["run_id"] == folder.name
        assert read_run(folder).assignment["unit_id"].nunique() == 6


@pytest.fixture(scope="module")
def scenario(tmp_path_factory) -> Path:
    return write_scenario(tmp_path_factory.mktemp("crash") / "scenario",
                          workload=[300, 400, 500, 350, 450, 400],
                          potential=[1.2e6, 0.8e6, 1.0e6, 0.9e6, 1.5e6, 0.7e6])


@pytest.fixture(scope="module")
def lifetime(scenario, tmp_path_factory) -> tuple[float, float, float]:
    """One undisturbed run: seconds until its temporary folder appears, until it is renamed into
    the run folder, and until the process ends."""
    models = tmp_path_factory.mktemp("reference")
    started = time.perf_counter()
    process = start(scenario, models)
    writing = renamed = None
    while process.poll() is None:
        if writing is None and temp_folders(models):
            writing = time.perf_counter() - started
        if renamed is None and run_folders(models):
            renamed = time.perf_counter() - started
        time.sleep(POLL_S)
    total = time.perf_counter() - started
    assert process.returncode == 0, process.stderr.read().decode()
    process.stderr.close()
    assert writing is not None, "the write phase was never seen"
    assert len(run_folders(models)) == 1 and not temp_folders(models)
    assert_only_complete_runs(models)
    return writing, renamed or total, total


def kill_once(scenario: Path, models: Path, delay: float, in_writing: bool) -> str:
    """Start a solve and SIGKILL it ``delay`` seconds after its start (or, if ``in_writing``,
    after its temporary folder appears). Returns 'writing', 'other' or 'finished'."""
    process = start(scenario, models)

    def own_temp_folder() -> bool:  # write_run names it .tmp-<run id>-<pid>
        return any(p.name.endswith(f"-{process.pid}") for p in temp_folders(models))

    started = time.perf_counter()
    if in_writing:
        while process.poll() is None and not own_temp_folder():
            time.sleep(POLL_S)
        started = time.perf_counter()
    while process.poll() is None and time.perf_counter() < started + delay:
        time.sleep(POLL_S)
    try:
        if process.poll() is not None:
            assert process.returncode == 0, process.stderr.read().decode()
            return "finished"
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        assert process.returncode == -signal.SIGKILL
        # its own temporary folder still there after the kill: the kill landed while writing
        return "writing" if own_temp_folder() else "other"
    finally:
        process.stderr.close()


def test_killed_runs_leave_no_partial_run_folder(scenario, lifetime, tmp_path):
    writing, renamed, total = lifetime
    models = tmp_path / "models"
    rng = random.Random(SEED)
    # even runs: anywhere in the life of the process; odd runs: inside the write phase
    plan = [(rng.uniform(0.0, 1.1 * total), False) if k % 2 == 0 else
            (rng.uniform(0.0, renamed - writing), True) for k in range(KILLS)]
    outcomes = []
    # two at a time into the same models folder, as a user running two solves would
    with ThreadPoolExecutor(max_workers=2) as pool:
        for pair in range(0, KILLS, 2):
            futures = [pool.submit(kill_once, scenario, models, delay, in_writing)
                       for delay, in_writing in plan[pair:pair + 2]]
            outcomes += [f.result() for f in futures]
            assert_only_complete_runs(models)
    # the kills really landed in the write phase, and not every run was killed too late
    assert outcomes.count("writing") >= KILLS // 4, outcomes
    assert outcomes.count("finished") < KILLS // 2, outcomes
    leftovers = temp_folders(models)
    assert len(leftovers) == outcomes.count("writing")
    for folder in leftovers:  # readers refuse a temporary folder as a run
        with pytest.raises(InputError, match="unfinished"):
            read_run(folder)

    # the next run is not disturbed by what the killed ones left
    runs_before = set(run_folders(models))
    process = start(scenario, models)
    assert process.wait() == 0, process.stderr.read().decode()
    process.stderr.close()
    new = set(run_folders(models)) - runs_before
    assert len(new) == 1
    assert_only_complete_runs(models)
