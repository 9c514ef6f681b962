"""The search's clock: wall seconds, or deterministic work counted in calibrated seconds.

A search that stops when the wall clock says so gives different plans on a busy and an idle
machine, or on two executors. With ``solver.deterministic`` (the default) the search reads a
*work clock* instead: each step charges the work it did, converted to the seconds that work
takes on a 2-core reference machine:

- LP solves (HiGHS): simplex iterations, each costing a fixed part, a part per row and a part
  per non-zero;
- CP-SAT: its deterministic time (``max_deterministic_time`` is the limit of every solve);
- local search: the moves it evaluated;
- HiGHS and CBC integer programs: wall seconds (they offer no deterministic measure; a search
  on them is reproducible only while their sub-solves end before their limits).

The same scenario and seed then take the same steps wherever they run. The wall clock stays a
safety stop: a search past ``SAFETY`` times its limit in wall time stops (and says so).
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Iterator

# seconds of work per unit, measured on the 2-core development machine
LP_SECONDS_PER_ITERATION = 2.0e-5  # and per iteration for every row and every non-zero:
LP_SECONDS_PER_ITERATION_ROW = 5.0e-9
LP_SECONDS_PER_ITERATION_NONZERO = 2.0e-10
# the head-count LP's strong-link rows make each iteration dearer than their count suggests
# (dual simplex after cuts; measured on the demo: 0.14 ms per iteration without links, about
# 1 ms with 5,400)
LP_SECONDS_PER_ITERATION_LINK = 1.6e-7
CPSAT_SECONDS_PER_DETERMINISTIC_SECOND = 1.5
LOCAL_SEARCH_SECONDS_PER_MOVE = 2.5e-5  # one unit tried against its neighbouring territories
SAFETY = 3.0


class SearchClock:
    """Seconds since the search started, by the wall or by the work charged to it."""

    def __init__(self, deterministic: bool, limit: float) -> None:
        self.deterministic = deterministic
        self.limit = limit
        self._wall_start = time.perf_counter()
        self._work = 0.0

    def now(self) -> float:
        if self.deterministic:
            if self.wall() > SAFETY * self.limit + 5.0:
                return float("inf")  # the safety stop: every deadline has passed
            return self._work
        return self.wall()

    def wall(self) -> float:
        return time.perf_counter() - self._wall_start

    def continue_from(self, work: float, wall: float) -> None:
        """Carry on another process's clock, which stood at ``work`` and ``wall`` seconds."""
        self._work = float(work)
        self._wall_start = time.perf_counter() - float(wall)

    def charge(self, seconds: float) -> None:
        self._work += max(0.0, float(seconds))

    @property
    def safety_stopped(self) -> bool:
        return self.deterministic and self.wall() > SAFETY * self.limit + 5.0


_current: contextvars.ContextVar[SearchClock | None] = contextvars.ContextVar("search_clock",
                                                                             default=None)


def current() -> SearchClock:
    """The clock of the search in progress (a wall clock outside any search)."""
    clock = _current.get()
    if clock is None:
        clock = SearchClock(False, float("inf"))
        _current.set(clock)
    return clock


@contextlib.contextmanager
def running(clock: SearchClock) -> Iterator[SearchClock]:
    token = _current.set(clock)
    try:
        yield clock
    finally:
        _current.reset(token)


def now() -> float:
    return current().now()


def charge(seconds: float) -> None:
    current().charge(seconds)


def lp_iteration_seconds(rows: int, nonzeros: int) -> float:
    return (LP_SECONDS_PER_ITERATION + rows * LP_SECONDS_PER_ITERATION_ROW
            + nonzeros * LP_SECONDS_PER_ITERATION_NONZERO)


def charge_moves(moves: int) -> None:
    charge(moves * LOCAL_SEARCH_SECONDS_PER_MOVE)
