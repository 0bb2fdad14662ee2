"""Out-of-core filtering with the dask backend: throughput per worker against the
in-memory NumPy backend on one thread, scaling from one worker to two, memory per worker
and of the client, and throughput against chunk size.

A float32 ``SIZE x SIZE`` image is written to Zarr stores (one per chunk size) in a
temporary directory and filtered Zarr -> Zarr with a ``KERNEL x KERNEL`` kernel and
reflect padding by :func:`convkit.adapters.arrays.filter_file` (the path of ``convkit
filter in.zarr out.zarr --backend dask``) on a ``distributed.LocalCluster`` of workers
with one thread and ``--memory-limit`` each. The workers compute the blocks and write
them into the output store themselves; the client (this benchmark's child process, with
the scheduler in it) only sends the graph.

Every measurement runs in a fresh child process, so each peak resident memory
(``ru_maxrss``) is that run's own. The workers first filter a small image once (their
imports and per-block planning; timed separately as ``warm-up``). The in-memory
baselines load the image first (not timed) and take the faster of two calls on one
thread (``convkit.set_threads(1)``): the NumPy backend, and SciPy for reference. The
baseline run also checks every output written by the dask runs against its own result.

    python benchmarks/dask_scaling.py                     # 16384^2, 15x15, about 6 min
    python benchmarks/dask_scaling.py --size 4096 --chunks 256,512,1024 --out /tmp/quick

Writes ``scaling.txt``, ``scaling.json`` and ``scaling.png`` into ``--out`` (default
``docs/scaling-run``).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

WARM_UP_SIZE = 2048


def _peak_rss() -> int:
    """This process's peak resident memory in bytes: ``VmHWM`` (``ru_maxrss`` of a
    spawned worker may still count the process image it was forked from)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _kernel(size: int) -> np.ndarray:
    k = np.random.default_rng(1).random((size, size))
    return k / k.sum()


def _write_input(path: Path, size: int, chunk: int) -> None:
    import zarr

    z = zarr.create_array(str(path), shape=(size, size), dtype="float32", chunks=(chunk, chunk))
    rng = np.random.default_rng(0)
    for r in range(0, size, chunk):
        z[r : r + chunk] = rng.random((min(chunk, size - r), size), dtype=np.float32)


# -- the child processes -----------------------------------------------------------------


def _dask_run(args: argparse.Namespace) -> dict[str, Any]:
    """One cluster: warm up on a small image, then filter the big one; time and memory."""
    from distributed import Client, LocalCluster

    import convkit as ck
    from convkit.adapters import arrays

    kernel = _kernel(args.kernel)
    work = Path(args.work)
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
        ck.use_backend("dask", scheduler=cluster.scheduler_address, inner=args.inner),
    ):
        start = time.perf_counter()
        # the selection above (with its scheduler) is the call's: no backend= argument
        arrays.filter_file(work / "warm.zarr", work / "warm-out.zarr", kernel)
        warm = time.perf_counter() - start
        start = time.perf_counter()
        arrays.filter_file(work / f"in-{args.chunk}.zarr", Path(args.target), kernel)
        seconds = time.perf_counter() - start
        workers = sorted(client.run(_peak_rss).values())
        executed = sum(client.run(lambda dask_worker: dask_worker.state.executed_count).values())
    if not executed:
        raise RuntimeError("the workers ran no task: the filter did not run on the cluster")
    return {"seconds": seconds, "warm_up": warm, "workers_rss": workers, "client_rss": _peak_rss()}


def _baseline(args: argparse.Namespace) -> dict[str, Any]:
    """The in-memory backends on one thread, and the dask outputs checked against them."""
    import zarr

    import convkit as ck

    image = zarr.open_array(str(Path(args.work) / f"in-{args.chunk}.zarr"), mode="r")[...]
    x = image[None, None]
    w = np.ascontiguousarray(_kernel(args.kernel)[::-1, ::-1][None, None], dtype=np.float32)
    ck.set_threads(1)
    out: dict[str, Any] = {}
    y = None
    for backend in ("numpy", "scipy"):
        times = []
        for _ in range(2):
            start = time.perf_counter()
            y = ck.conv(x, w, padding="same", padding_mode="reflect", backend=backend)
            times.append(time.perf_counter() - start)
        out[backend] = min(times)
        if backend == "numpy":
            expected = y[0, 0]
    errors = {}
    for path in args.check:
        got = zarr.open_array(path, mode="r")
        errors[Path(path).name] = float(
            max(
                np.max(np.abs(got[r : r + 2048] - expected[r : r + 2048]))
                for r in range(0, len(expected), 2048)
            )
        )
    out["max_abs_error"] = errors
    return out


