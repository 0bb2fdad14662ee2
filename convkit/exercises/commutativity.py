"""Exercise 6: convolution commutes; cross-correlation does not (it reverses).

Proof. For sequences on the integers, ``(f ⊛ g)[i] = Σ_a f[a] g[i − a]``. Substitute
``b = i − a``: as ``a`` runs over all integers so does ``b``, and ``a = i − b``, so the
sum is ``Σ_b f[i − b] g[b] = Σ_b g[b] f[i − b] = (g ⊛ f)[i]``. The same substitution
works per coordinate in any number of dimensions, and for finite arrays (zero outside
their support), which is the ``full`` mode. Cross-correlation
``(f ⋆ g)[i] = Σ_a f[a + i] g[a]`` becomes, with ``b = a + i``,
``Σ_b g[b − i] f[b] = (g ⋆ f)[−i]``: swapping the arguments reverses the result
(and conjugates it, for complex signals, since ``g`` is the conjugated one).
"""

from __future__ import annotations

import numpy as np

import convkit as ck
from convkit.exercises.common import Context, Result, backends

SHAPES = [((17,), (6,)), ((6,), (17,)), ((9, 12), (4, 3)), ((3, 4), (8, 7)), ((5, 6, 7), (3, 2, 4))]


def run(ctx: Context) -> Result:
    """The numeric check, across backends, dimensions, sizes and both methods."""
    rng = ctx.rng(61)
    conv_err, corr_swap, corr_reversed = 0.0, np.inf, 0.0
    checks = 0
    names = backends() if ctx.backend is None else [ctx.backend]
    for name in names:
        for s1, s2 in SHAPES:
            f = rng.standard_normal(s1) + 1j * rng.standard_normal(s1)
            g = rng.standard_normal(s2) + 1j * rng.standard_normal(s2)
            scale = np.sqrt(np.sum(np.abs(f) ** 2) * np.sum(np.abs(g) ** 2))
            for method in ("direct", "fft"):
                fg = ck.convolve(f, g, method=method, backend=name)
                gf = ck.convolve(g, f, method=method, backend=name)
                conv_err = max(conv_err, float(np.max(np.abs(fg - gf)) / scale))
                cfg = ck.correlate(f, g, method=method, backend=name)
                cgf = ck.correlate(g, f, method=method, backend=name)
                corr_swap = min(corr_swap, float(np.max(np.abs(cfg - cgf)) / scale))
                corr_reversed = max(
                    corr_reversed, float(np.max(np.abs(cgf - np.conj(np.flip(cfg)))) / scale)
                )
                checks += 1
    return Result(
        name="commutativity",
        title="Commutativity",
        verdict=f"f ⊛ g = g ⊛ f to {conv_err:.0e} (relative) in {checks} checks over backends, "
        f"1-3 dimensions, sizes and methods; correlation differs under a swap by at least "
        f"{corr_swap:.2f} but equals the reversed conjugate to {corr_reversed:.0e}",
        key=f"|f⊛g − g⊛f| ≤ {conv_err:.0e}",
        numbers={
            "checks": checks,
            "convolution_max_rel_diff": conv_err,
            "correlation_swap_min_rel_diff": corr_swap,
            "correlation_reversal_max_rel_diff": corr_reversed,
        },
        details=(__doc__ or "").split("\n\n", 1)[1].strip(),
    )
