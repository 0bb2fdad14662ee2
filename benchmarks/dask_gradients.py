"""Gradients of a convolution over an image larger than ``compute_limit``, on a
``distributed.LocalCluster``: ``convkit.conv_vjp`` on Dask arrays read from Zarr, the
input gradient written to Zarr by the workers, the weight and bias gradients reduced,
all checked against the NumPy backend on the same arrays in memory.

    python benchmarks/dask_gradients.py                  # 8192^2, 2 -> 3 channels, 5x5
    python benchmarks/dask_gradients.py --size 2048      # quicker
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def _peak_rss() -> int:
    """This process's peak resident memory in bytes (``VmHWM``)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--chunk", type=int, default=1024)
    parser.add_argument("--kernel", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-limit", default="1GiB")
    parser.add_argument("--compute-limit", default="64MiB")
    args = parser.parse_args()

    import dask.array as da
    import zarr
    from distributed import Client, LocalCluster

    import convkit as ck
    from convkit.adapters import arrays

    n, c, k = args.size, args.chunk, args.kernel
    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 2, k, k)).astype(np.float32)
    kw = dict(padding="same", padding_mode="reflect")
    work = Path(tempfile.mkdtemp(prefix="convkit-dask-gradients-"))
    try:
        for name, channels in (("x", 2), ("gy", 3)):
            z = zarr.create_array(
                str(work / f"{name}.zarr"),
                shape=(1, channels, n, n),
                dtype="float32",
                chunks=(1, channels, c, c),
            )
            for r in range(0, n, c):
                z[:, :, r : r + c] = rng.standard_normal(
                    (1, channels, min(c, n - r), n), dtype=np.float32
                )
        nbytes = 5 * n * n * 4
        print(
            f"x (1, 2, {n}, {n}) and grad_out (1, 3, {n}, {n}) float32 in Zarr chunks of {c}^2 "
            f"({nbytes / 2**20:.0f} MiB together), {k}x{k} kernel, reflect padding; "
            f"compute_limit {args.compute_limit}; {args.workers} workers of 1 thread, "
            f"{args.memory_limit} each"
        )
        os.environ["CONVKIT_DASK_COMPUTE_LIMIT"] = args.compute_limit
        with (
            LocalCluster(
                n_workers=args.workers,
                threads_per_worker=1,
                processes=True,
                memory_limit=args.memory_limit,
                host="127.0.0.1",
                dashboard_address=None,
            ) as cluster,
            Client(cluster) as client,
            ck.use_backend("dask", scheduler=cluster.scheduler_address, inner="numpy"),
        ):
            start = time.perf_counter()
            x = da.from_zarr(str(work / "x.zarr"))
            gy = da.from_zarr(str(work / "gy.zarr"))
            gx, gw, gb = ck.conv_vjp(x, w, gy, bias=True, **kw)
            arrays.save_array(gx, work / "gx.zarr")
            seconds = time.perf_counter() - start
            peaks = sorted(client.run(_peak_rss).values())
        print(
            f"conv_vjp, grad_x written to Zarr by the workers: {seconds:.1f} s; "
            f"peak RSS per worker {', '.join(f'{p / 2**20:.0f} MiB' for p in peaks)}; "
            f"this process (which also wrote the inputs) {_peak_rss() / 2**20:.0f} MiB"
        )
        del os.environ["CONVKIT_DASK_COMPUTE_LIMIT"]
        xs = zarr.open_array(str(work / "x.zarr"))[...]
        gys = zarr.open_array(str(work / "gy.zarr"))[...]
        start = time.perf_counter()
        ref = ck.conv_vjp(xs, w, gys, bias=True, backend="numpy", **kw)
        numpy_s = time.perf_counter() - start
        got = zarr.open_array(str(work / "gx.zarr"))[...]
        scale = [float(np.max(np.abs(r))) for r in ref]
        errors = [
            float(np.max(np.abs(g - r))) / s
            for g, r, s in zip((got, gw, gb), ref, scale, strict=True)
        ]
        print(f"numpy backend, in memory, this process: {numpy_s:.1f} s")
        print(
            "max |dask - numpy| / max |numpy|: "
            + ", ".join(
                f"{name} {e:.1e}"
                for name, e in zip(("grad_x", "grad_w", "grad_b"), errors, strict=True)
            )
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