def _child(argv: list[str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, *argv], check=True, capture_output=True, text=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- the report ----------------------------------------------------------------------------


def _chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from convkit.fileio import atomic_output

    pixels = results["size"] ** 2
    fig, ax = plt.subplots(figsize=(6, 4))
    chunks = sorted({r["chunk"] for r in results["runs"]})
    for workers in sorted({r["workers"] for r in results["runs"]}):
        rows = [r for r in results["runs"] if r["workers"] == workers]
        rows.sort(key=lambda r: r["chunk"])
        ax.plot(
            [r["chunk"] for r in rows],
            [pixels / r["seconds"] / 1e6 for r in rows],
            marker="o",
            label=f"dask, {workers} worker{'s' * (workers > 1)} x 1 thread",
        )
    for name, style in (("numpy", "--"), ("scipy", ":")):
        ax.axhline(
            pixels / results["baseline"][name] / 1e6,
            ls=style,
            c="k",
            lw=1,
            label=f"{name} backend in memory, 1 thread",
        )
    ax.set_xscale("log", base=2)
    ax.set_xticks(chunks, [f"{c}²" for c in chunks])
    ax.set_xlabel("Zarr and Dask chunk")
    ax.set_ylabel("Mpixel/s (file to file)")
    ax.set_title(f"{results['size']}² float32, {results['kernel']}² kernel")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_output(path) as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)


def _report(results: dict[str, Any]) -> str:
    pixels = results["size"] ** 2
    numpy_rate = pixels / results["baseline"]["numpy"] / 1e6
    lines = [
        f"image {results['size']}x{results['size']} float32 "
        f"({pixels * 4 / 2**20:.0f} MiB), {results['kernel']}x{results['kernel']} kernel, "
        f"reflect padding, Zarr -> Zarr; workers of 1 thread and {results['memory_limit']} "
        f"each; inner backend {results['inner']}",
        f"in memory, 1 thread: numpy backend {results['baseline']['numpy']:.1f} s "
        f"({numpy_rate:.1f} Mpixel/s), scipy backend {results['baseline']['scipy']:.1f} s "
        f"({pixels / results['baseline']['scipy'] / 1e6:.1f} Mpixel/s)",
        "",
        "chunk  workers  seconds  Mpixel/s  per worker / numpy  speed-up  "
        "peak RSS per worker  client RSS  warm-up",
    ]
    one = {r["chunk"]: r["seconds"] for r in results["runs"] if r["workers"] == 1}
    for r in results["runs"]:
        rate = pixels / r["seconds"] / 1e6
        speedup = one[r["chunk"]] / r["seconds"] if r["chunk"] in one else float("nan")
        rss = ", ".join(f"{p / 2**20:.0f}" for p in r["workers_rss"])
        lines.append(
            f"{r['chunk']:>5}  {r['workers']:>7}  {r['seconds']:>7.1f}  {rate:>8.1f}  "
            f"{rate / r['workers'] / numpy_rate:>18.2f}  {speedup:>7.2f}x  "
            f"{rss + ' MiB':>19}  {r['client_rss'] / 2**20:>6.0f} MiB  {r['warm_up']:>5.1f} s"
        )
    errors = results["baseline"]["max_abs_error"]
    lines += ["", f"max |dask - numpy| over every output: {max(errors.values()):.2e}"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=16384)
    parser.add_argument("--kernel", type=int, default=15)
    parser.add_argument("--chunks", default="512,1024,2048", help="chunk sizes to compare")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--memory-limit", default="512MiB")
    parser.add_argument("--inner", default="numpy", help="the backend computing each block")
    parser.add_argument("--out", default="docs/scaling-run")
    # the child processes
    parser.add_argument("--child", choices=("dask", "baseline"), help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--chunk", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--check", nargs="*", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "dask":
        args.workers = int(args.workers)
        print(json.dumps(_dask_run(args)))
        return
    if args.child == "baseline":
        print(json.dumps(_baseline(args)))
        return

    from convkit.fileio import atomic_output

    chunks = [int(c) for c in args.chunks.split(",")]
    workers = [int(w) for w in args.workers.split(",")]
    common = ["--kernel", str(args.kernel), "--memory-limit", args.memory_limit]
    common += ["--inner", args.inner]
    work = Path(tempfile.mkdtemp(prefix="convkit-dask-scaling-"))
    results: dict[str, Any] = {
        "size": args.size,
        "kernel": args.kernel,
        "memory_limit": args.memory_limit,
        "inner": args.inner,
        "runs": [],
    }
    try:
        _write_input(work / "warm.zarr", WARM_UP_SIZE, 512)
        outputs = []
        for chunk in chunks:
            _write_input(work / f"in-{chunk}.zarr", args.size, chunk)
            for n in workers:
                target = work / f"out-{chunk}-{n}.zarr"
                argv = ["--child", "dask", "--work", str(work), "--chunk", str(chunk)]
                run = _child([*argv, "--workers", str(n), "--target", str(target), *common])
                results["runs"].append({"chunk": chunk, "workers": n, **run})
                print(f"chunk {chunk}, {n} worker(s): {run['seconds']:.1f} s", flush=True)
                outputs.append(str(target))
            if chunk != chunks[-1]:
                shutil.rmtree(work / f"in-{chunk}.zarr")
        argv = ["--child", "baseline", "--work", str(work), "--chunk", str(chunks[-1])]
        results["baseline"] = _child([*argv, *common, "--check", *outputs])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = _report(results)
    print(text, end="")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_output(out / "scaling.txt") as f:
        f.write(text.encode())
    with atomic_output(out / "scaling.json") as f:
        f.write(json.dumps(results, indent=1).encode())
    _chart(results, out / "scaling.png")


if __name__ == "__main__":
    main()
