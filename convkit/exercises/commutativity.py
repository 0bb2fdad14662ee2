"""Exercise 6: convolution commutes; cross-correlation does not (it reverses and conjugates).

Notation, used throughout: for ``f, g`` on ``Z^d`` (finite arrays taken as zero outside
their support),

- convolution ``(f ⊛ g)[i] = Σ_a f[a] · g[i − a]``;
- cross-correlation ``(f ⋆ g)[k] = Σ_n f[n + k] · conj(g[n])``, the conjugate on the second
  argument, as ``scipy.signal.correlate(f, g)`` and ``numpy.correlate`` define it (its
  ``full`` output lists the lags ``k = −(len(g) − 1) … len(f) − 1``).

Why this module is long: the proofs (discrete and continuous) are part of the report's
text, beside the loop references, the checks on every backend in two precisions, the
continuous case by quadrature and the figure; each function is short.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

import convkit as ck
from convkit.exercises.common import (
    Context,
    Result,
    backends_for,
    lowered_note,
    pyplot,
    save_figure,
)

CASES: dict[int, list[tuple[tuple[int, ...], tuple[int, ...]]]] = {
    1: [((17,), (6,)), ((6,), (17,)), ((16,), (16,)), ((15,), (16,))],
    2: [((9, 12), (4, 3)), ((3, 4), (8, 7)), ((9, 4), (3, 12))],
    3: [((5, 6, 7), (3, 2, 4)), ((4, 3, 6), (5, 5, 2))],
}
"""Shapes of ``f`` and ``g`` per number of dimensions: either the larger, odd and even
sizes, equal sizes, and neither larger in every dimension."""
METHODS = ("direct", "fft")

PROOF = r"""**Discrete proof, any d.** `(f ⊛ g)[i] = Σ_{a ∈ Z^d} f[a] · g[i − a]`. Substitute
`b = i − a`: the map `a ↦ i − a` is a bijection of `Z^d` onto itself (its own inverse), so
the sum runs over the same terms in another order, `a = i − b`, and
`(f ⊛ g)[i] = Σ_b f[i − b] · g[b] = Σ_b g[b] · f[i − b] = (g ⊛ f)[i]`. The substitution
is done on the vector index, so it holds coordinate by coordinate in any number `d` of
dimensions. For finite arrays extended by zeros only finitely many terms are nonzero, so
reordering the sum is allowed; the result is the `full` mode. (For infinite sequences the
same holds wherever the series converges absolutely, e.g. `f, g ∈ ℓ¹`.)

**Continuous proof.** `(f * g)(x) = ∫_{R^d} f(y) · g(x − y) dy`. Substitute `z = x − y`:
`y ↦ x − y` is a bijection of `R^d` (a reflection and a translation) that preserves
Lebesgue measure (|det| = 1), so `∫ f(y) g(x − y) dy = ∫ f(x − z) g(z) dz = (g * f)(x)`.
The step is valid wherever the integral converges absolutely: then the integrand is
Lebesgue integrable and the change of variables for a measure-preserving bijection applies
(and the other side converges too). For `f, g ∈ L¹(R^d)` this holds for almost every `x`:
by Tonelli, `∫∫ |f(y) g(x − y)| dy dx = ‖f‖₁ ‖g‖₁ < ∞`, so the inner integral is finite
for a.e. `x` (Fubini then gives `f * g ∈ L¹`). Other sufficient conditions: `f ∈ L¹` and
`g` bounded (every `x`), or `f, g ∈ L²` (every `x`, Cauchy–Schwarz).

**Cross-correlation reverses.** With `m = n + k`:
`(g ⋆ f)[k] = Σ_n g[n + k] conj(f[n]) = Σ_m g[m] conj(f[m − k]) = conj((f ⋆ g)[−k])`,
so `f ⋆ g` is `g ⋆ f` reversed (in every axis) and conjugated: not commutative, except
for the pairs whose correlation is conjugate-symmetric."""


def conv_loop(f: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``f ⊛ g`` in ``full`` mode by its definition: each ``g[a]`` adds a shifted copy of
    ``f`` (no FFT, no library convolution)."""
    out = np.zeros(tuple(n + m - 1 for n, m in zip(f.shape, g.shape, strict=True)), complex)
    for a in itertools.product(*map(range, g.shape)):
        out[tuple(slice(s, s + n) for s, n in zip(a, f.shape, strict=True))] += f * g[a]
    return out


