"""Writing a lazy Dask result into an array on disk.

Into a Zarr array every block is written by the process that computed it (a worker of a
cluster, a thread of this process): the result is rechunked to the store's chunks where
its own chunks do not line up with them, so that no two tasks write one chunk, and
``dask.array.store`` runs on the configured scheduler. No byte of the result passes
through the client. Any other target (a NumPy memory map, which a worker process could
not share) is filled one band of whole chunk rows at a time through this process.

If the computation fails, :func:`store` returns only once no task of it can still be
writing (worker tasks already running are waited for), so the caller may remove a
partial output and know that nothing will write into it afterwards. (A worker the
scheduler has already given up on, but whose process still runs, cannot be asked; its
task's write may still land.)
"""

from __future__ import annotations

import concurrent.futures
import math
import time
from collections.abc import Mapping
from typing import Any

import dask
import dask.array as da
import numpy as np
from dask.system import CPU_COUNT

from convkit_dask import settings

BAND_BYTES = 64 << 20
"""About how many bytes of the result one band holds, for targets other than Zarr."""

DRAIN_SECONDS = 600.0
"""How long a failed write waits for the tasks still running on workers."""


def is_zarr(target: Any) -> bool:
    """Whether ``target`` is a Zarr array (which workers can write chunk by chunk).

    >>> is_zarr(np.zeros(3))
    False
    """
    return type(target).__module__.split(".")[0] == "zarr" and hasattr(target, "chunks")


def aligned(chunks: tuple[tuple[int, ...], ...], store_chunks: tuple[int, ...]) -> bool:
    """Whether every chunk boundary of a Dask array falls on a boundary of the store's
    regular chunks (then each task writes whole store chunks only).

    >>> aligned(((4, 4, 2),), (4,)), aligned(((5, 5),), (4,)), aligned(((8, 2),), (4,))
    (True, False, True)
    """
    for sizes, step in zip(chunks, store_chunks, strict=True):
        bounds = np.cumsum(sizes)[:-1]
        if np.any(bounds % step):
            return False
    return True


def store(y: da.Array, target: Any, options: Mapping[str, Any] | None) -> None:
    """Compute ``y`` into ``target`` (same shape) on the scheduler ``options`` name:
    into a Zarr array block by block where each block is computed, into anything else
    one band at a time through this process.

    >>> target = np.zeros((3, 2))
    >>> store(da.ones((3, 2), chunks=1), target, {"scheduler": "synchronous"})
    >>> target.sum()
    np.float64(6.0)
    """
    if tuple(y.shape) != tuple(target.shape):
        raise ValueError(f"cannot store an array of shape {y.shape} into one of {target.shape}")
    scheduler = settings.scheduler(options)
    if is_zarr(target):
        if not aligned(y.chunks, tuple(target.chunks)):
            y = y.rechunk(tuple(target.chunks))
        run(da.store(y, target, lock=False, compute=False), scheduler)
        return
    for rows in bands(y):
        (band,) = dask.compute(y[rows], scheduler=scheduler)
        target[rows] = np.asarray(band)


def bands(y: da.Array) -> list[tuple[slice, ...]]:
    """Index tuples of bands of whole chunks along the first axis, about
    :data:`BAND_BYTES` each (at least one chunk).

    >>> bands(da.zeros((10, 4), chunks=3))[:2]
    [(slice(0, 10, None),)]
    """
    if y.ndim == 0 or y.size == 0:
        return [()]
    row_bytes = math.prod(y.shape[1:]) * y.dtype.itemsize
    out: list[tuple[slice, ...]] = []
    start, size = 0, 0
    for n in y.chunks[0]:
        size += n
        if size * row_bytes >= BAND_BYTES:
            out.append((slice(start, start + size),))
            start, size = start + size, 0
    if size:
        out.append((slice(start, start + size),))
    return out


def run(collection: Any, scheduler: Any) -> None:
    """Compute ``collection`` for its side effects on ``scheduler`` (a local scheduler's
    name, a ``distributed.Client``, or any ``get`` function). On failure, wait until none
    of its tasks runs anywhere (local threads or processes joined, a cluster's worker
    tasks drained) before raising.

    >>> target = np.zeros(4)
    >>> run(da.store(da.arange(4.0, chunks=2), target, lock=False, compute=False), "threads")
    >>> target.tolist()
    [0.0, 1.0, 2.0, 3.0]
    """
    if scheduler in ("threads", "processes"):
        pool_type = (
            concurrent.futures.ThreadPoolExecutor
            if scheduler == "threads"
            else concurrent.futures.ProcessPoolExecutor
        )
        # as many as dask's own pool would have
        pool = pool_type(max_workers=dask.config.get("num_workers", None) or CPU_COUNT)
        try:
            dask.compute(collection, scheduler=scheduler, pool=pool)
        finally:  # join every task still running; drop those not started
            pool.shutdown(wait=True, cancel_futures=True)
        return
    if not (hasattr(scheduler, "compute") and hasattr(scheduler, "cancel")):
        dask.compute(collection, scheduler=scheduler)  # runs in this process
        return
    future = scheduler.compute(collection)
    try:
        future.result()
    except BaseException:
        scheduler.cancel(future)
        _drain(scheduler, {str(k) for k in collection.__dask_graph__()})
        raise


def _drain(client: Any, keys: set[str]) -> None:
    """Wait until no worker is executing a task named in ``keys`` (a worker that died
    meanwhile runs nothing); raise if some still do after :data:`DRAIN_SECONDS`."""
    deadline = time.monotonic() + DRAIN_SECONDS
    while True:
        running = client.run(_executing, on_error="return")
        busy = [
            address
            for address, names in running.items()
            if not isinstance(names, BaseException) and keys.intersection(names)
        ]
        if not busy:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"tasks of a failed write still run on {', '.join(busy)} after "
                f"{DRAIN_SECONDS:g} s; they may still write into its temporary output"
            )
        time.sleep(0.05)


def _executing(dask_worker: Any) -> list[str]:
    """The keys a worker is executing now (run on each worker by ``Client.run``)."""
    return [str(ts.key) for ts in dask_worker.state.executing]
