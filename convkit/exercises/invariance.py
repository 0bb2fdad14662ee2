"""Exercise 2: when translation invariance is wrong."""

from __future__ import annotations

from typing import Any

import numpy as np

import convkit as ck
from convkit import nn
from convkit.exercises.common import Context, Result, photo, pyplot, save_figure
from convkit.testing import rounding_bound

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "immunohistochemistry")


def equivariance(ctx: Context) -> dict[str, float]:
    """Conv of a shifted image against the shifted conv, circular and zero padding.

    Equal in exact arithmetic is not equal in floating point: a pixel computed at another
    position may go through another kernel of the backend (a BLAS's edge kernel), so the
    differences that should vanish are compared with ``rounding_bound``
    (:func:`~convkit.testing.rounding_bound` of the conv's sums)."""
    rng = ctx.rng(21)
    scene = photo("camera", size=256)  # (256, 256)
    k = rng.standard_normal((7, 7))
    r = 3
    w = k[None, None]
    x = scene[:128, :128]
    shift = (9, 13)
    kw: dict[str, Any] = dict(padding="same", method="direct", backend=ctx.backend)
    y = ck.conv(x[None, None], w, padding_mode="circular", **kw)[0, 0]
    y_shifted = ck.conv(np.roll(x, shift, (0, 1))[None, None], w, padding_mode="circular", **kw)[
        0, 0
    ]
    circular = float(np.max(np.abs(y_shifted - np.roll(y, shift, (0, 1)))))
    magnitude = ck.conv(np.abs(x)[None, None], np.abs(w), padding_mode="circular", **kw)
    bound = rounding_bound(np.asarray(y).dtype, float(np.max(magnitude)), terms=w.size)
    # zero padding, a real translation: the same scene seen through a window moved by d
    d = 16
    a = scene[:128, :128]
    b = scene[d : d + 128, d : d + 128]
    ya = ck.conv(a[None, None], w, padding_mode="zeros", **kw)[0, 0]
    yb = ck.conv(b[None, None], w, padding_mode="zeros", **kw)[0, 0]
    diff = np.abs(yb[: 128 - d, : 128 - d] - ya[d:, d:])  # the same scene points
    n = diff.shape[0]
    # the overlap's edges are the top/left border of window b and the bottom/right one of a
    edge = np.minimum(np.arange(n), np.arange(n)[::-1])
    dist = np.minimum.outer(edge, edge)
    inner = float(diff[dist >= r].max())
    border = float(diff[dist < r].max())
    reach = int(dist[diff > bound].max()) + 1 if (diff > bound).any() else 0
    return {
        "rounding_bound": bound,
        "circular_max_diff": circular,
        "zeros_interior_max_diff": inner,
        "zeros_border_max_diff": border,
        "zeros_error_reach_px": reach,
        "kernel_radius": r,
    }


def objects(
    n: int, rng: np.random.Generator, size: int = 32, patch: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """Patches of real photos placed in the upper (label 0) or lower (1) half of a noisy
    canvas: the same objects, only their height tells the label."""
    sources = [photo(name, size=128) for name in PHOTOS]
    x = 0.1 * rng.standard_normal((n, 1, size, size))
    labels = rng.integers(0, 2, n)
    for i in range(n):
        src = sources[rng.integers(len(sources))]
        r0, c0 = rng.integers(0, src.shape[0] - patch), rng.integers(0, src.shape[1] - patch)
        obj = src[r0 : r0 + patch, c0 : c0 + patch]
        obj = (obj - obj.mean()) / (obj.std() + 1e-6)
        row = rng.integers(0, size // 2 - patch) + (size // 2 if labels[i] else 0)
        col = rng.integers(0, size - patch)
        x[i, 0, row : row + patch, col : col + patch] += obj
    return x.astype(np.float32), labels


def with_coordinates(x: np.ndarray) -> np.ndarray:
    """Append two channels holding each pixel's row and column in [-1, 1]."""
    n, _, h, w = x.shape
    rows = np.broadcast_to(np.linspace(-1, 1, h, dtype=np.float32)[:, None], (h, w))
    cols = np.broadcast_to(np.linspace(-1, 1, w, dtype=np.float32)[None, :], (h, w))
    coords = np.broadcast_to(np.stack([rows, cols])[None], (n, 2, h, w))
    return np.concatenate([x, coords], axis=1)


def train_net(
    ctx: Context,
    x: np.ndarray,
    y: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    in_channels: int,
    seed: int,
) -> float:
    """Conv (circular padding) -> ReLU -> global max pool -> linear; held-out accuracy."""
    model = nn.Sequential(
        nn.Conv2d(
            in_channels,
            8,
            5,
            padding="same",
            padding_mode="circular",
            backend=ctx.backend,
            seed=seed,
        ),
        nn.ReLU(),
        nn.GlobalMaxPool(),
        nn.Linear(8, 2, seed=seed + 1),
    )
    nn.fit(
        model,
        nn.CrossEntropyLoss(),
        nn.Adam(model.parameters(), lr=0.02),
        x,
        y,
        epochs=6 if ctx.quick else 15,
        batch_size=50,
        seed=seed,
        verbose=ctx.verbose,
    )
    return float(np.mean(np.argmax(model(x_test), axis=1) == y_test))


def run(ctx: Context) -> Result:
    """Equivariance measured, then a task where position is the label."""
    eq = equivariance(ctx)
    rng = ctx.rng(22)
    n_train, n_test = (300, 300) if ctx.quick else (800, 400)
    x, y = objects(n_train, rng)
    x_test, y_test = objects(n_test, rng)
    plain = train_net(ctx, x, y, x_test, y_test, 1, seed=3)
    coord = train_net(ctx, with_coordinates(x), y, with_coordinates(x_test), y_test, 3, seed=3)

    plt = pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(10, 2.8))
    for ax, i in zip(axes, range(4), strict=True):
        ax.imshow(x_test[i, 0], cmap="gray")
        ax.set_title("upper" if y_test[i] == 0 else "lower")
        ax.axis("off")
    fig.suptitle("real-photo patches: only their height tells the label")
    figure = save_figure(fig, ctx, "invariance-task")
    numbers = {
        **eq,
        "plain_net_accuracy": plain,
        "coordinate_net_accuracy": coord,
        "train_examples": n_train,
        "test_examples": n_test,
    }
    circular = eq["circular_max_diff"]
    how = (
        "exactly equivariant"
        if circular == 0
        else "equivariant up to rounding"
        if circular <= eq["rounding_bound"]
        else "not equivariant"
    )
    return Result(
        name="invariance",
        title="When translation invariance is wrong",
        verdict=f"circular padding is {how} (diff {circular:.0e}); "
        f"zero padding breaks it within {eq['zeros_error_reach_px']} px of the border; "
        f"position-labelled photos: plain conv net {plain:.0%}, with coordinate channels {coord:.0%}",
        key=f"{plain:.0%} vs {coord:.0%}",
        numbers=numbers,
        figures=[figure],
    )
