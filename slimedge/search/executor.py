"""Where the search's work runs: local worker processes (the default) or tasks on a Ray cluster.

:func:`map_calls` calls a module-level function once per argument tuple and returns the results
in order. ``backend="local"`` runs them in ``workers`` fresh processes (spawned: no torch
state is inherited; with one worker, in this process), each call in a process of its own: a
process that dies (killed, out of memory) has its call run again in a new one, up to
:data:`RESTARTS` times, while the others go on (a search's worker is resumable: its trial is
queued again once its heartbeat is stale); ``backend="ray"`` as Ray tasks of one
CPU each on the cluster at ``address`` (``ray start --head`` prints it; None starts a private
local one), with this process's
``PYTHONPATH`` and ``SLIMEDGE_*`` variables passed to the workers. Ray is the optional
``cluster`` extra and is imported only here.
"""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Sequence

from .. import extras
from ..errors import UsageError

BACKENDS = ("local", "ray")
RESTARTS = 3  # local: times a call whose process died is run again


def check_backend(backend: str, address: str | None) -> None:
    if backend not in BACKENDS:
        raise UsageError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    if backend == "ray":
        extras.require("cluster", "--backend ray", "ray")
    elif address:
        raise UsageError("--address names a Ray cluster: it needs --backend ray")


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k == "PYTHONPATH" or k.startswith("SLIMEDGE_")}


def map_calls(fn: Callable, calls: Sequence[tuple], *, backend: str = "local", workers: int = 2,
              address: str | None = None) -> list[Any]:
    """``[fn(*args) for args in calls]``, run in parallel on ``backend``."""
    check_backend(backend, address)
    if not calls:
        return []
    if backend == "ray":
        import ray

        started = not ray.is_initialized()
        if started:
            ray.init(address=address, runtime_env={"env_vars": _env()}, log_to_driver=False,
                     include_dashboard=False, configure_logging=False)
        try:
            task = ray.remote(num_cpus=1, max_retries=0)(fn)
            return ray.get([task.remote(*args) for args in calls])
        finally:
            if started:
                ray.shutdown()
    if workers < 1:
        raise UsageError(f"workers must be at least 1, got {workers}")
    if workers == 1:  # no process to spawn
        return [fn(*args) for args in calls]
    return _local(fn, calls, workers)


def _local(fn: Callable, calls: Sequence[tuple], workers: int) -> list[Any]:
    """Each call in a one-process pool of its own, ``workers`` at a time; a call whose process
    died runs again (an exception raised by ``fn`` is raised here, as it is)."""
    ctx = multiprocessing.get_context("spawn")
    results: list[Any] = [None] * len(calls)
    restarts = [0] * len(calls)
    queue = list(range(len(calls)))
    running: dict = {}  # future -> (call index, its pool)
    try:
        while queue or running:
            while queue and len(running) < workers:
                k = queue.pop(0)
                pool = ProcessPoolExecutor(max_workers=1, mp_context=ctx)
                running[pool.submit(fn, *calls[k])] = (k, pool)
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for f in done:
                k, pool = running.pop(f)
                pool.shutdown(wait=True)
                try:
                    results[k] = f.result()
                except BrokenProcessPool:
                    restarts[k] += 1
                    if restarts[k] > RESTARTS:
                        raise RuntimeError(f"a worker process died {restarts[k]} times running "
                                           f"{getattr(fn, '__name__', fn)}{calls[k]}") from None
                    queue.insert(0, k)
    finally:
        for _, pool in running.values():
            pool.shutdown(wait=True)
    return results


__all__ = ["map_calls", "check_backend", "BACKENDS"]
