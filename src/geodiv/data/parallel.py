"""Where the shards of a build are made: this process, a local process pool, or a Dask cluster.

``shard_executor(workers, scheduler)`` yields a ``concurrent.futures.Executor`` (or ``None`` for one process):

- ``workers > 1``, no scheduler: a ``ProcessPoolExecutor`` of ``workers`` processes (one BLAS thread each, so
  N processes use N cores), forked where that is safe (see ``_start_method``), spawned otherwise;
- ``scheduler="local"``: a Dask ``LocalCluster`` of ``workers`` single-threaded worker processes on this machine;
- ``scheduler="tcp://HOST:8786"``: the workers of an existing Dask cluster (``dask scheduler`` /
  ``dask worker``, see docs/scaling.md). Workers write their shards into the output folder themselves, so it must
  be a path every worker sees (a shared file system).

Dask is optional (``pip install "geodiv[dask]"``); nothing here schedules or ships work by hand.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager

from geodiv.errors import ConfigError
from geodiv.progress import log

#: BLAS/OpenMP thread variables pinned to 1 in pool workers: the parallelism is over processes.
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def check_parallel(workers: int, scheduler: str | None) -> None:
    """``workers`` >= 1 and ``scheduler`` ``None``, ``"local"`` or a Dask address; a ``ConfigError`` otherwise."""
    if not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be an integer >= 1, got {workers!r}")
    if scheduler is not None and scheduler != "local" and "://" not in scheduler:
        raise ConfigError(
            f"scheduler {scheduler!r} is neither 'local' nor a Dask scheduler address such as tcp://HOST:8786"
        )


def die_with_parent(parent: int) -> None:
    """Pool worker initializer: the kernel ends this worker (SIGTERM) when ``parent``, the process that started it,
    dies (Linux ``PR_SET_PDEATHSIG``). Otherwise a build or study stopped with SIGTERM or SIGKILL leaves its workers
    running their task to the end (a pretraining step: many minutes), still writing into its output folder beside
    a rerun. Elsewhere a no-op: a worker then stops when it next reads from its broken pipe."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def _one_thread(parent: int) -> None:
    from threadpoolctl import threadpool_limits

    die_with_parent(parent)

    for var in _THREAD_VARS:
        os.environ[var] = "1"
    threadpool_limits(1)  # BLAS/OpenMP pools already loaded (a forked worker inherits them)


def _start_method() -> str:
    """``fork`` on Linux when this process runs no other thread but daemon service threads (an idle Dask offload
    thread, say): workers inherit the loaded geography layers and world (seconds of warm-up each). ``spawn``
    otherwise (and on other systems), which is always safe."""
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    return "fork" if sys.platform.startswith("linux") and not others else "spawn"


@contextmanager
def shard_executor(workers: int = 1, scheduler: str | None = None) -> Iterator[Executor | None]:
    """An executor for shard tasks (see the module docstring); ``None`` when the work stays in this process."""
    check_parallel(workers, scheduler)
    if scheduler is None:
        if workers == 1:
            yield None
            return
        ctx = multiprocessing.get_context(_start_method())
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_one_thread,
                                 initargs=(os.getpid(),)) as pool:
            yield pool
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ConfigError(
            "a Dask scheduler was given but dask.distributed is not installed; pip install \"geodiv[dask]\""
        ) from None
    if scheduler == "local":
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                          env={v: "1" for v in _THREAD_VARS}) as cluster, Client(cluster) as client:
            log(f"dask: local cluster of {workers} worker process(es)")
            yield client.get_executor(pure=False)
        return
    try:
        client = Client(scheduler, timeout="30s")
    except (OSError, TimeoutError) as err:
        raise ConfigError(f"cannot reach the Dask scheduler at {scheduler} ({err}); start it with "
                          "`dask scheduler` and workers with `dask worker " + scheduler + "`") from None
    with client:
        n = len(client.scheduler_info().get("workers", {}))
        log(f"dask: scheduler {scheduler} with {n} worker(s)")
        yield client.get_executor(pure=False)
