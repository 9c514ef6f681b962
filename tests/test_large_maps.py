"""The large-map path: range bounds on a second core, and the dive that staffs from the LP.

Texas is small enough for the whole model; with ``solver.exact_max_pairs`` at 0 it takes the
path of a national map instead, which keeps these tests within seconds.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time

import numpy as np

from allocator import clock, range_worker
from allocator.alignment import AlignmentProblem, staffing_from_lp
from allocator.bounds import HeadcountLp, headcount_lp_bound
from allocator.checker import check_plan
from allocator.diving import LEFT, dive_staffing
from allocator.sizing import response_curve, size_bounds
from allocator.solve import bound_ranges, solve

WORK = 6.0  # seconds of counted work the range bounds get in these tests


def test_second_core_gives_the_bounds_of_the_same_work_done_here(texas, texas_result):
    """The worker process continues the caller's work clock: on a deterministic clock it
    returns exactly the ranges and bounds the same call makes in this process, and no range
    bound lies below a plan of its head counts."""
    problem = AlignmentProblem.from_scenario(texas)
    curve = response_curve(texas)
    bounds = size_bounds(texas, curve)
    with clock.running(clock.SearchClock(True, 60.0)):
        worker = range_worker.start(problem, curve, bounds, WORK)
        found = worker.result(120.0)
    assert found is not None
    remote, messages = found
    assert any("second core" in m for m in messages)
    with clock.running(clock.SearchClock(True, 60.0)):
        model = HeadcountLp(texas, problem, curve)
        here = bound_ranges(texas, problem, curve, bounds, {}, -math.inf,
                            0.0, WORK, lambda message: None, model,
                            rounds=range_worker.WORKER_ROUNDS,
                            visits_before_halving=range_worker.WORKER_VISITS)
    assert remote == here
    assert len({label for _, label in here.values()}) >= 3
    n = texas_result.plan.kpis["headcount"]
    assert here[n][0] >= texas_result.objective * (1 - 1e-9)


def test_a_worker_that_dies_answers_none_and_leaves_nothing(tmp_path):
    process = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(3)"])
    folder = tmp_path / "job"
    folder.mkdir()
    worker = range_worker.RangeWorker(process, folder)
    assert worker.result(30.0) is None
    assert "exit code 3" in worker.error
    assert not folder.exists()


def test_failed_worker_falls_back_to_bounding_here(texas, monkeypatch):
    """A second core that answers nothing costs the ranges' time, never the solve."""
    def broken(*job):
        folder = range_worker.Path(range_worker.tempfile.mkdtemp(prefix="allocator-test-"))
        return range_worker.RangeWorker(
            subprocess.Popen([sys.executable, "-c", "raise SystemExit(1)"]), folder)

    monkeypatch.setattr(range_worker, "start", broken)
    large = texas.with_settings(solver={"exact_max_pairs": 0, "threads": 2})
    result = solve(large, time_limit=8)
    assert any("failed (it ended (exit code 1) without an answer): bounded here instead"
               in line for line in result.log)
    assert result.plan is not None and check_plan(result.plan) == []
    ranged = result.sizing.dropna(subset=["lp_range"])
    assert len(ranged) > 0
    assert result.bound >= result.objective


def test_large_path_solves_texas_with_both_cores_and_a_dive(texas, monkeypatch):
    import allocator.solve as solving

    monkeypatch.setattr(solving, "DIVE_MIN_SECONDS", 0.0)  # the dive at a test's time limit
    large = texas.with_settings(solver={"exact_max_pairs": 0, "threads": 2})
    result = solve(large, time_limit=12)
    assert any("range bounds on a second core" in line for line in result.log)
    assert any("the dive left" in line for line in result.log)
    assert result.plan is not None and check_plan(result.plan) == []
    assert result.bound >= result.objective
    # the ranges bound every feasible head count the worker reached, the plan's among them
    n = result.plan.kpis["headcount"]
    row = result.sizing.set_index("headcount").loc[n]
    assert row["range_bound"] >= result.objective * (1 - 1e-9)


