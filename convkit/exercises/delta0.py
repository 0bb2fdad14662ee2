"""Exercise 1, Δ = 0: a 1×1 convolution is a dense layer applied at every pixel."""

from __future__ import annotations

import numpy as np

import convkit as ck
from convkit.exercises.common import Context, Result, backends, photo


def run(ctx: Context) -> Result:
    """Compare a 1×1 conv with a per-pixel matrix product on every backend, and count
    parameters of a dense layer versus conv layers on a one-megapixel image."""
    rng = ctx.rng(1)
    x = photo("astronaut", grey=False, size=64 if ctx.quick else 128)[None]  # (1, 3, H, W)
    w = rng.standard_normal((8, 3))
    b = rng.standard_normal(8)
    # the dense layer at each pixel: its 3 channel values -> 8 outputs
    pixels = x[0].reshape(3, -1).T  # (H*W, 3)
    dense = (pixels @ w.T + b).T.reshape(8, *x.shape[2:])
    diffs = {}
    for name in backends():
        y = ck.conv(x, w[:, :, None, None], b, backend=name)[0]
        diffs[name] = float(np.max(np.abs(y - dense)))
    worst = max(diffs.values())
    megapixel = 1000 * 1000
    counts = {
        "dense 1 MP -> 1 MP (weights)": megapixel * megapixel,
        "1x1 conv, 3 -> 3 channels": 3 * 3 + 3,
        "1x1 conv, 3 -> 8 channels": 3 * 8 + 8,
        "3x3 conv, 3 -> 16 channels": 3 * 16 * 9 + 16,
    }
    table = "\n".join(f"| {k} | {v:,} |" for k, v in counts.items())
    return Result(
        name="delta0",
        title="Δ = 0: a 1×1 convolution is a per-pixel dense layer",
        verdict=f"1×1 conv {'equals' if worst < 1e-9 else 'differs from'} the per-pixel "
        f"matrix product on {len(diffs)} backends "
        f"(max difference {worst:.1e}); 10^12 dense weights become {counts['1x1 conv, 3 -> 3 channels']}",
        key=f"max diff {worst:.1e}",
        numbers={"max_abs_difference": diffs, "image": list(x.shape), "parameters": counts},
        details="| layer | parameters |\n|---|---|\n" + table,
    )
