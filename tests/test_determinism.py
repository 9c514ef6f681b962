"""Same scenario, same seed, same plan: the search counts work, not wall seconds."""

from __future__ import annotations

import threading
import time

import numpy as np

from allocator import clock
from allocator.scenario import load_scenario
from allocator.solve import solve


def busy(stop: threading.Event) -> None:
    """Load the machine from another thread, so that wall time runs differently."""
    x = 0
    while not stop.is_set():
        x += sum(range(2000))


def test_time_limited_search_gives_the_same_plan_under_load(make_scenario):
    # big enough that the search stops on its limit rather than by finishing
    rng = np.random.default_rng(7)
    n = 12 * 12
    path = make_scenario(
        rows=12, cols=12, workload=list(np.round(rng.lognormal(5.5, 0.5, n), 1)),
        potential=list(np.round(rng.lognormal(13.5, 0.7, n))),
        reps=[{"rep_id": f"R{k}", "home_unit": u, "annual_cost": 90000}
              for k, u in enumerate(["U1", "U72", "U144"])],
        sites=[(f"U{u}", 2) for u in (6, 30, 50, 66, 80, 100, 115, 130, 139, 20)],
        settings={"strategy": {"budget": 3_000_000, "headcount": {"min": 3, "max": 10}},
                  "solver": {"time_limit": 4, "seed": 3}})
    scenario = load_scenario(path)
    quiet = solve(scenario)
    stop = threading.Event()
    hog = threading.Thread(target=busy, args=(stop,), daemon=True)
    hog.start()
    try:
        loaded = solve(scenario)
    finally:
        stop.set()
        hog.join()
    assert np.array_equal(quiet.plan.assignment, loaded.plan.assignment)
    assert quiet.objective == loaded.objective and quiet.bound == loaded.bound
    assert quiet.plan.units.equals(loaded.plan.units)


def test_work_clock_counts_charges_not_seconds():
    search = clock.SearchClock(True, 10.0)
    with clock.running(search):
        time.sleep(0.05)
        assert clock.now() == 0.0
        clock.charge(1.5)
        clock.charge_moves(1000)
        assert clock.now() == 1.5 + 1000 * clock.LOCAL_SEARCH_SECONDS_PER_MOVE
    wall = clock.SearchClock(False, 10.0)
    time.sleep(0.02)
    assert wall.now() >= 0.02
