"""Out-of-core filtering with the dask backend: memory per worker, throughput against the
NumPy backend, and scaling from one worker to two.

A float32 ``SIZE x SIZE`` image is written to a Zarr store in a temporary directory and
filtered Zarr -> Zarr (``convkit.adapters.arrays.filter_file``, the path of ``convkit
filter big.zarr out.zarr --backend dask``) by a ``distributed.LocalCluster`` whose
workers each have ``--memory-limit``; the same image in memory is filtered by the
NumPy backend in the same run. Each worker's peak resident memory is read from the
worker process (``ru_maxrss``) after the run.

    python benchmarks/dask_scaling.py                 # 16384^2, 15x15, 2 x 512 MiB
    python benchmarks/dask_scaling.py --size 8192     # quicker
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def _peak_rss() -> int:
    """This process's peak resident memory in bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _write_input(path: Path, size: int, chunk: int) -> None:
    import zarr

    z = zarr.create_array(str(path), shape=(size, size), dtype="float32", chunks=(chunk, chunk))
    rng = np.random.default_rng(0)
    for r in range(0, size, chunk):
        z[r : r + chunk] = rng.random((min(chunk, size - r), size), dtype=np.float32)


def _dask_run(
    source: Path, target: Path, kernel: np.ndarray, workers: int, limit: str, band_bytes: int
) -> dict:
    from distributed import Client, LocalCluster

    from convkit.adapters import arrays

    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            memory_limit=limit,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        os.environ["CONVKIT_DASK_SCHEDULER"] = cluster.scheduler_address
        start = time.perf_counter()
        arrays.filter_file(
            source, target, kernel, padding_mode="reflect", backend="dask", band_bytes=band_bytes
        )
        seconds = time.perf_counter() - start
        peaks = client.run(_peak_rss)
        del os.environ["CONVKIT_DASK_SCHEDULER"]
    return {"seconds": seconds, "peaks": sorted(peaks.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=16384)
    parser.add_argument("--chunk", type=int, default=512)
    parser.add_argument("--kernel", type=int, default=15)
    parser.add_argument("--memory-limit", default="512MiB")
    parser.add_argument("--band-mib", type=int, default=32, help="rows computed per step")
    args = parser.parse_args()

    import convkit as ck

    size, ksize = args.size, args.kernel
    pixels = size * size
    kernel = np.random.default_rng(1).random((ksize, ksize))
    kernel /= kernel.sum()
    work = Path(tempfile.mkdtemp(prefix="convkit-dask-bench-"))
    try:
        source = work / "in.zarr"
        _write_input(source, size, args.chunk)
        image_mib = pixels * 4 / 2**20
        print(
            f"image {size}x{size} float32 ({image_mib:.0f} MiB) in Zarr chunks of "
            f"{args.chunk}^2, {ksize}x{ksize} kernel, reflect padding"
        )
        print(f"workers: 1 thread each, memory limit {args.memory_limit} each")

        runs = {}
        for workers in (1, 2):
            runs[workers] = _dask_run(
                source,
                work / f"out{workers}.zarr",
                kernel,
                workers,
                args.memory_limit,
                args.band_mib << 20,
            )
            r = runs[workers]
            peaks = ", ".join(f"{p / 2**20:.0f} MiB" for p in r["peaks"])
            print(
                f"dask, {workers} worker(s): {r['seconds']:.1f} s, "
                f"{pixels / r['seconds'] / 1e6:.1f} Mpixel/s; peak RSS per worker: {peaks}"
            )

        import zarr

        x = zarr.open_array(str(source), mode="r")[...]
        start = time.perf_counter()
        weight = np.ascontiguousarray(kernel[::-1, ::-1][None, None], dtype=np.float32)
        y = ck.conv(x[None, None], weight, padding="same", padding_mode="reflect", backend="numpy")
        numpy_s = time.perf_counter() - start
        print(
            f"numpy backend, in memory, this process: {numpy_s:.1f} s, "
            f"{pixels / numpy_s / 1e6:.1f} Mpixel/s"
        )
        out = zarr.open_array(str(work / "out2.zarr"), mode="r")
        rows = slice(size // 2 - 300, size // 2 + 300)  # a band across chunk seams
        err = float(np.max(np.abs(out[rows] - y[0, 0, rows])))
        print(f"max |dask - numpy| over rows {rows.start}..{rows.stop}: {err:.2e}")
        print(
            f"throughput ratio dask(2 workers) / numpy: {numpy_s / runs[2]['seconds']:.2f}; "
            f"scaling 1 -> 2 workers: {runs[1]['seconds'] / runs[2]['seconds']:.2f}x"
        )
        del x, y
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
