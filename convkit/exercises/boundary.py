"""Exercise 3: what happens at the image boundary.

Why this module is long: four measurements (modes against the truth, the band
against depth, a downstream edge map, the position leak) and their figures make one
answer; each is a short function.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import numpy as np

import convkit as ck
from convkit import nn
from convkit.adapters import image, kernels
from convkit.exercises.common import Context, Result, mean_sd, photo, pyplot, save_figure
from convkit.exercises.images import filter_dtype
from convkit.padding import PADDING_MODES

IMAGES = ("astronaut", "camera", "coffee", "chelsea", "rocket")
KERNELS = {
    "Gaussian σ=2": lambda: kernels.gaussian(sigma=2.0),
    "box 7×7": lambda: kernels.box(7),
    "Sobel x": kernels.sobel_x,
    "Laplacian": kernels.laplacian,
    "sharpen": kernels.sharpen,
}
TOL = 1e-9
"""An output differs from the truth when it is further off than this (float64 sums of
values in [0, 1]: rounding is ~1e-15)."""
TOL32 = 1e-4
"""The same on a backend without float64 (rounding ~1e-7)."""
LEAK_MODES = ("zeros", "reflect", "replicate", "circular")
MAX_RESTARTS = 3
"""Restarts allowed per (mode, seed) when a position-leak run collapses."""


def border_distance(n: int) -> np.ndarray:
    """``(n, n)``: each pixel's distance to the nearest edge (0 on the edge)."""
    edge = np.minimum(np.arange(n), np.arange(n)[::-1])
    return np.minimum.outer(edge, edge)


def reach(err: np.ndarray, dist: np.ndarray) -> int:
    """How far from the border (in px) the error reaches: 1 + the largest distance of a
    wrong pixel, 0 if none."""
    wrong = np.abs(err) > (TOL if err.dtype == np.float64 else TOL32)
    return int(dist[wrong].max()) + 1 if wrong.any() else 0


