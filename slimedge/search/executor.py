"""Where the search's work runs: local worker processes (the default) or tasks on a Ray cluster.

:func:`pool` opens an executor; its ``map(fn, calls)`` calls a module-level function once per
argument tuple and returns the results in order, and may be called again (the search runs its
size model's calibration, then its workers, on one pool). :func:`map_calls` is one ``map`` on a
pool of its own.

``backend="local"``: ``workers`` long-lived processes (spawned: no torch state is inherited; with
one worker, this process), each taking calls one after another, so torch's import, the data a
call loads (cached per process) and numba's compiled kernels are paid once per process, not once
per call. Each is a one-process pool of its own: a process that dies (killed, out of memory) is
replaced and its call run again in the new one, up to :data:`RESTARTS` times, while the others go
on (a search's worker is resumable: its trial is queued again once its heartbeat is stale).
Each process uses ``cores // workers`` threads (torch's, and OpenMP's, BLAS's and numba's in what
it starts), so that workers on a small machine do not fight over its cores.

``backend="ray"``: Ray tasks of one CPU each on the cluster at ``address`` (``ray start --head``
prints it; None starts a private local one), with this process's ``PYTHONPATH`` and
``SLIMEDGE_*`` variables passed to the workers. Ray is the optional ``cluster`` extra and is
imported only here.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import threading
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Iterator, Sequence

from .. import extras
from ..errors import UsageError

BACKENDS = ("local", "ray")
RESTARTS = 3  # local: times a call whose process died is run again
# read by OpenMP, OpenBLAS, MKL and numba when a process starts
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMBA_NUM_THREADS")


def check_backend(backend: str, address: str | None) -> None:
    if backend not in BACKENDS:
        raise UsageError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    if backend == "ray":
        extras.require("cluster", "--backend ray", "ray")
    elif address:
        raise UsageError("--address names a Ray cluster: it needs --backend ray")


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k == "PYTHONPATH" or k.startswith("SLIMEDGE_")}


def threads_per_worker(workers: int) -> int:
    """This machine's cores shared by ``workers`` processes (at least one each)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // workers)


@contextlib.contextmanager
def pool(backend: str = "local", workers: int = 2, address: str | None = None) -> Iterator:
    """An executor with ``map(fn, calls)`` (see the module's docstring), closed on exit: a local
    pool's processes end, a Ray connection this opened is shut down."""
    check_backend(backend, address)
    if backend == "ray":
        p: Any = _RayPool(address)
    elif workers < 1:
        raise UsageError(f"workers must be at least 1, got {workers}")
    elif workers == 1:
        p = _InProcess()
    else:
        p = LocalPool(workers)
    try:
        yield p
    finally:
        p.close()


def map_calls(fn: Callable, calls: Sequence[tuple], *, backend: str = "local", workers: int = 2,
              address: str | None = None) -> list[Any]:
    """``[fn(*args) for args in calls]``, run in parallel on ``backend``."""
    check_backend(backend, address)
    if not calls:
        return []
    with pool(backend, workers, address) as p:
        return p.map(fn, calls)


class _InProcess:
    """One worker: the calls one after another in this process (no process to spawn)."""

    def map(self, fn: Callable, calls: Sequence[tuple]) -> list[Any]:
        return [fn(*args) for args in calls]

    def close(self) -> None:
        pass


class _RayPool:
    def __init__(self, address: str | None):
        import ray

        self.started = not ray.is_initialized()
        if self.started:
            ray.init(address=address, runtime_env={"env_vars": _env()}, log_to_driver=False,
                     include_dashboard=False, configure_logging=False)

    def map(self, fn: Callable, calls: Sequence[tuple]) -> list[Any]:
        import ray

        task = ray.remote(num_cpus=1, max_retries=0)(fn)
        return ray.get([task.remote(*args) for args in calls])

    def close(self) -> None:
        import ray

        if self.started:
            ray.shutdown()


def _start_worker(threads: int) -> None:
    """A local worker process's initializer: torch's threads (its import is paid here, once)."""
    import torch

    torch.set_num_threads(threads)


class LocalPool:
    """``workers`` slots, each a one-process pool kept for call after call; a slot whose process
    died gets a new one (a pool of several processes would end them all when one dies)."""

    def __init__(self, workers: int):
        self.threads = threads_per_worker(workers)
        self.slots: list[ProcessPoolExecutor | None] = [None] * workers
        self.busy: dict = {}  # future -> (slot, call index)

    def _submit(self, slot: int, fn: Callable, args: tuple):
        for _ in range(2):  # a process that died while idle: a new one, once
            if self.slots[slot] is None:
                self.slots[slot] = ProcessPoolExecutor(
                    max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                    initializer=_start_worker, initargs=(self.threads,))
            try:
                # a spawned process starts in submit (not with fork) and takes this environment
                with _thread_variables(self.threads):
                    return self.slots[slot].submit(fn, *args)
            except BrokenProcessPool:
                self._replace(slot)
        raise RuntimeError("a new worker process could not be started")

    def _replace(self, slot: int) -> None:
        self.slots[slot].shutdown(wait=True)
        self.slots[slot] = None

    def map(self, fn: Callable, calls: Sequence[tuple]) -> list[Any]:
        """``[fn(*args) for args in calls]``; a call whose process died runs again (an exception
        raised by ``fn`` is raised here, as it is, once the other running calls have ended)."""
        results: list[Any] = [None] * len(calls)
        restarts = [0] * len(calls)
        queue = list(range(len(calls)))
        try:
            while queue or self.busy:
                free = [s for s in range(len(self.slots))
                        if s not in {slot for slot, _ in self.busy.values()}]
                while queue and free:
                    k, s = queue.pop(0), free.pop(0)
                    self.busy[self._submit(s, fn, calls[k])] = (s, k)
                done, _ = wait(self.busy, return_when=FIRST_COMPLETED)
                for f in done:
                    s, k = self.busy.pop(f)
                    try:
                        results[k] = f.result()
                    except BrokenProcessPool:
                        self._replace(s)
                        restarts[k] += 1
                        if restarts[k] > RESTARTS:
                            raise RuntimeError(
                                f"a worker process died {restarts[k]} times running "
                                f"{getattr(fn, '__name__', fn)}{calls[k]}") from None
                        queue.insert(0, k)
        finally:
            wait(self.busy)  # after an error: the calls still running end first
            self.busy.clear()
        return results

    def close(self) -> None:
        """End the processes, all at once, each through :func:`_end_worker`."""
        live = [p for p in self.slots if p is not None]
        for p in live:
            with contextlib.suppress(BrokenProcessPool):  # its process died: nothing to end
                p.submit(_end_worker)
        closing = [threading.Thread(target=p.shutdown) for p in live]
        for t in closing:
            t.start()
        for t in closing:
            t.join()
        self.slots = [None] * len(self.slots)


def _end_worker() -> None:
    """A local worker's last call: its exit handlers run (temporary folders are removed, files
    closed), then it ends without the interpreter's teardown, whose last collections over
    torch's and numba's objects take a second or so."""
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(0)


@contextlib.contextmanager
def _thread_variables(threads: int) -> Iterator[None]:
    """:data:`THREAD_VARIABLES` set to ``threads`` while a worker process starts (this
    process's own libraries read them when it started, not now)."""
    old = {k: os.environ.get(k) for k in THREAD_VARIABLES}
    os.environ.update({k: str(threads) for k in THREAD_VARIABLES})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


__all__ = ["map_calls", "pool", "check_backend", "threads_per_worker", "BACKENDS"]
