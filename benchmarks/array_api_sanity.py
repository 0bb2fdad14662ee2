"""The array_api backend on NumPy arrays against the numpy backend: the same workloads of
``convkit bench`` (``cnn3x3``, ``blur31``), both backends in the same run, each the
median of a few calls after a warm-up, float32: with ``method="auto"`` on each (the
methods it picked are printed) and with the direct method forced on both; prints the
ratios (the sanity bound is 2x).

    python benchmarks/array_api_sanity.py            # full sizes
    python benchmarks/array_api_sanity.py --quick    # the bench's quick sizes
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable

import numpy as np

import convkit as ck
from convkit.bench import WORKLOADS


def _median_seconds(f: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(
        f"{'workload':<9} {'method':<8} {'numpy':>10} {'array_api':>10} {'ratio':>6}  "
        f"methods run (numpy, array_api)"
    )
    for workload in (w for w in WORKLOADS if w.name in ("cnn3x3", "blur31")):
        xs, ws = workload.shapes(args.quick)
        rng = np.random.default_rng(0)
        x = rng.standard_normal(xs).astype(np.float32)
        w = rng.standard_normal(ws).astype(np.float32)
        # auto on each, then the direct method forced on both (the gathers against the
        # numpy backend's im2col); the FFT and Winograd methods are shared algorithms
        for method in ("auto", "direct"):
            kwargs = {**workload.kwargs, "method": method}
            seconds, methods, results = {}, {}, {}
            for backend in ("numpy", "array_api"):
                methods[backend] = (
                    ck.choose_conv_method(x, w, backend=backend, **workload.kwargs).method
                    if method == "auto"
                    else method
                )
                results[backend] = ck.conv(x, w, backend=backend, **kwargs)  # warm-up
                call = functools.partial(ck.conv, x, w, backend=backend, **kwargs)
                seconds[backend] = _median_seconds(call, args.repeats)
            err = float(np.max(np.abs(results["array_api"] - results["numpy"])))
            scale = float(np.max(np.abs(results["numpy"])))
            ratio = seconds["array_api"] / seconds["numpy"]
            print(
                f"{workload.name:<9} {method:<8} {seconds['numpy'] * 1e3:>8.1f}ms "
                f"{seconds['array_api'] * 1e3:>8.1f}ms {ratio:>5.2f}x  "
                f"{methods['numpy']}, {methods['array_api']}  "
                f"(max |difference| / max |y| = {err / scale:.1e})"
            )


if __name__ == "__main__":
    main()