def crop_and_truth(ctx: Context, name: str, size: int) -> tuple[np.ndarray, np.ndarray, slice]:
    """The photo at ``size`` rows (square), and the slice of its central half: the crop
    is the input, and filtering the whole photo gives the truth inside the crop."""
    full = photo(name, size=size)[:size, :size].astype(filter_dtype(ctx))
    n = size // 2
    return full, full[n // 2 : n // 2 + n, n // 2 : n // 2 + n], slice(n // 2, n // 2 + n)


def modes_by_kernel(ctx: Context, size: int) -> dict[str, dict[str, list[float]]]:
    """Relative error energy in the border band (distance < kernel radius), per kernel,
    padding mode and photo."""
    energy: dict[str, dict[str, list[float]]] = {k: {m: [] for m in PADDING_MODES} for k in KERNELS}
    for name in IMAGES:
        full, crop, s = crop_and_truth(ctx, name, size)
        dist = border_distance(crop.shape[0])
        for kname, make in KERNELS.items():
            k = make()
            band = dist < k.shape[0] // 2
            truth = image.filter(full[None], k, backend=ctx.backend)[0][s, s]
            for mode in PADDING_MODES:
                out = image.filter(crop[None], k, padding_mode=mode, backend=ctx.backend)[0]
                err = out - truth
                energy[kname][mode].append(float(np.sum(err[band] ** 2) / np.sum(truth[band] ** 2)))
    return energy


def random_net(depth: int, channels: int, seed: int) -> list[np.ndarray]:
    """Weights of ``depth`` 3×3 conv layers (He-scaled), 1 → channels → … → 1."""
    rng = np.random.default_rng(seed)
    sizes = [1] + [channels] * (depth - 1) + [1]
    return [rng.standard_normal((o, i, 3, 3)) * np.sqrt(2.0 / (9 * i)) for i, o in pairwise(sizes)]


def forward(ctx: Context, x: np.ndarray, weights: list[np.ndarray], mode: str) -> np.ndarray:
    """Stacked 3×3 convs (``padding="same"`` in ``mode``) with ReLU between them."""
    h = x[None, None]
    for i, w in enumerate(weights):
        h = np.asarray(
            ck.conv(h, w.astype(h.dtype), padding="same", padding_mode=mode, backend=ctx.backend)
        )
        if i < len(weights) - 1:
            h = np.maximum(h, 0)
    return h[0, 0]


def depth_study(ctx: Context, depths: list[int], size: int) -> dict[str, Any]:
    """L stacked 3×3 layers (radius 1): how far the border error reaches, per mode, for a
    random ReLU net and for a stack of blurs followed by an edge detector."""
    full, crop, s = crop_and_truth(ctx, "camera", size)
    n = crop.shape[0]
    dist = border_distance(n)
    net_reach: dict[str, list[int]] = {m: [] for m in PADDING_MODES}
    blur_reach: dict[str, list[int]] = {m: [] for m in PADDING_MODES}
    profile: dict[str, list[float]] = {}
    binomial = np.outer([1.0, 2.0, 1.0], [1.0, 2.0, 1.0]) / 16
    for depth in depths:
        weights = random_net(depth, 4, seed=depth)
        truth = forward(ctx, full, weights, "zeros")[s, s]
        blur = [binomial[None, None]] * depth
        blur_truth = forward_linear(ctx, full, blur, "zeros")[s, s]
        for mode in PADDING_MODES:
            err = forward(ctx, crop, weights, mode) - truth
            net_reach[mode].append(reach(err, dist))
            blur_reach[mode].append(reach(forward_linear(ctx, crop, blur, mode) - blur_truth, dist))
            if depth == depths[-1]:
                scale = float(np.sqrt(np.mean(truth**2)))
                profile[mode] = [
                    float(np.sqrt(np.mean(err[dist == d] ** 2)) / scale) for d in range(depth + 3)
                ]
    # downstream: edges (Sobel magnitude above the truth's 90th percentile) after L blurs
    depth = depths[-1]
    blur = [binomial[None, None]] * depth
    sobel = [kernels.sobel_x()[None, None], kernels.sobel_y()[None, None]]

    def edges(x: np.ndarray, mode: str) -> np.ndarray:
        b = forward_linear(ctx, x, blur, mode)
        g = [
            np.asarray(
                ck.conv(
                    b[None, None],
                    k.astype(b.dtype),
                    padding="same",
                    padding_mode=mode,
                    backend=ctx.backend,
                )
            )[0, 0]
            for k in sobel
        ]
        return np.hypot(*g)

    band = dist < depth + 1
    edge_wrong: dict[str, dict[str, list[float]]] = {
        m: {"band": [], "centre": []} for m in PADDING_MODES
    }
    for name in IMAGES:
        photo_full, photo_crop, _ = crop_and_truth(ctx, name, size)
        mag_truth = edges(photo_full, "zeros")[s, s]
        threshold = float(np.quantile(mag_truth, 0.9))
        edge_truth = mag_truth > threshold
        for mode in PADDING_MODES:
            wrong = (edges(photo_crop, mode) > threshold) != edge_truth
            edge_wrong[mode]["band"].append(float(wrong[band].mean()))
            edge_wrong[mode]["centre"].append(float(wrong[~band].mean()))
    return {
        "depths": depths,
        "random_net_reach": net_reach,
        "blur_stack_reach": blur_reach,
        "error_profile": profile,
        "edge_disagreement": edge_wrong,
        "edge_band_px": depth + 1,
    }


def forward_linear(ctx: Context, x: np.ndarray, weights: list[np.ndarray], mode: str) -> np.ndarray:
    """Stacked convs without a nonlinearity."""
    h = x[None, None]
    for w in weights:
        h = np.asarray(
            ck.conv(h, w.astype(h.dtype), padding="same", padding_mode=mode, backend=ctx.backend)
        )
    return h[0, 0]


def collapsed(model: nn.Sequential, x: np.ndarray) -> bool:
    """True when training killed the net: its last hidden layer's ReLUs are off for more
    than 99% of the (input, pixel, channel) values, so the output is (nearly) its last
    bias whatever the input (R² ≈ 0 by failure, not by finding). Judged on the hidden
    activations, not on R², so a net that honestly cannot learn is never restarted."""
    hidden = nn.predict(nn.Sequential(*model.layers[:-1]), x)
    return float(np.mean(hidden > 0)) < 0.01


def position_leak(ctx: Context, seeds: tuple[int, ...]) -> dict[str, Any]:
    """Can a fully convolutional net tell each pixel's distance to the nearest edge from
    a white-noise image? The content says nothing about position; only the padding can.
    A run whose output collapsed to a constant (dead ReLUs) is restarted from a new
    initialisation (up to MAX_RESTARTS times) and the restart counted. Returns the
    held-out R² per padding mode and seed (of the final, converged runs), the restarts,
    and one predicted map per mode."""
    size, width = 12, 6
    n_train, n_test = (64, 64) if ctx.quick else (128, 128)
    epochs = 10 if ctx.quick else 15
    dist = border_distance(size).astype(np.float32)
    target = (dist / dist.max())[None, None]
    r2: dict[str, list[float]] = {m: [] for m in LEAK_MODES}
    restarts: dict[str, int] = {m: 0 for m in LEAK_MODES}
    failed: dict[str, int] = {m: 0 for m in LEAK_MODES}
    maps: dict[str, np.ndarray] = {}
    for seed in seeds:
        rng = ctx.rng(300 + seed)
        x = rng.standard_normal((n_train, 1, size, size)).astype(np.float32)
        xt = rng.standard_normal((n_test, 1, size, size)).astype(np.float32)
        y = np.broadcast_to(target, x.shape).copy()
        yt = np.broadcast_to(target, xt.shape)
        for mode in LEAK_MODES:
            kw: dict[str, Any] = dict(padding="same", padding_mode=mode, backend=ctx.backend)
            for attempt in range(MAX_RESTARTS + 1):
                init = seed + 1000 * attempt
                model = nn.Sequential(
                    nn.Conv2d(1, width, 5, seed=init, **kw),
                    nn.ReLU(),
                    nn.Conv2d(width, width, 5, seed=init + 1, **kw),
                    nn.ReLU(),
                    nn.Conv2d(width, 1, 5, seed=init + 2, **kw),
                )
                nn.fit(
                    model,
                    nn.MSELoss(),
                    nn.Adam(model.parameters(), lr=0.01),
                    x,
                    y,
                    epochs=epochs,
                    batch_size=16,
                    seed=init,
                    verbose=ctx.verbose,
                )
                pred = nn.predict(model, xt)
                if not collapsed(model, xt):
                    break
                if attempt < MAX_RESTARTS:
                    restarts[mode] += 1
            else:
                failed[mode] += 1
                continue
            r2[mode].append(float(1 - np.sum((pred - yt) ** 2) / np.sum((yt - yt.mean()) ** 2)))
            maps[mode] = pred[0, 0]
    return {
        "r2": r2,
        "restarts": restarts,
        "failed": failed,
        "maps": maps,
        "target": target[0, 0],
        "size": size,
    }


def run(ctx: Context) -> Result:
    """Padding modes on several photos and kernels; the band's growth with depth; a
    downstream edge detector; position read from the padding."""
    size = 128 if ctx.quick else 256
    seeds = (1,) if ctx.quick else (1, 2, 3)
    depths = [1, 2, 4, 8] if ctx.quick else [1, 2, 3, 4, 6, 8, 12, 16]

    # the original single case: sizes and the corner figure, Gaussian on astronaut
    full, crop, s = crop_and_truth(ctx, "astronaut", size)
    n = crop.shape[0]
    k = kernels.gaussian(sigma=2.0)  # the table's Gaussian
    r = k.shape[0] // 2
    sizes = {
        mode: list(np.shape(ck.convolve(crop, k.astype(crop.dtype), mode, backend=ctx.backend)))
        for mode in ("valid", "same", "full")
    }
    truth = image.filter(full[None], k, backend=ctx.backend)[0][s, s]
    outputs = {
        m: image.filter(crop[None], k, padding_mode=m, backend=ctx.backend)[0]
        for m in PADDING_MODES
    }
    dist = border_distance(n)
    single_reach = {m: reach(outputs[m] - truth, dist) for m in PADDING_MODES}

    energy = modes_by_kernel(ctx, size)
    depth = depth_study(ctx, depths, size)
    leak = position_leak(ctx, seeds)

    # which mode is best, per (kernel, photo). With a 3×3 kernel symmetric and replicate
    # pad the same single pixel, so they tie by construction: only the larger kernels
    # discriminate. A case whose best is shared (within 0.1%) counts as a tie.
    wide = [kname for kname, make in KERNELS.items() if make().shape[0] > 3]
    wins = {m: 0 for m in PADDING_MODES}  # sole best, over the discriminating cases
    ties: dict[str, int] = {}  # "a = b" -> number of discriminating cases tied
    wins_3x3 = {m: 0 for m in PADDING_MODES}  # best or tied for best, 3×3 kernels
    for kname in KERNELS:
        for i in range(len(IMAGES)):
            lowest = min(energy[kname][m][i] for m in PADDING_MODES)
            tied = [m for m in PADDING_MODES if energy[kname][m][i] <= lowest * 1.001]
            if kname not in wide:
                for m in tied:
                    wins_3x3[m] += 1
            elif len(tied) == 1:
                wins[tied[0]] += 1
            else:
                ties[" = ".join(tied)] = ties.get(" = ".join(tied), 0) + 1
    n_disc = len(wide) * len(IMAGES)
    geo = {
        kname: {m: float(np.exp(np.mean(np.log(np.maximum(v, 1e-300))))) for m, v in per.items()}
        for kname, per in energy.items()
    }

    plt = pyplot()
    from matplotlib.colors import PowerNorm  # after pyplot(): matplotlib is optional

    fig, axes = plt.subplots(2, len(PADDING_MODES) + 1, figsize=(14, 5.2))
    corner = slice(0, 3 * r)
    err_max = float(max(np.abs(o - truth)[corner, corner].max() for o in outputs.values()))
    panels = [("truth (real surroundings)", truth), *outputs.items()]
    for i, (title, arr) in enumerate(panels):
        axes[0, i].imshow(arr[corner, corner], cmap="gray", vmin=0, vmax=1)
        axes[0, i].set_title(title, fontsize=9)
        axes[0, i].axis("off")
        im = axes[1, i].imshow(
            np.abs(arr - truth)[corner, corner],
            cmap="magma",
            norm=PowerNorm(0.5, vmin=0, vmax=err_max),  # square-root scale: small errors show
        )
        axes[1, i].set_title("|output − truth|" if i else "(no error)", fontsize=9)
        axes[1, i].axis("off")
    fig.colorbar(
        im, ax=axes, shrink=0.42, anchor=(0.0, 0.05), label="|error| (pixel values 0–1; √ scale)"
    )
    fig.suptitle(
        f"top-left corner of the astronaut crop, Gaussian σ=2 ({k.shape[0]}×{k.shape[0]}, "
        f"radius {r} px)"
    )
    fig_modes = save_figure(fig, ctx, "boundary-modes")

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for i, mode in enumerate(PADDING_MODES):
        axes[0].plot(
            depths, depth["random_net_reach"][mode], "o", ms=13 - 2.5 * i, label=mode, alpha=0.8
        )
        axes[1].semilogy(depth["error_profile"][mode], "o-", label=mode, alpha=0.7)
    axes[0].plot(depths, depths, "k:", label="L · r (r = 1)")
    axes[0].set_xlabel("layers L (3×3 convs + ReLU)")
    axes[0].set_ylabel("error reaches (px from the border)")
    axes[0].set_title("random ReLU net: the affected band grows as L · r (every mode)", fontsize=9)
    axes[0].legend(fontsize=7)
    axes[1].set_xlabel("distance from the border (px)")
    axes[1].set_ylabel("RMS error / RMS output")
    axes[1].set_title(
        f"random net, L = {depths[-1]}: error by distance (zero beyond L)", fontsize=9
    )
    axes[1].legend(fontsize=7, title="padding", title_fontsize=7)
    modes = list(LEAK_MODES)
    means = [np.mean(leak["r2"][m]) if leak["r2"][m] else np.nan for m in modes]
    sds = [np.std(leak["r2"][m], ddof=1) if len(leak["r2"][m]) > 1 else 0.0 for m in modes]
    axes[2].bar(modes, means, yerr=sds, capsize=3, color="tab:purple", alpha=0.8)
    axes[2].axhline(0, color="grey", lw=1)
    axes[2].set_ylabel("held-out R²")
    axes[2].set_title("predicting distance-to-edge from white noise (converged runs)", fontsize=9)
    fig.tight_layout()
    fig_depth = save_figure(fig, ctx, "boundary-depth-leak")

    fig, axes = plt.subplots(1, len(LEAK_MODES) + 1, figsize=(11, 2.4))
    for ax, (title, arr) in zip(
        axes, [("target: distance to edge", leak["target"]), *leak["maps"].items()], strict=False
    ):
        ax.imshow(arr, cmap="viridis", vmin=0, vmax=1)
        ax.set_title(title if title.startswith("target") else f"{title} padding", fontsize=8)
        ax.axis("off")
    for ax in axes[1 + len(leak["maps"]) :]:
        ax.axis("off")  # a mode whose every run collapsed has no map
    fig.suptitle("what a 3-layer conv net predicts from one white-noise test image", fontsize=9)
    fig_leak = save_figure(fig, ctx, "boundary-leak-maps")

    table = "\n".join(
        f"| {kname} | " + " | ".join(f"{geo[kname][m]:.1e}" for m in PADDING_MODES) + " |"
        for kname in KERNELS
    )
    depth_rows = "\n".join(
        f"| {mode} | {stack} | " + " | ".join(str(v) for v in depth[f"{key}_reach"][mode]) + " |"
        for key, stack in (("random_net", "random net"), ("blur_stack", "blurs"))
        for mode in PADDING_MODES
    )
    ew = depth["edge_disagreement"]
    edge_rows = "\n".join(
        f"| {m} | {mean_sd(100 * np.array(ew[m]['band']), 1)} | {max(ew[m]['centre']):.1%} |"
        for m in PADDING_MODES
    )
    leak_rows = "\n".join(
        f"| {m} | {mean_sd(leak['r2'][m], 2) if leak['r2'][m] else '—'} | "
        f"{leak['restarts'][m]} | {leak['failed'][m]} |"
        for m in LEAK_MODES
    )
    exact = all(depth["random_net_reach"][m] == depths for m in PADDING_MODES)
    tie_text = ", ".join(f"{t} in {c}" for t, c in ties.items()) or "none"
    blur_end = ", ".join(f"{m} {depth['blur_stack_reach'][m][-1]}" for m in PADDING_MODES)
    details = (
        f"**Padding modes against the truth** ({len(IMAGES)} photos: {', '.join(IMAGES)}; "
        f"the central {n}×{n} crop of each at {size} px; the truth is the filter of the whole "
        "photo, cropped). Relative error energy in the band within the kernel radius, "
        "geometric mean over the photos:\n\n"
        "| kernel | "
        + " | ".join(PADDING_MODES)
        + " |\n|---|"
        + "---|" * len(PADDING_MODES)
        + "\n"
        + table
        + "\n\n"
        f"Best mode per (kernel, photo), over the {n_disc} cases that can tell the modes "
        f"apart ({', '.join(wide)}): alone best "
        + ", ".join(f"{m} {wins[m]}" for m in PADDING_MODES)
        + f"; ties (within 0.1%): {tie_text}. With the three 3×3 kernels symmetric and "
        "replicate pad the same single pixel, so they tie by construction in all "
        f"{len(KERNELS) * len(IMAGES) - n_disc} of those cases (best or tied there: "
        + ", ".join(f"{m} {wins_3x3[m]}" for m in PADDING_MODES)
        + ").\n\n"
        f"**Depth**: L 3×3 layers (radius r = 1) on the camera crop — a random conv net "
        f"(4 channels, ReLU) and a stack of L binomial blurs; how far the error (above "
        f"{TOL:.0e}) reaches from the border:\n\n"
        "| mode | stack | "
        + " | ".join(f"L={d}" for d in depths)
        + " |\n|---|---|"
        + "---|" * len(depths)
        + "\n"
        + depth_rows
        + "\n\n"
        f"The random net's error reaches exactly L px{' at every depth and mode' if exact else ' (not at every depth: see the table)'}. "
        "The blur stack's does not always reach L: the pixel L − 1 px from the edge sees the padding only "
        "through the outermost tap of L binomial blurs, whose weight is 4^−L per axis "
        f"(4^−16 ≈ {4.0**-16:.1e}), below the {TOL:.0e} threshold at large L, so the "
        f"measured reach is {blur_end} "
        f"at L = {depths[-1]}: the band is L·r wide, but the tail of a smooth stack is "
        "negligible.\n\n"
        f"**Downstream**: an edge map (Sobel magnitude after {depths[-1]} stacked 3×3 blurs, "
        f"threshold at the truth's 90th percentile): pixels whose edge/non-edge decision "
        f"differs from the truth's (% of pixels, mean ± s.d. over the {len(IMAGES)} photos) "
        f"within {depth['edge_band_px']} px of the border (L·r + 1 for the Sobel), and the "
        "largest share beyond it:\n\n"
        "| mode | border band (%) | beyond the band |\n|---|---|---|\n" + edge_rows + "\n\n"
        f"**Position leaks through the padding**: a 3-layer conv net (5×5 kernels, 6 "
        f"channels, no pooling; receptive radius 6 px, {leak['size']}×{leak['size']} white "
        "noise in, one value per pixel out) trained with MSE to output each pixel's distance "
        "to the nearest edge; held-out R² over the converged runs. A run whose last hidden "
        "layer died in training (ReLUs off for > 99% of the test values, so the output is "
        "nearly constant and R² ≈ 0 by failure) is restarted "
        f"from a new initialisation, up to {MAX_RESTARTS} times; restarts and runs still "
        "collapsed after them (left out of the R²) are counted. Position can leak only where "
        "the receptive field reaches the padding, i.e. within 6 px of an edge; on a "
        f"{leak['size']}×{leak['size']} image that is every pixel (the farthest is "
        f"{(leak['size'] - 1) // 2} px from an edge), so this measures the leak where it "
        "exists, not how far into a large image it goes:\n\n"
        "| padding | R² | restarts | still collapsed |\n|---|---|---|---|\n" + leak_rows
    )
    best = min(PADDING_MODES, key=lambda m: -wins[m])
    r2 = {m: float(np.mean(v)) if v else float("nan") for m, v in leak["r2"].items()}
    n_restarts = sum(leak["restarts"].values())
    restart_text = (
        f"{n_restarts} collapsed run{'s' if n_restarts != 1 else ''} restarted"
        if n_restarts
        else "no run collapsed"
    )
    mirror, bad = ("reflect", "symmetric", "replicate"), ("zeros", "circular")
    lo = min(min(geo[k][m] for m in bad) / max(geo[k][m] for m in mirror) for k in KERNELS)
    hi = max(max(geo[k][m] for m in bad) / min(geo[k][m] for m in mirror) for k in KERNELS)
    answer = (
        f"Padding invents the pixels beyond the border, so the output is wrong in a band as "
        f"wide as the receptive field's radius — L·r after L layers (a random ReLU net: "
        f"{'exactly L px, every mode and depth measured' if exact else 'see the table'}; "
        f"a stack of blurs: up to L px, its outermost taps weigh 4^−L) — and "
        f"right beyond it. What is invented matters: on {len(KERNELS)} kernels × "
        f"{len(IMAGES)} photos the mirror-like modes (symmetric, replicate, reflect) leave "
        f"{lo:.0f}–{hi:.0f}× less error energy in the band than zeros (which darkens the border) and "
        f"circular (which brings in the opposite edge); in the {n_disc} cases with kernels "
        f"wider than 3×3 (where symmetric and replicate differ) {best} is alone best in "
        f"{wins[best]}{f' (ties: {tie_text})' if ties else ''}. "
        f"An edge detector after {depths[-1]} blurs "
        f"misreads {np.mean(depth['edge_disagreement']['zeros']['band']):.0%} of the band's "
        f"pixels with zero padding, {np.mean(depth['edge_disagreement']['symmetric']['band']):.1%} "
        f"with symmetric. "
        f"Padding also tells a network where the border is: from white noise, a conv net "
        f"predicts each pixel's distance to the edge with R² "
        f"{mean_sd(leak['r2']['zeros'], 2)} with zero padding, "
        f"{mean_sd(leak['r2']['replicate'], 2)} with replicate, "
        f"{mean_sd(leak['r2']['reflect'], 2)} with reflect and "
        f"{mean_sd(leak['r2']['circular'], 2)} with circular padding, which cannot leak it "
        f"({restart_text}; on these 12×12 images every pixel is within the nets' 6 px "
        "receptive radius of an edge, the only place position can leak)."
    )
    return Result(
        name="boundary",
        title="The boundary",
        question="What happens at the image boundary, and how do padding choices affect it?",
        answer=answer,
        verdict=f"error band = L·r (random net: {'all modes, all depths' if exact else 'not always'}); "
        f"best mode {best} (alone best in {wins[best]}/{n_disc} cases with kernels > 3×3, "
        f"{sum(ties.values())} ties); position from padding: R² zeros {r2['zeros']:.2f}, "
        f"replicate {r2['replicate']:.2f}, reflect {r2['reflect']:.2f}, circular "
        f"{r2['circular']:.2f} ({restart_text})",
        key=f"best {best} ({wins[best]}/{n_disc}); leak R² {r2['zeros']:.2f} vs "
        f"{r2['circular']:.2f}",
        numbers={
            "output_sizes": sizes,
            "input_size": [n, n],
            "kernel_size": list(k.shape),
            "error_reach_px": single_reach,
            "border_error_energy": energy,
            "border_error_energy_geomean": geo,
            "best_mode_counts": wins,
            "best_mode_discriminating_cases": n_disc,
            "best_mode_ties": ties,
            "best_or_tied_3x3_counts": wins_3x3,
            **{k2: v for k2, v in depth.items()},
            "position_leak_r2": leak["r2"],
            "position_leak_restarts": leak["restarts"],
            "position_leak_still_collapsed": leak["failed"],
            "position_leak_image_px": leak["size"],
            "position_leak_receptive_radius_px": 6,
            "seeds": list(seeds),
        },
        figures=[fig_modes, fig_depth, fig_leak],
        details=details,
        limits=(
            f"Five photos, grey, at {size} px; five hand-picked kernels; one random net per "
            "depth; edges after blurring are one downstream task of many. The position leak "
            "uses white noise, so the content carries no position at all: with natural "
            "images circular padding also shows a seam (the opposite edges rarely match), "
            "which a net could use. The leak is measured on 12×12 images, where every pixel "
            "is within the 6 px receptive radius of an edge: it says that padding reveals "
            "position near edges, not how far into a large image (beyond the radius, "
            "nothing can leak). The tiny net (3 layers, 6 channels, a few hundred Adam "
            "steps at lr 0.01) sometimes dies (dead ReLUs, near-constant output); such runs are restarted "
            f"and counted, not averaged in. {len(seeds)} seeds; the s.d. is over seeds, data "
            "draws and (for restarted runs) initialisations. Only the two kernels wider "
            "than 3×3 can rank symmetric against replicate (with 3×3 they pad the same "
            "single pixel and tie by construction)."
        ),
    )
