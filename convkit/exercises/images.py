"""Small image classifiers and data helpers shared by exercises 2 and 3."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from convkit import nn
from convkit.exercises.common import Context, photo

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "immunohistochemistry")


def with_coordinates(x: np.ndarray) -> np.ndarray:
    """Append two channels holding each pixel's row and column in [-1, 1] (CoordConv)."""
    n, _, h, w = x.shape
    rows = np.broadcast_to(np.linspace(-1, 1, h, dtype=x.dtype)[:, None], (h, w))
    cols = np.broadcast_to(np.linspace(-1, 1, w, dtype=x.dtype)[None, :], (h, w))
    coords = np.broadcast_to(np.stack([rows, cols])[None], (n, 2, h, w))
    return np.concatenate([x, coords], axis=1)


def flatten_cnn(ctx: Context, cin: int, classes: int, size: int, seed: int) -> nn.Sequential:
    """The ordinary CNN: zero padding, two conv + max-pool stages, a flatten + dense head."""
    kw: dict[str, Any] = dict(padding="same", padding_mode="zeros", backend=ctx.backend)
    return nn.Sequential(
        nn.Conv2d(cin, 8, 3, seed=seed, **kw),
        nn.ReLU(),
        nn.MaxPool(2),
        nn.Conv2d(8, 16, 3, seed=seed + 1, **kw),
        nn.ReLU(),
        nn.MaxPool(2),
        nn.Flatten(),
        nn.Linear(16 * (size // 4) ** 2, classes, seed=seed + 2),
    )


def pooled_cnn(
    ctx: Context, cin: int, classes: int, seed: int, padding_mode: str = "circular"
) -> nn.Sequential:
    """The same two conv stages, then global max pooling and a linear layer: with
    circular padding the features do not depend on where things are (up to the
    stride-2 pooling's phase)."""
    kw: dict[str, Any] = dict(padding="same", padding_mode=padding_mode, backend=ctx.backend)
    return nn.Sequential(
        nn.Conv2d(cin, 8, 3, seed=seed, **kw),
        nn.ReLU(),
        nn.MaxPool(2),
        nn.Conv2d(8, 16, 3, seed=seed + 1, **kw),
        nn.ReLU(),
        nn.GlobalMaxPool(),
        nn.Linear(16, classes, seed=seed + 2),
    )


def mlp(cin: int, classes: int, size: int, hidden: int, seed: int) -> nn.Sequential:
    """A dense network on the flattened pixels: no locality, no weight sharing."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(cin * size * size, hidden, seed=seed),
        nn.ReLU(),
        nn.Linear(hidden, classes, seed=seed + 1),
    )


def n_params(model: nn.Module) -> int:
    """Number of trainable values."""
    return int(sum(p.value.size for p in model.parameters()))


def train_accuracy(
    ctx: Context,
    model: nn.Module,
    data: tuple[np.ndarray, np.ndarray],
    tests: dict[str, tuple[np.ndarray, np.ndarray]],
    *,
    epochs: int,
    seed: int,
    lr: float = 0.01,
) -> dict[str, float]:
    """Train with Adam and cross-entropy, return the accuracy on each test set."""
    x, y = data
    nn.fit(
        model,
        nn.CrossEntropyLoss(),
        nn.Adam(model.parameters(), lr=lr),
        x,
        y,
        epochs=epochs,
        batch_size=32,
        seed=seed,
        verbose=ctx.verbose,
    )
    out = {}
    for name, (xt, yt) in tests.items():
        out[name] = float(np.mean(np.argmax(nn.predict(model, xt), axis=1) == yt))
    return out


@functools.lru_cache(maxsize=2)
def photo_sources(size: int = 128) -> tuple[np.ndarray, ...]:
    """The bundled photographs, grey, ``size`` rows (read once, read-only)."""
    arrays = tuple(photo(name, size=size) for name in PHOTOS)
    for a in arrays:
        a.flags.writeable = False
    return arrays


def photo_patch(sources: Sequence[np.ndarray], rng: np.random.Generator, patch: int) -> np.ndarray:
    """A random ``patch`` × ``patch`` crop of a random photo, standardised."""
    src = sources[int(rng.integers(len(sources)))]
    r0, c0 = rng.integers(0, src.shape[0] - patch), rng.integers(0, src.shape[1] - patch)
    obj = src[r0 : r0 + patch, c0 : c0 + patch]
    return (obj - obj.mean()) / (obj.std() + 1e-6)


def filter_dtype(ctx: Context) -> type[np.floating[Any]]:
    """float64 unless the backend named by ``--backend`` declares no float64 (a
    third-party backend may not have it): then float32."""
    from convkit import list_backends

    if ctx.backend in (None, "auto"):
        return np.float64
    name = str(ctx.backend).split(":")[0]
    for info in list_backends():
        caps = info.capabilities
        if info.name == name and caps is not None and "float64" not in caps.dtypes:
            return np.float32
    return np.float64
