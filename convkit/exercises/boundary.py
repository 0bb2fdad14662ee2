"""Exercise 3: what happens at the image boundary."""

from __future__ import annotations

import numpy as np

import convkit as ck
from convkit.adapters import image, kernels
from convkit.exercises.common import Context, Result, photo, pyplot, save_figure
from convkit.padding import PADDING_MODES


def run(ctx: Context) -> Result:
    """Output sizes per mode, every padding mode against the true surroundings."""
    full = photo("astronaut", size=256 if ctx.quick else 512)
    n = full.shape[0] // 2
    top = n // 2
    crop = full[top : top + n, top : top + n]  # the input; its real surroundings are known
    k = kernels.gaussian(sigma=3.0 if ctx.quick else 4.0)
    r = k.shape[0] // 2
    sizes = {
        mode: list(np.shape(ck.convolve(crop, k, mode, backend=ctx.backend)))
        for mode in ("valid", "same", "full")
    }
    truth = image.filter(full[None], k, backend=ctx.backend)[0][top : top + n, top : top + n]
    outputs, energy, reach = {}, {}, {}
    edge = np.minimum(np.arange(n), np.arange(n)[::-1])
    dist = np.minimum.outer(edge, edge)
    for mode in PADDING_MODES:
        out = image.filter(crop[None], k, padding_mode=mode, backend=ctx.backend)[0]
        err = out - truth
        outputs[mode] = out
        band = dist < r
        energy[mode] = float(np.sum(err[band] ** 2) / np.sum(truth[band] ** 2))
        wrong = np.abs(err) > 1e-9
        reach[mode] = int(dist[wrong].max()) + 1 if wrong.any() else 0
    best = min(energy, key=energy.__getitem__)
    worst = max(energy, key=energy.__getitem__)
    agree = max(reach.values())

    plt = pyplot()
    fig, axes = plt.subplots(2, len(PADDING_MODES) + 1, figsize=(14, 5.2))
    corner = slice(0, 3 * r)
    panels = [("truth (real surroundings)", truth), *outputs.items()]
    for i, (title, arr) in enumerate(panels):
        axes[0, i].imshow(arr[corner, corner], cmap="gray", vmin=0, vmax=1)
        axes[0, i].set_title(title, fontsize=9)
        axes[0, i].axis("off")
        err = np.abs(arr - truth)[corner, corner]
        axes[1, i].imshow(err, cmap="magma", vmin=0, vmax=0.3)
        axes[1, i].set_title("error" if i else "", fontsize=9)
        axes[1, i].axis("off")
    fig.suptitle(f"top-left corner, Gaussian σ={k.shape[0] // 6}, kernel radius {r} px")
    figure = save_figure(fig, ctx, "boundary-modes")
    table = "\n".join(f"| {m} | {energy[m]:.2e} | {reach[m]} |" for m in PADDING_MODES)
    return Result(
        name="boundary",
        title="The boundary",
        verdict=f"on a real photo {best} pads best (border error energy {energy[best]:.1e}) and "
        f"{worst} worst ({energy[worst]:.1e}); all modes agree with the truth beyond {agree} px, "
        f"the kernel radius {r}",
        key=f"best {best}, agree beyond {agree} px",
        numbers={
            "output_sizes": sizes,
            "input_size": [n, n],
            "kernel_size": list(k.shape),
            "border_error_energy": energy,
            "error_reach_px": reach,
        },
        figures=[figure],
        details="| padding mode | relative error energy in the border band | error reaches (px) |\n"
        "|---|---|---|\n" + table,
    )