def test_dive_staffs_the_head_count_and_leaves_the_shared_model_alone(texas):
    problem = AlignmentProblem.from_scenario(texas)
    curve = response_curve(texas)
    n = 14
    with clock.running(clock.SearchClock(True, 60.0)):
        model = HeadcountLp(texas, problem, curve)
        lp = headcount_lp_bound(texas, problem, n, curve, model=model, price_rows=False,
                                time_limit=3.0)
        before = model.h.getLp()
        bounds = (np.asarray(before.col_lower_).copy(), np.asarray(before.col_upper_).copy())
        pairs, rows = len(model.pairs), model.h.getNumRow()
        dived = dive_staffing(model, n, clock.now() + 8.0)
        assert dived is not None
        keep, hire, left = dived
        after = model.h.getLp()
        # the dive fixed columns and added pairs and rows in its copy only
        assert np.array_equal(np.asarray(after.col_lower_), bounds[0])
        assert np.array_equal(np.asarray(after.col_upper_), bounds[1])
        assert (len(model.pairs), model.h.getNumRow()) == (pairs, rows)
        again = headcount_lp_bound(texas, problem, n, curve, model=model, price_rows=False,
                                   time_limit=3.0)
    value = np.concatenate([keep, hire])
    fractional = int((np.abs(value - np.round(value)) > 1e-6).sum())
    assert fractional == left
    start = np.concatenate([lp.keep, lp.hire])
    assert left < int((np.abs(start - np.round(start)) > 1e-6).sum()) or left <= LEFT
    assert abs(float(value.sum()) - n) < 1e-6  # every LP of the dive keeps the head count
    assert staffing_from_lp(problem, n, keep, hire).headcount == n
    assert again.value <= lp.value * (1 + 1e-9)  # the shared model is as valid as before


def test_worker_leaves_when_its_parent_is_killed(tmp_path):
    """A solve killed outright leaves no process behind bounding ranges for nobody (the
    national map: its ranges would keep a core busy for minutes), and no job file."""
    from conftest import ROOT

    script = (
        "import os\n"
        "import time\n"
        "from allocator import clock, range_worker\n"
        "from allocator.alignment import AlignmentProblem\n"
        "from allocator.scenario import load_scenario\n"
        "from allocator.sizing import response_curve, size_bounds\n"
        f"default = load_scenario({str(ROOT / 'scenarios' / 'us_counties.yaml')!r})\n"
        "curve = response_curve(default)\n"
        "with clock.running(clock.SearchClock(True, 600.0)):\n"
        "    worker = range_worker.start(AlignmentProblem.from_scenario(default), curve,\n"
        "                                size_bounds(default, curve), 600.0)\n"
        "for _ in range(600):  # killed once the worker has its job, as a solve would be\n"
        "    if not (worker.folder / 'job.pkl').exists():\n"
        "        break\n"
        "    time.sleep(0.1)\n"
        "print(worker.folder, worker.process.pid, flush=True)\n"
        "os._exit(0)\n")
    parent = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120, check=True)
    folder, child = parent.stdout.split()[-2], int(parent.stdout.split()[-1])
    for _ in range(20):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.5)
    else:
        os.kill(child, 9)
        raise AssertionError("the worker outlived its parent by 10 s")
    assert not list(range_worker.Path(folder).glob("*"))  # at most an empty folder stays
    range_worker.Path(folder).rmdir()


def test_a_worker_that_fails_says_why(tmp_path):
    folder = tmp_path / "job"
    folder.mkdir()
    (folder / "job.pkl").write_bytes(b"not a pickle")
    process = subprocess.Popen([sys.executable, "-m", "allocator.range_worker", str(folder),
                                str(os.getpid())])
    worker = range_worker.RangeWorker(process, folder)
    assert worker.result(60.0) is None
    assert "UnpicklingError" in worker.error
