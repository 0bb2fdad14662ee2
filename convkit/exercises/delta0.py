"""Exercise 1, Δ = 0: a stack of 1×1 convolutions is an MLP applied at every pixel.

With Δ = 0 the chapter's layer ``h[i, j, d] = u[d] + Σ_a Σ_b Σ_c V[a, b, c, d] ·
x[i + a, j + b, c]`` keeps only ``a = b = 0``:
``h[i, j, d] = u[d] + Σ_c V[0, 0, c, d] · x[i, j, c]``. For a fixed pixel ``(i, j)`` this
is a dense layer ``h = Wᵀ x + u`` on the pixel's channel vector, with ``W = V[0, 0]``
the same at every pixel. A pointwise nonlinearity keeps this structure, and so does the
next 1×1 layer, so a stack of 1×1 convs with ReLUs is one MLP applied to every pixel's
channel vector independently: the output at a pixel depends on that pixel's input only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import convkit as ck
from convkit import nn
from convkit.exercises.common import (
    Context,
    Result,
    backends_for,
    lowered_note,
    photo,
    pyplot,
    save_figure,
)

HIDDEN = 16
"""Width of the per-pixel MLP's hidden layer: 3 → HIDDEN → 3."""
CROP = 6
"""Side of the crop whose full Jacobian is computed: (3·CROP²)² entries."""
MEGAPIXEL = 1000 * 1000


def make_stack(backend: str, dtype: str = "float64") -> nn.Sequential:
    """1×1 conv 3 → HIDDEN, ReLU, 1×1 conv HIDDEN → 3, in ``dtype``, fixed seeds."""
    return nn.Sequential(
        nn.Conv2d(3, HIDDEN, 1, dtype=dtype, backend=backend, seed=11),
        nn.ReLU(),
        nn.Conv2d(HIDDEN, 3, 1, dtype=dtype, backend=backend, seed=12),
    )


def tolerance(dtype: str) -> float:
    """What counts as round-off for values of order 1 in ``dtype``: 100 ulps (2.2e-14 in
    float64, 1.2e-5 in float32)."""
    return 100 * float(np.finfo(dtype).eps)


def mlp_params(model: nn.Sequential) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The stack's weights as a dense MLP's: ``W1 (HIDDEN, 3), b1, W2 (3, HIDDEN), b2``."""
    first, second = model.layers[0], model.layers[2]
    assert isinstance(first, nn.ConvNd) and isinstance(second, nn.ConvNd)
    assert first.bias is not None and second.bias is not None
    as64 = [
        np.asarray(a, dtype=np.float64)
        for a in (
            first.weight.value[:, :, 0, 0],
            first.bias.value,
            second.weight.value[:, :, 0, 0],
            second.bias.value,
        )
    ]
    return as64[0], as64[1], as64[2], as64[3]


def mlp(pixels: np.ndarray, params: tuple[np.ndarray, ...]) -> np.ndarray:
    """The per-pixel MLP written out: ``pixels (P, 3)`` to ``(P, 3)``."""
    w1, b1, w2, b2 = params
    return np.maximum(pixels @ w1.T + b1, 0.0) @ w2.T + b2


def mlp_jacobian(pixel: np.ndarray, params: tuple[np.ndarray, ...]) -> np.ndarray:
    """``∂ mlp(pixel) / ∂ pixel``: ``W2 · diag(1[W1 x + b1 > 0]) · W1``, (3, 3)."""
    w1, b1, w2, _ = params
    active = (w1 @ pixel + b1 > 0).astype(np.float64)
    return w2 @ (active[:, None] * w1)


def stack_with(x: np.ndarray, params: tuple[np.ndarray, ...], backend: str, method: str) -> Any:
    """The same stack through ``convkit.conv`` with an explicit method, in ``x``'s dtype."""
    w1, b1, w2, b2 = (p.astype(x.dtype) for p in params)
    h = ck.conv(x, w1[:, :, None, None], b1, method=method, backend=backend)
    h = np.maximum(np.asarray(h), 0).astype(x.dtype)
    return np.asarray(ck.conv(h, w2[:, :, None, None], b2, method=method, backend=backend))


