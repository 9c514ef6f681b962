"""Where batch jobs run: a local process pool or Dask distributed, behind one interface.

Both are :class:`concurrent.futures.Executor` objects, so the batch submits the same job function
to either and reads results (or the job's exception) from the same futures. Dask is an optional
extra (``pip install 'territory-allocator[dask]'``): it is imported only when asked for.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, Iterator

from allocator.exceptions import AllocatorError, InputError

DASK_MISSING = ("Dask is not installed; install the extra: pip install "
                "'territory-allocator[dask]'")


def available_cores() -> int:
    """Cores this process may run on (the affinity mask, not the machine's total)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@dataclass
class BatchExecutor:
    """An executor with how many jobs it runs at once (``slots``) and a name for messages.

    The batch keeps at most ``slots`` jobs submitted at a time, so that the jobs submitted are
    the jobs running (the progress display counts them) and a resumed batch has little to redo.
    """

    executor: Executor
    slots: int
    description: str
    _restart: Any = field(default=None, repr=False)

    def submit(self, fn, /, *args, **kwargs):
        return self.executor.submit(fn, *args, **kwargs)

    def restart_if_broken(self, err: BaseException) -> bool:
        """After a worker process died (killed, out of memory, a crash in a solver library) the
        local pool refuses new work; replace it so the rest of the batch goes on."""
        if isinstance(err, BrokenProcessPool) and self._restart is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)
            self.executor = self._restart()
            return True
        return False


def _process_pool(jobs: int) -> ProcessPoolExecutor:
    # 'spawn': a fresh interpreter per worker; forking a parent that holds solver threads or
    # open HDF/GDAL handles is not safe
    return ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"))


@contextlib.contextmanager
def open_executor(*, jobs: int | None = None, scheduler: str | None = None,
                  dask_local: int | None = None) -> Iterator[BatchExecutor]:
    """Open the executor the options ask for and close it (and any cluster it started) after.

    - ``scheduler="tcp://host:port"``: an existing Dask cluster;
    - ``dask_local=N``: a Dask cluster of ``N`` single-threaded worker processes on this machine;
    - otherwise a local process pool of ``jobs`` workers (default: the cores available).

    The workers read the scenario files and write the run folders themselves, so on a remote
    cluster the paths must be visible to every worker (a shared file system).
    """
    chosen = [name for name, value in (("--jobs", jobs), ("--scheduler", scheduler),
                                       ("--dask-local", dask_local)) if value is not None]
    if len(chosen) > 1:
        raise InputError(f"choose one executor, not {' and '.join(chosen)}",
                         column=chosen[1])
    for name, value in (("--jobs", jobs), ("--dask-local", dask_local)):
        if value is not None and value < 1:
            raise InputError("needs at least 1 worker", column=name, value=value)
    if scheduler is not None or dask_local is not None:
        with _dask_executor(scheduler, dask_local) as executor:
            yield executor
        return
    workers = jobs or available_cores()
    pool = BatchExecutor(_process_pool(workers), workers,
                         f"local process pool, {workers} worker{'s' * (workers > 1)}",
                         _restart=lambda: _process_pool(workers))
    try:
        yield pool
    finally:
        pool.executor.shutdown(wait=True, cancel_futures=True)


@contextlib.contextmanager
def _dask_executor(scheduler: str | None, dask_local: int | None) -> Iterator[BatchExecutor]:
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise AllocatorError(DASK_MISSING) from None
    with contextlib.ExitStack() as stack:
        if scheduler is not None:
            try:
                client = stack.enter_context(Client(scheduler, timeout="20s"))
            except (OSError, TimeoutError) as err:
                raise AllocatorError(f"cannot reach the Dask scheduler {scheduler}: {err}") \
                    from None
            where = f"Dask cluster at {scheduler}"
        else:
            cluster = stack.enter_context(LocalCluster(
                n_workers=dask_local, threads_per_worker=1, processes=True,
                dashboard_address=None))
            client = stack.enter_context(Client(cluster))
            where = f"Dask local cluster, {dask_local} worker{'s' * (dask_local > 1)}"
        slots = max(1, sum(client.nthreads().values()))
        # pure=False: two submissions of the same job are two runs, never one cached result
        executor = client.get_executor(pure=False)
        yield BatchExecutor(executor, slots, f"{where} ({slots} threads)")
