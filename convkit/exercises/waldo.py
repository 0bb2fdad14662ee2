"""The chapter's Waldo detector: find a patch of one photo hidden in another by
normalised cross-correlation."""

from __future__ import annotations

import numpy as np

import convkit as ck
from convkit.exercises.common import Context, Result, photo, pyplot, save_figure


def ncc(scene: np.ndarray, template: np.ndarray, backend: str | None) -> np.ndarray:
    """Normalised cross-correlation of ``template`` at every valid position of
    ``scene``: the local means and energies come from correlations with a box."""
    t = template - template.mean()
    ones = np.ones_like(template)
    num = ck.correlate(scene, t, "valid", backend=backend)
    local_sum = ck.correlate(scene, ones, "valid", backend=backend)
    local_sq = ck.correlate(scene**2, ones, "valid", backend=backend)
    var = np.maximum(local_sq - local_sum**2 / template.size, 1e-12)
    return np.asarray(num / np.sqrt(var * np.sum(t**2)))


def run(ctx: Context) -> Result:
    """Plant a cat's face (dimmed, lower in contrast, noisy) into the astronaut photo and
    find it with the clean template."""
    rng = ctx.rng(71)
    scene = photo("astronaut", size=256 if ctx.quick else 512)
    cat = photo("chelsea", size=scene.shape[0] // 2)
    size = 24 if ctx.quick else 40
    r0, c0 = cat.shape[0] // 4, cat.shape[1] // 3
    waldo = cat[r0 : r0 + size, c0 : c0 + size]
    where = (
        int(rng.integers(0, scene.shape[0] - size)),
        int(rng.integers(0, scene.shape[1] - size)),
    )
    planted = scene.copy()
    # planted darker, lower in contrast and noisy: found by its pattern, not as a copy
    hidden = 0.7 * waldo + 0.1 + 0.05 * rng.standard_normal(waldo.shape)
    planted[where[0] : where[0] + size, where[1] : where[1] + size] = hidden
    score = ncc(planted, waldo, ctx.backend)
    found = np.unravel_index(int(np.argmax(score)), score.shape)
    error = float(np.hypot(found[0] - where[0], found[1] - where[1]))
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    axes[0].imshow(planted, cmap="gray")
    axes[0].add_patch(
        plt.Rectangle((found[1], found[0]), size, size, fill=False, color="r", lw=1.5)
    )
    axes[0].set_title("the scene, with the detection")
    axes[1].imshow(score, cmap="viridis")
    axes[1].set_title(f"normalised correlation (peak {score.max():.3f})")
    for ax in axes:
        ax.axis("off")
    figure = save_figure(fig, ctx, "waldo")
    return Result(
        name="waldo",
        title="Where's Waldo",
        verdict=f"a {size}×{size} patch of one photo hidden in another is found at {tuple(map(int, found))}, "
        f"{error:.1f} px from the truth {where}",
        key=f"error {error:.1f} px",
        numbers={
            "true_position": list(where),
            "found_position": [int(v) for v in found],
            "error_px": error,
            "peak_ncc": float(score.max()),
            "scene": list(scene.shape),
            "patch": size,
        },
        figures=[figure],
    )