def stack_jacobian(model: nn.Sequential, crop: np.ndarray) -> np.ndarray:
    """The exact Jacobian of the stack on ``crop (1, 3, s, s)`` from its backward pass
    (``convkit.conv_vjp``): row ``k`` is the gradient of output entry ``k`` (channel-major,
    as ``crop.ravel()``), computed as one batch of one-hot output gradients."""
    n = crop.size
    batch = np.repeat(crop, n, axis=0)
    y = model(batch)
    onehot = np.zeros((n, n), dtype=crop.dtype)
    onehot[np.arange(n), np.arange(n)] = 1.0
    model.zero_grad()
    return np.asarray(model.backward(onehot.reshape(y.shape))).reshape(n, n)


def pixel_major(j: np.ndarray, s: int) -> np.ndarray:
    """Reorder a channel-major ``(3s², 3s²)`` Jacobian so each pixel's 3 channels are
    adjacent: then the per-pixel blocks are the 3×3 blocks on the diagonal."""
    order = np.arange(3 * s * s).reshape(3, s * s).T.ravel()
    return j[np.ix_(order, order)]


def run(ctx: Context) -> Result:
    """Check the stack against the written-out MLP on every backend, its Jacobian across
    pixels, and count the parameters of dense and convolutional layers like for like."""
    size = 64 if ctx.quick else 256
    x = photo("astronaut", grey=False, size=size)[None]  # (1, 3, H, W), float64
    height, width = x.shape[2:]
    rng = ctx.rng(1)
    probe = (int(rng.integers(CROP, height - CROP)), int(rng.integers(CROP, width - CROP)))
    bump = 0.25 * rng.standard_normal(3)
    x_bumped = x.copy()
    x_bumped[0, :, probe[0], probe[1]] += bump
    others = np.ones((height, width), dtype=bool)
    others[probe] = False
    crop = x[:, :, probe[0] : probe[0] + CROP, probe[1] : probe[1] + CROP].copy()

    names, skipped = backends_for(ctx, "float64", 2, fallback="float32")
    rows: dict[str, dict[str, Any]] = {}
    keep: dict[str, Any] = {}
    for name, dtype in names.items():
        model = make_stack(name, dtype)
        params = mlp_params(model)  # the model's own weights, as float64
        # the reference: the MLP in float64 on the same (rounded) inputs and weights
        xd, xd_bumped, cropd = (a.astype(dtype) for a in (x, x_bumped, crop))
        pixels = xd[0].reshape(3, -1).T.astype(np.float64)
        reference = mlp(pixels, params).T.reshape(3, height, width)
        y = np.asarray(model(xd), dtype=np.float64)[0]
        y_bumped = np.asarray(model(xd_bumped), dtype=np.float64)[0]
        row: dict[str, Any] = {
            "dtype": dtype,
            "tolerance": tolerance(dtype),
            "stack_vs_mlp": float(np.max(np.abs(y - reference))),
            "bumped_pixel_vs_mlp": float(
                np.max(
                    np.abs(
                        y_bumped[:, probe[0], probe[1]]
                        - mlp(xd_bumped[0, :, probe[0], probe[1]][None].astype(np.float64), params)[
                            0
                        ]
                    )
                )
            ),
            "other_pixels_change_layers": float(np.max(np.abs(y_bumped - y)[:, others])),
        }
        for method in ("direct", "fft"):
            change = np.asarray(
                stack_with(xd_bumped, params, name, method), dtype=np.float64
            ) - stack_with(xd, params, name, method)
            row[f"other_pixels_change_{method}"] = float(np.max(np.abs(change[0][:, others])))
            keep.setdefault(f"change_{method}", np.max(np.abs(change[0]), axis=0))
        jac = pixel_major(stack_jacobian(model, cropd).astype(np.float64), CROP)
        blocks = np.zeros_like(jac, dtype=bool)
        block_err = 0.0
        for p in range(CROP * CROP):
            sl = slice(3 * p, 3 * p + 3)
            blocks[sl, sl] = True
            pixel = cropd[0].reshape(3, -1)[:, p].astype(np.float64)
            block_err = max(
                block_err, float(np.max(np.abs(jac[sl, sl] - mlp_jacobian(pixel, params))))
            )
        row["jacobian_off_block_max"] = float(np.max(np.abs(jac[~blocks])))
        row["jacobian_block_vs_mlp"] = block_err
        rows[name] = row
        keep.setdefault("y", y)
        keep.setdefault("jac", jac)
        keep.setdefault("params", sum(p.value.size for p in model.parameters()))

    if not rows:
        return _skipped_result(skipped)
    measured = [k for k, v in next(iter(rows.values())).items() if k not in ("dtype",)]
    by_dtype = {
        dt: {k: max(r[k] for r in rows.values() if r["dtype"] == dt) for k in measured}
        for dt in dict.fromkeys(r["dtype"] for r in rows.values())
    }
    main = "float64" if "float64" in by_dtype else next(iter(by_dtype))
    worst = by_dtype[main]
    lowered = {n: r["dtype"] for n, r in rows.items() if r["dtype"] != "float64"}
    precision = lowered_note(
        rows,
        by_dtype,
        main,
        "float64",
        lambda v: (
            f"max |diff| {v['stack_vs_mlp']:.1e}, FFT leak {v['other_pixels_change_fft']:.1e}"
        ),
    )
    n_stack = int(keep["params"])
    # counts checked against real modules on the crop, then the same formulas at 1 MP
    n_crop = CROP * CROP
    dense_crop = nn.Linear(3 * n_crop, 3 * n_crop, dtype="float64")
    assert sum(p.value.size for p in dense_crop.parameters()) == (3 * n_crop) ** 2 + 3 * n_crop
    conv_1x1 = nn.Conv2d(3, 3, 1, dtype="float64")
    n_conv = sum(p.value.size for p in conv_1x1.parameters())
    m = MEGAPIXEL
    counts = {
        "dense layer, 1 MP RGB -> 1 MP RGB": (3 * m) ** 2 + 3 * m,
        "Delta = 0 without sharing: a 3x3 matrix + bias per pixel": m * (3 * 3 + 3),
        "1x1 conv 3 -> 3 (Delta = 0, shared)": n_conv,
        f"dense 2-layer MLP, 1 MP x 3 -> 1 MP x {HIDDEN} -> 1 MP x 3": (3 * m) * (HIDDEN * m)
        + HIDDEN * m
        + (HIDDEN * m) * (3 * m)
        + 3 * m,
        f"1x1 conv stack 3 -> {HIDDEN} -> 3": n_stack,
    }
    figures = [_figure(ctx, x, keep, probe)]

    exact = all(
        r["stack_vs_mlp"] <= r["tolerance"] and r["jacobian_block_vs_mlp"] <= r["tolerance"]
        for r in rows.values()
    )
    match = (
        "exactly (max |diff| 0.0)"
        if worst["stack_vs_mlp"] == 0.0
        else f"to within {worst['stack_vs_mlp']:.1e} ({main} round-off)"
    )
    direct, fft = worst["other_pixels_change_direct"], worst["other_pixels_change_fft"]
    across = (
        f"exactly 0 with the direct method (and by round-off, {fft:.0e}, with the FFT)"
        if direct == 0.0
        else f"at most {direct:.0e} with the direct method and {fft:.0e} with the FFT"
    )
    verdict = (
        f"1×1 conv → ReLU → 1×1 conv {'equals' if exact else 'differs from'} the per-pixel MLP "
        f"on {len(rows)} backend(s) ({', '.join(rows)}; max |diff| {worst['stack_vs_mlp']:.1e}"
        f" in {main}{precision}"
        f"{'; skipped: ' + ', '.join(skipped) if skipped else ''}); changing one pixel "
        f"moves the other pixels' outputs by {direct:.1e} with the direct method "
        f"({fft:.1e} with the FFT); a dense RGB→RGB layer on 1 MP "
        f"has {counts['dense layer, 1 MP RGB -> 1 MP RGB']:.1e} parameters, the 1×1 conv {n_conv}"
    )
    table = [
        "| backend | dtype | stack − MLP | other pixels, layers | other pixels, direct "
        "| other pixels, FFT | Jacobian off-block | Jacobian block − MLP's |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        table.append(
            f"| {name} | {r['dtype']} | {r['stack_vs_mlp']:.1e} | {r['other_pixels_change_layers']:.1e} | "
            f"{r['other_pixels_change_direct']:.1e} | {r['other_pixels_change_fft']:.1e} | "
            f"{r['jacobian_off_block_max']:.1e} | {r['jacobian_block_vs_mlp']:.1e} |"
        )
    skipped_text = (
        "Skipped backends: " + "; ".join(f"`{k}`: {v}" for k, v in skipped.items()) + "."
        if skipped
        else "No backend was skipped."
    )
    if lowered:
        skipped_text += (
            f" {', '.join(f'`{n}`' for n in lowered)} declares no float64, so its row is "
            "float32 throughout (photo, weights, Jacobian), compared with the float64 MLP on "
            "the same rounded inputs and weights: its differences are float32 round-off "
            f"(tolerance 100 ulps, {tolerance('float32'):.1e}), not float64's."
        )
    leaky = [n for n, r in rows.items() if r["other_pixels_change_layers"] > 0]
    leak_text = (
        f"The layers' `auto` method leaked round-off across pixels on {', '.join(leaky)} "
        "(its cost model picks the FFT for a 1×1 kernel on this image: `convkit explain "
        f"--x 1 3 {height} {width} --w {HIDDEN} 3 1 1 --dtype {main}` lists the estimates)."
        if leaky
        else "The layers' `auto` method leaked nothing across pixels on any backend run."
    )
    counts_table = "\n".join(f"| {k} | {v:,} |" for k, v in counts.items())
    derivation = (__doc__ or "").split("\n\n", 1)[1].strip().replace("``", "`")
    details = f"""**Derivation.** {derivation}

**The check.** The `astronaut` photo ({height}×{width}, RGB, {main}) through
`nn.Sequential(Conv2d(3, {HIDDEN}, 1), ReLU(), Conv2d({HIDDEN}, 3, 1))` on each backend,
against the MLP written out in NumPy, `relu(x W1ᵀ + b1) W2ᵀ + b2`, applied to the
{height * width:,} channel vectors with the same weights. Then pixel {probe} is changed by
{np.round(bump, 3).tolist()} and every other output pixel is compared with the unchanged
output, through the layers (`auto` method) and through `convkit.conv` with the direct and
the FFT method. Last, the exact Jacobian of the stack on the {CROP}×{CROP} crop at that pixel
({3 * n_crop}×{3 * n_crop}, from the backward pass, `convkit.conv_vjp`): the entries outside the
3×3 per-pixel blocks, and each block against the MLP's Jacobian
`W2 · diag(1[W1 x + b1 > 0]) · W1`.

{chr(10).join(table)}

The direct method computes each output pixel from that pixel alone, so other pixels should
not change at all: measured, at most {direct:.1e}. The FFT method mixes all pixels in the
transform, so its answer for other pixels moves by round-off ({fft:.1e}): the Jacobian
across pixels is zero in exact arithmetic, not in every floating-point algorithm.
{leak_text} {skipped_text}

**Parameters, like for like** (a 1000×1000 RGB image to an RGB output of the same size;
weights + biases):

| layer | parameters |
|---|---|
{counts_table}

Locality (Δ = 0) alone removes all but the per-pixel blocks: 9×10¹² → 1.2×10⁷; sharing the
block across pixels (translation invariance) removes the factor 10⁶: → 12. The counts are
formulas, checked against `nn.Linear({3 * n_crop}, {3 * n_crop})` on the {CROP}×{CROP} crop
and against the modules themselves ({n_conv} and {n_stack})."""

    return Result(
        name="delta0",
        title="Δ = 0: a 1×1 convolution is an MLP applied at every pixel",
        question="With Δ = 0, show that the convolution implements an MLP independently for "
        "each pixel's set of channels.",
        answer=f"Δ = 0 leaves h[i, j, d] = u[d] + Σ_c V[0, 0, c, d] x[i, j, c]: a dense layer "
        f"on each pixel's channel vector, the same at every pixel; stacked with ReLUs it is an "
        f"MLP per pixel. Measured: a 1×1 conv stack equals the written-out MLP {match} on "
        f"every backend run{precision}, and its "
        f"output at other pixels moves by {across} when one pixel changes. For a 1 MP RGB "
        f"image the 1×1 conv has {n_conv} parameters where a dense RGB→RGB layer has "
        f"{counts['dense layer, 1 MP RGB -> 1 MP RGB']:.1e}.",
        verdict=verdict,
        key=f"max diff {worst['stack_vs_mlp']:.1e}",
        numbers={
            "image": list(x.shape),
            "probe_pixel": list(probe),
            "per_backend": rows,
            "worst": worst,
            "worst_by_dtype": by_dtype,
            "dtype": main,
            "lower_precision_backends": lowered,
            "skipped_backends": skipped,
            "parameters": counts,
        },
        figures=figures,
        details=details,
        limits="The equality is shown on one photo, one random stack and float64; with "
        "float32 (run on a backend that has no float64, such as the example JAX plugin) the "
        "two sides agree to float32 round-off instead. Counting parameters says "
        "nothing about what the layers can represent: a 1×1 conv cannot mix pixels at all, "
        "which a dense layer can. 'Exactly zero' across pixels holds for the direct method; "
        "FFT-based convolution leaks round-off (≈1e-16 relative) between pixels.",
    )


