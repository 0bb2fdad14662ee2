"""CNN layer on the CPU: convkit's backends against torch.nn.functional.conv2d.

x (8, 64, 56, 56), w (64, 64, 3, 3), padding 1, float32. Every candidate is timed in
the same run, in interleaved rounds (this machine is noisy): each round calls every
candidate once untimed, then ``--repeat`` times timed. Reported: the median time and its
ratio to PyTorch's median.

    python benchmarks/conv2d_cpu.py [--rounds 15] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

import convkit as ck


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--repeat", type=int, default=3, help="timed calls per round")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 64, 56, 56), dtype=np.float32)
    w = rng.standard_normal((64, 64, 3, 3), dtype=np.float32)
    xt, wt = torch.from_numpy(x), torch.from_numpy(w)

    candidates: dict[str, Callable[[], object]] = {
        "torch F.conv2d (peer)": lambda: F.conv2d(xt, wt, padding=1),
        "convkit numpy": lambda: ck.conv(x, w, padding=1, backend="numpy"),
        "convkit scipy": lambda: ck.conv(x, w, padding=1, backend="scipy"),
        "convkit torch": lambda: ck.conv(x, w, padding=1, backend="torch"),
    }
    expected = F.conv2d(xt.double(), wt.double(), padding=1).numpy()
    for name, fn in candidates.items():  # warm up, and check every result
        y = np.asarray(fn())
        err = np.max(np.abs(y - expected)) / np.max(np.abs(expected))
        assert err < 1e-5, f"{name}: relative error {err:.2e}"

    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(args.rounds):
        for name, fn in candidates.items():
            fn()  # untimed: absorbs the previous candidate's worker threads winding down
            for _ in range(args.repeat):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)

    peer = statistics.median(times["torch F.conv2d (peer)"])
    flops = 2 * 8 * 64 * 56 * 56 * 64 * 9
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; numpy {np.__version__}")
    print(f"{'candidate':24} {'median ms':>10} {'vs torch':>9} {'GFLOP/s':>8}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:24} {med * 1e3:10.2f} {med / peer:8.2f}x {flops / med / 1e9:8.1f}")


if __name__ == "__main__":
    main()
