"""The numpy backend's ``conv_vjp`` against torch autograd, shape by shape: the CNN layer,
the large image with few channels, a depthwise layer, every shape of
``tests/test_gradients.py`` and two grouped ones. Interleaved rounds, medians; each
line gives both times and their ratio.

    python benchmarks/numpy_gradients.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

import convkit as ck
from convkit.spec import ConvSpec

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support import GRADIENT_CASES as CASES
from test_gradients import TORCH_MODES

SHAPES: list[tuple[str, tuple[int, ...], tuple[int, ...], dict[str, Any], str]] = [
    ("cnn3x3", (8, 64, 56, 56), (64, 64, 3, 3), dict(padding=1), "float32"),
    ("large image", (1, 2, 1024, 768), (3, 2, 5, 5), dict(padding=2), "float32"),
    ("depthw3", (8, 256, 56, 56), (256, 1, 3, 3), dict(padding=1, groups=256), "float32"),
    *((f"test case {i}", x, w, kw, "float64") for i, (x, w, kw) in enumerate(CASES)),
    ("32 groups of 2", (4, 64, 28, 28), (64, 2, 3, 3), dict(padding=1, groups=32), "float32"),
    (
        "depthwise, stride 2",
        (4, 64, 28, 28),
        (64, 1, 3, 3),
        dict(padding=1, groups=64, stride=2),
        "float32",
    ),
]


def torch_backward(x: np.ndarray, w: np.ndarray, gy: np.ndarray, kw: dict[str, Any]) -> object:
    """Input and weight gradients by autograd through ``F.pad`` and ``F.convNd``."""
    spec = ConvSpec.build(x.shape, w.shape, **kw)
    xt = torch.from_numpy(x).requires_grad_()
    wt = torch.from_numpy(w).requires_grad_()
    xp = xt
    if spec.has_padding:
        mode = TORCH_MODES.get(spec.padding_mode, "reflect")
        flat = [p for pair in reversed(spec.padding) for p in pair]
        xp = F.pad(xt, flat, mode=mode)
    fn = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[spec.ndim]
    y = fn(xp, wt, stride=spec.stride, dilation=spec.dilation, groups=spec.groups)
    y.backward(torch.from_numpy(gy))
    return wt.grad


def medians(fns: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    times: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():
        fn()
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"{'shape':22} {'numpy ms':>10} {'torch ms':>10} {'numpy/torch':>12}")
    for name, xs, ws, kw, dtype in SHAPES:
        x = rng.standard_normal(xs).astype(dtype)
        w = rng.standard_normal(ws).astype(dtype)
        gy = rng.standard_normal(ConvSpec.build(xs, ws, **kw).output_shape).astype(dtype)
        t = medians(
            {
                "numpy": functools.partial(ck.conv_vjp, x, w, gy, backend="numpy", **kw),
                "torch": functools.partial(torch_backward, x, w, gy, kw),
            },
            args.rounds,
        )
        print(
            f"{name:22} {t['numpy'] * 1e3:10.2f} {t['torch'] * 1e3:10.2f} "
            f"{t['numpy'] / t['torch']:11.2f}x",
            flush=True,
        )


if __name__ == "__main__":
    main()
