"""The head-count range bounds on a second core, while the first one plans.

On a large map one plan takes most of the time limit, and the bound of the head counts not
planned (:func:`allocator.solve.bound_ranges`) would take the rest: with ``solver.threads`` of
2 or more the ranges are bounded instead in a process of their own, from the start of the solve
to its deadline, and the planning keeps the whole limit.

The process is a fresh interpreter running this module (``python -m``), not a fork (forking a
parent that holds HiGHS's or OR-Tools' threads is not safe) nor a ``multiprocessing`` spawn
(which re-imports the caller's main script, and hangs a script without a main guard). The
scenario, its alignment problem and sizing bounds go to it through a pickle in a temporary
folder (read once, then deleted), the range bounds come back the same way.
It counts its work on a clock of its own that continues the parent's, so its deadline means the
same, and under ``solver.deterministic`` the bounds it returns are the same on any machine
load. It knows no plan yet, so it cannot skip the head counts a plan would prune: it lowers the
largest bound of all ranges, which is where the reported bound is decided.
"""

from __future__ import annotations

import ctypes
import math
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from allocator import clock
from allocator.alignment import AlignmentProblem
from allocator.sizing import ResponseCurve

# LP rounds per visit of a range: the first round after a change of range is the dear one
# (the basis leaves the old range's vertex); the next is cheap and lowers the bound most
WORKER_ROUNDS = 2
# visits of a range before it is halved: the first visit, on a model still cold, leaves its
# bound high; the second starts from the pairs and links the other ranges added
WORKER_VISITS = 2
PR_SET_PDEATHSIG = 1  # prctl(2): the signal this process gets when its parent dies


@dataclass
class RangeWorker:
    """A running range-bound process; :meth:`result` collects what it found."""

    process: subprocess.Popen
    folder: Path
    error: str = ""  # why the last result() was None

    def result(self, wall_timeout: float) -> tuple[dict[int, tuple[float, str]], list[str]] | None:
        """The ranges' bounds and the worker's messages, or ``None`` when it failed or did not
        answer within ``wall_timeout`` seconds (the caller then bounds the ranges itself)."""
        try:
            self.process.wait(timeout=max(0.0, wall_timeout))
            with open(self.folder / "result.pkl", "rb") as file:
                kind, payload, messages = pickle.load(file)
        except subprocess.TimeoutExpired:
            self.error = f"no answer within {wall_timeout:.0f} s"
            return None
        except (OSError, EOFError, pickle.UnpicklingError):
            self.error = f"it ended (exit code {self.process.returncode}) without an answer"
            return None
        finally:
            self.stop()
        if kind != "ok":
            self.error = payload.strip().splitlines()[-1]  # the exception, from its traceback
            return None
        return payload, messages

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def start(problem: AlignmentProblem, curve: ResponseCurve, bounds, deadline: float
          ) -> RangeWorker:
    """Bound every feasible head count of ``problem`` (its sizing ``bounds`` from ``curve``) by
    ranges until ``deadline`` (seconds on the current search clock)."""
    search = clock.current()
    folder = Path(tempfile.mkdtemp(prefix="allocator-ranges-"))
    with open(folder / "job.pkl", "wb") as file:
        pickle.dump((problem, curve, bounds, deadline, search.deterministic, search.limit,
                     clock.now(), search.wall()), file, protocol=pickle.HIGHEST_PROTOCOL)
    process = subprocess.Popen([sys.executable, "-m", "allocator.range_worker", str(folder),
                                str(os.getpid())],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    return RangeWorker(process, folder)


def _leave_with(parent: int) -> None:
    """Leave as soon as the process that started this one is gone (killed, say): its bounds
    have no reader, and the core is wanted. On Linux the kernel kills this process when the
    parent dies (``PR_SET_PDEATHSIG``: a thread waiting for the parent could not run while an LP
    solve holds the interpreter); elsewhere a thread checks every half second."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
            raise OSError(ctypes.get_errno(), "prctl")
    except (OSError, AttributeError, TypeError):  # no prctl here
        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(0.5)
            os._exit(1)

        threading.Thread(target=watch, daemon=True).start()
    if os.getppid() != parent:  # gone before the signal was asked for
        os._exit(1)


def _run(folder: Path) -> None:
    from allocator.bounds import HeadcountLp
    from allocator.solve import bound_ranges

    messages: list[str] = []
    try:
        with open(folder / "job.pkl", "rb") as file:
            problem, curve, bounds, deadline, deterministic, limit, work, wall = \
                pickle.load(file)
        # read once: a solve killed outright (this process dies with it) leaves an empty folder
        (folder / "job.pkl").unlink()
        search = clock.SearchClock(deterministic, limit)
        search.continue_from(work, wall)
        scenario = problem.scenario
        with clock.running(search):
            model = HeadcountLp(scenario, problem, curve)
            started = time.perf_counter()
            ranges = bound_ranges(scenario, problem, curve, bounds, {}, -math.inf, 0.0,
                                  deadline, messages.append, model, rounds=WORKER_ROUNDS,
                                  visits_before_halving=WORKER_VISITS)
            messages.append(f"range bounds on a second core: {time.perf_counter() - started:.0f} s"
                            f" wall, {clock.now() - work:.0f} s of work")
        outcome = ("ok", ranges, messages)
    except Exception:  # reported to the parent, which bounds the ranges itself
        outcome = ("error", traceback.format_exc(), messages)
    partial = folder / "result.pkl.part"
    with open(partial, "wb") as file:
        pickle.dump(outcome, file, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(partial, folder / "result.pkl")


if __name__ == "__main__":
    _leave_with(int(sys.argv[2]))
    _run(Path(sys.argv[1]))
