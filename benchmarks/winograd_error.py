"""Winograd F(2,3) and F(4,3): their error against an exact reference, and their speed.

Error: ``max|y - y_ref| / max|y_ref|``, the worst over random normal draws per shape, for
1 to 512 input channels, float32 and float64, 1-d and 2-d; ``y_ref`` is the float64 sum
of the formula over the taps (exact to ~1e-16 for float32 data), and
``torch.nn.functional.conv{1,2}d`` in float32 is measured against the same reference for
comparison. A second table compares interpolation points for F(4,3).

Speed: cnn3x3 (x (8, 64, 56, 56), w (64, 64, 3, 3), padding 1, float32) and a 1-d
3-tap layer (x (64, 128, 512), w (256, 128, 3), padding 1): numpy and torch Winograd
against ``F.conv2d``/``F.conv1d`` and convkit's numpy direct method, timed interleaved
(``convkit.bench.measure``), medians over the rounds; NumPy's candidates and torch's in
two groups, each with the peer.

    python benchmarks/winograd_error.py [--quick] [--rounds 7] [--skip-speed]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from fractions import Fraction
from functools import partial
from typing import Any

import array_api_compat.torch as tx
import numpy as np
import torch
import torch.nn.functional as F

import convkit as ck
from convkit.algorithms.winograd import winograd_conv
from convkit.bench import measure, ratio_table
from convkit.spec import ConvSpec

TORCH_CONV = {1: F.conv1d, 2: F.conv2d}
HALF = Fraction(1, 2)
CANDIDATES = {
    "0,±1,1/2,-2": (0, 1, -1, HALF, -2),
    "0,±1,±1/2": (0, 1, -1, HALF, -HALF),
    "0,±1,±2": (0, 1, -1, 2, -2),
    "0,±1,1/2,-3/2": (0, 1, -1, HALF, Fraction(-3, 2)),
    "0,±1,1/4,-2": (0, 1, -1, Fraction(1, 4), -2),
}


def exact(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The 3-tap layer with padding 1 from its formula, in float64: the sum over taps of
    ``w[:, :, a] @ xpad[:, :, i + a]``."""
    x, w = x.astype(np.float64), w.astype(np.float64)
    d = x.ndim - 2
    xpad = np.pad(x, [(0, 0), (0, 0), *[(1, 1)] * d])
    y = np.zeros((x.shape[0], w.shape[0], *x.shape[2:]))
    for a in np.ndindex(*(3,) * d):
        window = xpad[
            (
                slice(None),
                slice(None),
                *(slice(k, k + s) for k, s in zip(a, x.shape[2:], strict=True)),
            )
        ]
        y += np.einsum("oc,nc...->no...", w[(slice(None), slice(None), *a)], window)
    return y


def rel(y: Any, ref: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(y, dtype=np.float64) - ref)) / np.max(np.abs(ref)))