def _skipped_result(skipped: dict[str, str]) -> Result:
    """The report when no backend can run the case: the reasons, nothing measured."""
    reasons = "; ".join(f"`{k}`: {v}" for k, v in skipped.items()) or "none registered"
    return Result(
        name="delta0",
        title="Δ = 0: a 1×1 convolution is an MLP applied at every pixel",
        question="With Δ = 0, show that the convolution implements an MLP independently for "
        "each pixel's set of channels.",
        answer="Not measured: no backend could run a 2-d float64 or float32 convolution.",
        verdict=f"not run: every backend skipped ({reasons})",
        key="skipped",
        numbers={"per_backend": {}, "skipped_backends": skipped},
        details=f"Skipped backends: {reasons}.",
        limits="Nothing was measured.",
    )


def _figure(ctx: Context, x: np.ndarray, keep: dict[str, Any], probe: tuple[int, int]) -> str:
    plt = pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(16, 4.2))
    axes[0].imshow(np.clip(x[0].transpose(1, 2, 0), 0, 1))
    axes[0].plot(probe[1], probe[0], "o", mfc="none", mec="yellow", ms=10)
    axes[0].set_title("input (yellow: the changed pixel)")
    for ax, method in zip(axes[1:3], ("direct", "fft"), strict=True):
        change = keep[f"change_{method}"]
        shown = np.where(change > 0, change, np.nan)
        im = ax.imshow(np.log10(shown), cmap="viridis", vmin=-17, vmax=0)
        ax.plot(probe[1], probe[0], "o", mfc="none", mec="red", ms=10)
        zeros = int(np.sum(change == 0))
        ax.set_title(
            f"log10 |output change|, {method} method\n(white: exactly 0, {zeros:,} of {change.size:,} pixels)"
        )
        fig.colorbar(im, ax=ax, fraction=0.046)
    jac = np.abs(keep["jac"])
    shown = np.where(jac > 0, jac, np.nan)
    im = axes[3].imshow(np.log10(shown), cmap="cividis")
    axes[3].set_title(f"log10 |Jacobian| on a {CROP}×{CROP} crop\n(pixel-major; white: exactly 0)")
    fig.colorbar(im, ax=axes[3], fraction=0.046)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.subplots_adjust(wspace=0.25)
    return save_figure(fig, ctx, "delta0")
