"""CNN layer on the CPU: convkit's backends against torch.nn.functional.conv2d.

x (8, 64, 56, 56), w (64, 64, 3, 3), padding 1, float32. Every candidate is timed in
the same run (see ``convkit.bench.measure``) and reported as its median and the ratio to
PyTorch's median.

    python benchmarks/conv2d_cpu.py [--rounds 15] [--repeat 3]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F

import convkit as ck
from convkit.bench import measure, ratio_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--repeat", type=int, default=3, help="timed calls per round")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 64, 56, 56), dtype=np.float32)
    w = rng.standard_normal((64, 64, 3, 3), dtype=np.float32)
    xt, wt = torch.from_numpy(x), torch.from_numpy(w)

    candidates = {
        "torch F.conv2d (peer)": lambda: F.conv2d(xt, wt, padding=1),
        "convkit numpy": lambda: ck.conv(x, w, padding=1, backend="numpy"),
        "convkit scipy (auto)": lambda: ck.conv(x, w, padding=1, backend="scipy"),
        "convkit torch": lambda: ck.conv(x, w, padding=1, backend="torch"),
    }
    expected = F.conv2d(xt.double(), wt.double(), padding=1).numpy()
    for name, fn in candidates.items():  # warm up, and check every result
        y = np.asarray(fn())
        err = np.max(np.abs(y - expected)) / np.max(np.abs(expected))
        assert err < 1e-4, f"{name}: relative error {err:.2e}"

    medians = measure(candidates, args.rounds, args.repeat)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; numpy {np.__version__}")
    print(ratio_table(medians, ["torch F.conv2d (peer)"], flops=2 * 8 * 64 * 56 * 56 * 64 * 9))


if __name__ == "__main__":
    main()