def shapes(ndim: int, channels: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    size = (18, 17) if ndim == 2 else (203,)
    return (2, channels, *size), (8, channels, *(3,) * ndim)


def worst_errors(
    ndim: int, channels: int, draws: int, points: tuple[Any, ...] | None = None
) -> dict[str, float]:
    """Worst relative error over ``draws`` random inputs per method."""
    rng = np.random.default_rng(channels * 10 + ndim)
    xs, ws = shapes(ndim, channels)
    spec = ConvSpec.build(xs, ws, padding=1)
    worst: dict[str, float] = {}
    for _ in range(draws):
        x = rng.standard_normal(xs).astype(np.float32)
        w = rng.standard_normal(ws).astype(np.float32)
        ref = exact(x, w)
        errs = {
            "torch f32": rel(
                TORCH_CONV[ndim](torch.from_numpy(x), torch.from_numpy(w), padding=1), ref
            )
        }
        for tile in (2, 4):
            pts = points if tile == 4 else None
            for dt in (np.float32, np.float64):
                y = winograd_conv(np, x.astype(dt), w.astype(dt), None, spec, tile=tile, points=pts)
                errs[f"F({tile},3) {np.dtype(dt).name}"] = rel(y, ref)
        for k, v in errs.items():
            worst[k] = max(worst.get(k, 0.0), v)
    return worst


def error_tables(quick: bool) -> None:
    draws = 5 if quick else 20
    channels = (1, 8, 64, 512) if quick else (1, 4, 16, 64, 256, 512)
    print(
        f"max|err| / max|y_ref|, worst of {draws} draws; x (2, C, 18, 17) or (2, C, 203), 8 outputs"
    )
    names = None
    for ndim in (1, 2):
        for c in channels:
            worst = worst_errors(ndim, c, draws)
            if names is None:
                names = list(worst)
                print(f"{'d':>2} {'C':>4} " + " ".join(f"{n:>16}" for n in names))
            print(f"{ndim:>2} {c:>4} " + " ".join(f"{worst[n]:16.2e}" for n in names))
    print(f"\nF(4,3) float32 by interpolation points (and infinity), worst of {draws} draws")
    print(f"{'d':>2} {'C':>4} " + " ".join(f"{n:>14}" for n in CANDIDATES))
    for ndim in (1, 2):
        for c in (16, 256):
            row = [worst_errors(ndim, c, draws, p)["F(4,3) float32"] for p in CANDIDATES.values()]
            print(f"{ndim:>2} {c:>4} " + " ".join(f"{e:14.2e}" for e in row))


def speed_table(label: str, x: np.ndarray, w: np.ndarray, rounds: int) -> None:
    """Two interleaved groups against the same peer: NumPy's candidates, then torch's
    (apart, so that neither library's idle worker threads slow the other's calls)."""
    ndim = x.ndim - 2
    spec = ConvSpec.build(x.shape, w.shape, padding=1)
    xt, wt = torch.from_numpy(x), torch.from_numpy(w)
    peer = f"torch F.conv{ndim}d (peer)"
    numpy_group: dict[str, Callable[[], object]] = {
        peer: lambda: TORCH_CONV[ndim](xt, wt, padding=1),
        "convkit numpy direct": lambda: ck.conv(x, w, padding=1, backend="numpy", method="direct"),
    }
    torch_group: dict[str, Callable[[], object]] = {peer: numpy_group[peer]}
    for tile in (2, 4):
        numpy_group[f"numpy Winograd F({tile},3)"] = partial(
            winograd_conv, np, x, w, None, spec, tile=tile
        )
        torch_group[f"torch Winograd F({tile},3)"] = partial(
            winograd_conv, tx, xt, wt, None, spec, tile=tile
        )
    ref = exact(x[:2], w)
    for name, fn in {**numpy_group, **torch_group}.items():  # warm up, check every result
        err = rel(np.asarray(fn())[:2], ref)
        assert err < 1e-4, f"{name}: relative error {err:.2e}"
    flops = float(2 * np.prod(spec.output_shape) * np.prod(w.shape[1:]))
    print(f"\n{label}: x {x.shape}, w {w.shape}, padding 1, float32; median of {rounds} rounds")
    medians = [measure(group, rounds, 2) for group in (numpy_group, torch_group)]
    for med in medians:
        print(ratio_table(med, [peer], flops=flops))
    # the peer slows down right after NumPy's BLAS calls (its idle workers still spin),
    # so NumPy's candidates are also compared with the peer as timed among torch calls
    quiet = medians[1][peer]
    print(
        f"vs the peer among torch calls ({quiet * 1e3:.2f} ms): "
        + ", ".join(f"{name} {t / quiet:.2f}x" for name, t in medians[0].items() if name != peer)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer draws, channels, rounds")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-error", action="store_true")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; numpy {np.__version__}")
    if not args.skip_error:
        error_tables(args.quick)
    if args.skip_speed:
        return
    rounds = args.rounds or (3 if args.quick else 7)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 64, 56, 56), dtype=np.float32)
    w = rng.standard_normal((64, 64, 3, 3), dtype=np.float32)
    speed_table("cnn3x3", x, w, rounds)
    x = rng.standard_normal((64, 128, 512), dtype=np.float32)
    w = rng.standard_normal((256, 128, 3), dtype=np.float32)
    speed_table("1-d 3-tap", x, w, rounds)


if __name__ == "__main__":
    main()