def corr_loop(f: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``f ⋆ g`` in ``full`` mode by its definition: lag ``k`` at index ``k + len(g) − 1``;
    each ``g[n]`` adds ``f · conj(g[n])`` at lags ``m − n``."""
    out = np.zeros(tuple(n + m - 1 for n, m in zip(f.shape, g.shape, strict=True)), complex)
    for idx in itertools.product(*map(range, g.shape)):
        start = [m - 1 - n for n, m in zip(idx, g.shape, strict=True)]
        out[tuple(slice(s, s + n) for s, n in zip(start, f.shape, strict=True))] += f * np.conj(
            g[idx]
        )
    return out


def box_exp(x: float, order: str) -> float:
    """``(f * g)(x)`` (``order="fg"``) or ``(g * f)(x)`` by quadrature, for
    ``f = 1_[0, 1]`` and ``g(t) = e^(−t) 1_[t ≥ 0]`` (both in L¹)."""
    from scipy.integrate import quad

    def f(t: float) -> float:
        return 1.0 if 0.0 <= t <= 1.0 else 0.0

    def g(t: float) -> float:
        return float(np.exp(-t)) if t >= 0.0 else 0.0

    if order == "fg":  # ∫ f(y) g(x − y) dy: f is 0 outside [0, 1]
        lo, hi = 0.0, 1.0
        value, _ = quad(lambda y: f(y) * g(x - y), lo, hi, points=[min(max(x, lo), hi)])
    else:  # ∫ g(y) f(x − y) dy: g is 0 below 0, f(x − y) is 0 outside y ∈ [x − 1, x]
        lo, hi = max(0.0, x - 1.0), max(0.0, x)
        value, _ = quad(lambda y: g(y) * f(x - y), lo, hi) if hi > lo else (0.0, 0.0)
    return float(value)


def box_exp_exact(x: np.ndarray) -> np.ndarray:
    """The closed form: 0 for x < 0, 1 − e^(−x) on [0, 1], (e − 1) e^(−x) beyond."""
    return np.where(x < 0, 0.0, np.where(x <= 1, 1 - np.exp(-x), (math.e - 1) * np.exp(-x)))


def run(ctx: Context) -> Result:
    """The proofs, then the numeric checks on every backend that runs complex128 in each
    dimension, both methods; correlation's reversal; ``same`` mode; the continuous case."""
    rng = ctx.rng(61)

    def draw(shape: tuple[int, ...]) -> np.ndarray:
        return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)

    data = {d: [(draw(s1), draw(s2)) for s1, s2 in cases] for d, cases in CASES.items()}
    refs = {d: [(conv_loop(f, g), corr_loop(f, g)) for f, g in pairs] for d, pairs in data.items()}
    # the notation's correlation is SciPy's (and NumPy's): checked, not assumed
    from scipy import signal

    convention = max(
        _rel(
            corr,
            signal.correlate(f, g, method="direct"),
            float(np.linalg.norm(f) * np.linalg.norm(g)),
        )
        for d, pairs in data.items()
        for (f, g), (_, corr) in zip(pairs, refs[d], strict=True)
    )
    convention = max(
        convention,
        *(
            _rel(corr, np.correlate(f, g, "full"), float(np.linalg.norm(f) * np.linalg.norm(g)))
            for (f, g), (_, corr) in zip(data[1], refs[1], strict=True)
        ),
    )
    rows: dict[str, dict[str, Any]] = {}
    skipped: dict[str, dict[int, str]] = {}
    for d, pairs in data.items():
        names, skip = backends_for(ctx, "complex128", d, fallback="complex64")
        for name, reason in skip.items():
            skipped.setdefault(name, {})[d] = reason
        for name, dtype in names.items():
            # a backend without complex128 runs complex64: the data rounded to it, and the
            # loops' references recomputed (in complex128) on the rounded data
            cast = [(f.astype(dtype), g.astype(dtype)) for f, g in pairs]
            if dtype != "complex128":
                refs_d = [
                    (
                        conv_loop(f.astype(complex), g.astype(complex)),
                        corr_loop(f.astype(complex), g.astype(complex)),
                    )
                    for f, g in cast
                ]
            else:
                refs_d = refs[d]
            row = rows.setdefault(
                name,
                {
                    "dtype": dtype,
                    "tolerance": tolerance(dtype),
                    "dims": [],
                    "checks": 0,
                    "conv_swap": 0.0,
                    "conv_vs_loop": 0.0,
                    "corr_vs_loop": 0.0,
                    "corr_swap_min": np.inf,
                    "corr_reversed_conj": 0.0,
                },
            )
            if row["dtype"] != dtype:  # not seen with the backends known; reported if so
                row["dtype"] = f"{row['dtype']}/{dtype}"
                row["tolerance"] = max(row["tolerance"], tolerance(dtype))
            row["dims"].append(d)
            for (f, g), (conv_ref, corr_ref) in zip(cast, refs_d, strict=True):
                scale = float(
                    np.linalg.norm(f.astype(complex)) * np.linalg.norm(g.astype(complex))
                )  # bounds every entry
                for method in METHODS:
                    fg, gf, cfg, cgf = (
                        np.asarray(op(a, b, method=method, backend=name), dtype=complex)
                        for op, a, b in (
                            (ck.convolve, f, g),
                            (ck.convolve, g, f),
                            (ck.correlate, f, g),
                            (ck.correlate, g, f),
                        )
                    )
                    row["conv_swap"] = max(row["conv_swap"], _rel(fg, gf, scale))
                    row["conv_vs_loop"] = max(row["conv_vs_loop"], _rel(fg, conv_ref, scale))
                    row["corr_vs_loop"] = max(row["corr_vs_loop"], _rel(cfg, corr_ref, scale))
                    row["corr_swap_min"] = min(row["corr_swap_min"], _rel(cfg, cgf, scale))
                    row["corr_reversed_conj"] = max(
                        row["corr_reversed_conj"], _rel(cfg, np.conj(np.flip(cgf)), scale)
                    )
                    row["checks"] += 1
    if not rows:
        return _skipped_result(skipped)

    # 'same' mode: the output has the first argument's shape
    first = next(iter(rows))
    first_dtype = rows[first]["dtype"].split("/")[-1]
    f17, g6 = (a.astype(first_dtype) for a in data[1][0])
    f94, g312 = (a.astype(first_dtype) for a in data[2][2])
    same_shapes = {
        "f (17,) with g (6,)": list(np.shape(ck.convolve(f17, g6, "same", backend=first))),
        "g (6,) with f (17,)": list(np.shape(ck.convolve(g6, f17, "same", backend=first))),
        "2-d f (9, 4) with g (3, 12)": list(
            np.shape(ck.convolve(f94, g312, "same", backend=first))
        ),
        "2-d g (3, 12) with f (9, 4)": list(
            np.shape(ck.convolve(g312, f94, "same", backend=first))
        ),
    }
    same_equal: dict[str, float] = {}
    for n in (16, 17):
        a = (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(first_dtype)
        b = (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(first_dtype)
        scale = float(np.linalg.norm(a.astype(complex)) * np.linalg.norm(b.astype(complex)))
        same_equal[f"n = {n}"] = _rel(
            np.asarray(ck.convolve(a, b, "same", backend=first), dtype=complex),
            np.asarray(ck.convolve(b, a, "same", backend=first), dtype=complex),
            scale,
        )

    # the continuous case: quadrature both ways against the closed form
    xs = np.linspace(-0.5, 4.0, 10 if ctx.quick else 46)
    fg_c = np.array([box_exp(float(x), "fg") for x in xs])
    gf_c = np.array([box_exp(float(x), "gf") for x in xs])
    exact_c = box_exp_exact(xs)
    continuous = {
        "points": int(xs.size),
        "max_abs_fg_minus_gf": float(np.max(np.abs(fg_c - gf_c))),
        "max_abs_fg_minus_exact": float(np.max(np.abs(fg_c - exact_c))),
        "max_abs_gf_minus_exact": float(np.max(np.abs(gf_c - exact_c))),
    }

    def worst_of(sel: list[dict[str, Any]]) -> dict[str, float]:
        return {
            "conv_swap": max(r["conv_swap"] for r in sel),
            "conv_vs_loop": max(r["conv_vs_loop"] for r in sel),
            "corr_vs_loop": max(r["corr_vs_loop"] for r in sel),
            "corr_swap_min": min(r["corr_swap_min"] for r in sel),
            "corr_reversed_conj": max(r["corr_reversed_conj"] for r in sel),
        }

    by_dtype = {
        dt: worst_of([r for r in rows.values() if r["dtype"] == dt])
        for dt in dict.fromkeys(r["dtype"] for r in rows.values())
    }
    main = "complex128" if "complex128" in by_dtype else next(iter(by_dtype))
    worst = by_dtype[main]
    lowered = {n: r["dtype"] for n, r in rows.items() if r["dtype"] != "complex128"}
    precision = lowered_note(
        rows,
        by_dtype,
        main,
        "complex128",
        lambda v: f"swap {v['conv_swap']:.0e}, reversed conjugate {v['corr_reversed_conj']:.0e}",
    )
    checks = sum(r["checks"] for r in rows.values())
    figures = [
        _figure(ctx, (f17, g6), first, (xs, fg_c, gf_c)),
    ]

    table = [
        "| backend | dtype | dims | checks | ‖f⊛g − g⊛f‖∞ | f⊛g vs loop | f⋆g vs loop "
        "| min ‖f⋆g − g⋆f‖∞ | ‖f⋆g − conj(rev(g⋆f))‖∞ |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        table.append(
            f"| {name} | {r['dtype']} | {', '.join(map(str, r['dims']))} | {r['checks']} | "
            f"{r['conv_swap']:.1e} | {r['conv_vs_loop']:.1e} | {r['corr_vs_loop']:.1e} | "
            f"{r['corr_swap_min']:.2f} | {r['corr_reversed_conj']:.1e} |"
        )
    skipped_text = (
        "Skipped: " + "; ".join(_skip_note(name, dims) for name, dims in skipped.items()) + "."
        if skipped
        else "No backend was skipped."
    )
    if lowered:
        skipped_text += (
            f" {', '.join(f'`{n}`' for n in lowered)} declares no complex128, so its row is "
            "complex64: the same draws rounded to complex64, against the loops run in "
            "complex128 on the rounded data; its errors are complex64 round-off (tolerance "
            f"100 ulps, {tolerance('complex64'):.1e}), not complex128's."
        )
    n_cases = sum(len(c) for c in CASES.values())
    notation = (__doc__ or "").split("\n\n", 1)[1].strip().replace("``", "`")
    details = f"""{notation}

{PROOF}

**Numerical check.** Complex128 data, {n_cases} shape pairs in 1 to 3 dimensions
({"; ".join(f"{d}-d: " + ", ".join(f"{a}·{b}" for a, b in c) for d, c in CASES.items())}),
each with `method="direct"` and `"fft"`, on every backend that declares complex128 for
that dimension (complex64 on one that declares only that). Errors are max-abs differences divided by ‖f‖₂‖g‖₂ (which bounds every
output entry), against each other and against the definitions computed by loops of
shifted copies (`conv_loop`, `corr_loop`, no library convolution). `corr_loop` agrees with
`scipy.signal.correlate(f, g, method="direct")` (and, in 1-d, `numpy.correlate(f, g, "full")`)
to {convention:.1e} on every pair: the notation is SciPy's.

{chr(10).join(table)}

{skipped_text}

Swapping the arguments of a convolution changes it only by round-off; swapping those of a
correlation changes it by at least {worst["corr_swap_min"]:.2f} of the bound in every case,
while `conj(reverse(g ⋆ f))` reproduces `f ⋆ g` to round-off.

**`same` mode is not commutative in shape**: it returns the centre of the full result
with the first argument's shape.

| call | output shape |
|---|---|
{chr(10).join(f"| {k} | {tuple(v)} |" for k, v in same_shapes.items())}

For equal lengths both calls cut the same slice of the same (commutative) full result, so
the values agree: relative difference {", ".join(f"{k}: {v:.1e}" for k, v in same_equal.items())}.

**Continuous case, measured.** `f = 1_[0,1]`, `g(t) = e^(−t)` for `t ≥ 0` (both in L¹):
`∫ f(y) g(x − y) dy` and `∫ g(y) f(x − y) dy` by adaptive quadrature (`scipy.integrate.quad`)
at {xs.size} points in [−0.5, 4]: they differ by at most
{continuous["max_abs_fg_minus_gf"]:.1e}, and from the closed form (0 for x < 0,
1 − e^(−x) on [0, 1], (e − 1)e^(−x) beyond) by at most
{max(continuous["max_abs_fg_minus_exact"], continuous["max_abs_gf_minus_exact"]):.1e}."""

    verdict = (
        f"f ⊛ g = g ⊛ f to {worst['conv_swap']:.0e} (relative) in {checks} checks on "
        f"{len(rows)} backend(s) ({', '.join(rows)}) in {main}{precision}, 1-3 dimensions, "
        "both methods; "
        f"correlation changes under a swap (≥ {worst['corr_swap_min']:.2f}) and equals the "
        f"reversed conjugate to {worst['corr_reversed_conj']:.0e}; 'same' gives (17,) one way "
        f"and (6,) the other" + (f"; skipped: {', '.join(skipped)}" if skipped else "")
    )
    return Result(
        name="commutativity",
        title="Commutativity: f ⊛ g = g ⊛ f",
        question="Prove that f ⊛ g = g ⊛ f.",
        answer="Substituting b = i − a (discrete, any d) or z = x − y (continuous) is a "
        "bijection of the index set that, in the continuous case, preserves Lebesgue measure, "
        "so the sum or integral is the same with f and g swapped; this needs the sum or "
        "integral to converge absolutely (finite arrays: always; f, g ∈ L¹: almost every x). "
        f"Numerically the swap changes the full convolution by at most {worst['conv_swap']:.0e} "
        f"of ‖f‖‖g‖ in {main} on every backend run{precision}, whereas cross-correlation reverses and conjugates "
        "under the swap, and 'same' mode returns the first argument's shape.",
        verdict=verdict,
        key=f"|f⊛g − g⊛f| ≤ {worst['conv_swap']:.0e}",
        numbers={
            "checks": checks,
            "per_backend": rows,
            "worst": worst,
            "worst_by_dtype": by_dtype,
            "dtype": main,
            "lower_precision_backends": lowered,
            "skipped_backends": {k: {str(d): r for d, r in v.items()} for k, v in skipped.items()},
            "same_mode_shapes": same_shapes,
            "same_mode_equal_length_rel_diff": same_equal,
            "continuous": continuous,
            "corr_loop_vs_scipy_numpy": convention,
        },
        figures=figures,
        details=details,
        limits="Numbers check the identity on finitely many random complex arrays in "
        "floating point; the proof, not the numbers, covers all inputs. Round-off differs "
        "between f ⊛ g and g ⊛ f because the sums run in another order, so 'equal' means to "
        "round-off (about 1e-16 relative; 1e-7 on a backend run in complex64), not bit for "
        "bit. The continuous case is checked "
        "on one L¹ pair by quadrature. Only `full` mode (and `same` for equal shapes) is "
        "commutative; `same` with unequal shapes is not, by construction of the mode.",
    )


def tolerance(dtype: str) -> float:
    """Round-off for a relative error in ``dtype``: 100 ulps of its real part (2.2e-14
    for complex128, 1.2e-5 for complex64)."""
    return 100 * float(np.finfo(dtype).eps)


def _skipped_result(skipped: dict[str, dict[int, str]]) -> Result:
    """The report when no backend runs complex convolution: the reasons, nothing measured."""
    reasons = "; ".join(_skip_note(name, dims) for name, dims in skipped.items())
    return Result(
        name="commutativity",
        title="Commutativity: f ⊛ g = g ⊛ f",
        question="Prove that f ⊛ g = g ⊛ f.",
        answer="The proof is in the evidence; nothing was measured: no backend could run "
        "complex128 or complex64 convolution.",
        verdict=f"not run: every backend skipped ({reasons or 'none registered'})",
        key="skipped",
        numbers={
            "per_backend": {},
            "skipped_backends": {k: {str(d): r for d, r in v.items()} for k, v in skipped.items()},
        },
        details=f"{PROOF}\n\nSkipped: {reasons}.",
        limits="Nothing was measured; the proof stands alone.",
    )


def _skip_note(name: str, dims: dict[int, str]) -> str:
    """``name`` and why it was skipped, the dimensions that share a reason together."""
    by_reason: dict[str, list[int]] = {}
    for d, why in dims.items():
        by_reason.setdefault(why, []).append(d)
    parts = [f"{', '.join(map(str, ds))}-d: {why}" for why, ds in by_reason.items()]
    return f"`{name}` ({'; '.join(parts)})"


def _rel(a: np.ndarray, b: np.ndarray, scale: float) -> float:
    return float(np.max(np.abs(a - b)) / scale)


def _figure(
    ctx: Context,
    pair: tuple[np.ndarray, np.ndarray],
    backend: str,
    cont: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> str:
    plt = pyplot()
    f, g = pair
    fig, axes = plt.subplots(2, 2, figsize=(12, 7.5))
    fg = np.asarray(ck.convolve(f, g, method="direct", backend=backend))
    gf = np.asarray(ck.convolve(g, f, method="direct", backend=backend))
    k = np.arange(fg.size)
    ax = axes[0, 0]
    ax.plot(k, fg.real, "-", lw=2, label="Re (f ⊛ g)")
    ax.plot(k, gf.real, "o", mfc="none", label="Re (g ⊛ f)")
    ax.set_title(f"convolution, f: {f.size} samples, g: {g.size} ({backend}, {f.dtype}, direct)")
    ax.set_xlabel("index i")
    ax.legend()
    ax = axes[1, 0]
    for method, marker in zip(METHODS, "os", strict=True):
        a = np.asarray(ck.convolve(f, g, method=method, backend=backend))
        b = np.asarray(ck.convolve(g, f, method=method, backend=backend))
        diff = np.abs(a - b) / (np.linalg.norm(f) * np.linalg.norm(g))
        ax.semilogy(k, np.maximum(diff, 1e-19), marker, mfc="none", label=method)
    eps = float(np.finfo(f.dtype).eps)
    ax.axhline(eps, color="grey", ls=":", label=f"{np.finfo(f.dtype).dtype} eps")
    ax.set_ylim(3e-20, eps * 50)
    ax.set_title("|f ⊛ g − g ⊛ f| / (‖f‖‖g‖)   (1e-19: exactly 0)")
    ax.set_xlabel("index i")
    ax.legend()
    ax = axes[0, 1]
    cfg = np.asarray(ck.correlate(f, g, method="direct", backend=backend))
    cgf = np.asarray(ck.correlate(g, f, method="direct", backend=backend))
    lags = np.arange(-(g.size - 1), f.size)
    ax.plot(lags, cfg.real, "-", lw=2, label="Re (f ⋆ g)")
    ax.plot(lags, cgf.real, "--", label="Re (g ⋆ f): different")
    ax.plot(lags, np.conj(np.flip(cgf)).real, "o", mfc="none", label="Re conj(g ⋆ f)[−k]")
    ax.set_title("cross-correlation: swapping reverses and conjugates")
    ax.set_xlabel("lag k")
    ax.legend(fontsize=8)
    ax = axes[1, 1]
    xs, fg_c, gf_c = cont
    fine = np.linspace(xs[0], xs[-1], 400)
    ax.plot(fine, box_exp_exact(fine), "-", color="grey", lw=3, alpha=0.5, label="closed form")
    ax.plot(xs, fg_c, "x", label="∫ f(y) g(x − y) dy")
    ax.plot(xs, gf_c, "o", mfc="none", label="∫ g(y) f(x − y) dy")
    ax.set_title("continuous: f = 1[0,1], g = e^(−t) 1[t ≥ 0]")
    ax.set_xlabel("x")
    ax.legend()
    fig.subplots_adjust(hspace=0.35, wspace=0.2)
    return save_figure(fig, ctx, "commutativity")
