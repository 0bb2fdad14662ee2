"""Measure the rates of each backend's cost model (``convkit.costs.CostModel``).

Times a few calls per backend and solves the model's formulas for its rates; the
printed ``CostModel(...)`` lines are what the built-in backends declare.

    python benchmarks/calibrate_costs.py
"""

from __future__ import annotations

import math

import numpy as np

import convkit as ck
from convkit.bench import measure
from convkit.signalspec import SignalSpec
from convkit.spec import ConvSpec


def main() -> None:
    rng = np.random.default_rng(0)
    img = rng.standard_normal((512, 512)).astype(np.float32)
    k9 = rng.standard_normal((9, 9)).astype(np.float32)
    big = rng.standard_normal((1024, 1024)).astype(np.float32)
    k31 = rng.standard_normal((31, 31)).astype(np.float32)
    x = rng.standard_normal((4, 64, 32, 32)).astype(np.float32)
    w = rng.standard_normal((64, 64, 3, 3)).astype(np.float32)
    for info in ck.list_backends():
        if not info.available:
            continue
        name = info.name
        t = measure(
            {
                "direct": lambda name=name: ck.convolve(
                    img, k9, "valid", method="direct", backend=name
                ),
                "fft": lambda name=name: ck.convolve(big, k31, "full", method="fft", backend=name),
                "conv": lambda name=name: ck.conv(x, w, padding=1, method="direct", backend=name),
            },
            rounds=3,
        )
        sig = SignalSpec.build(img.shape, k9.shape, "valid")
        tap_rate = sig.flops() / t["direct"]
        points = float(math.prod(n + k - 1 for n, k in zip(big.shape, k31.shape, strict=True)))
        fft_rate = 3 * points * math.log2(points) / t["fft"]
        spec = ConvSpec.build(x.shape, w.shape, padding=1)
        positions = spec.batch * math.prod(spec.output_size)
        gathered = positions * spec.in_channels * 9
        macs = gathered * spec.out_channels
        mac_rate = macs / max(t["conv"] - gathered / tap_rate, t["conv"] / 10)
        print(
            f"{name}: CostModel(mac_rate={mac_rate:.2g}, tap_rate={tap_rate:.2g}, "
            f"fft_rate={fft_rate:.2g})"
        )


if __name__ == "__main__":
    main()
