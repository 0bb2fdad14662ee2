"""A training loop with a progress bar on a terminal, and quiet everywhere else."""

from __future__ import annotations

import sys
import time
from typing import IO, Any, Protocol

import numpy as np

from convkit.nn.module import Module


class Loss(Protocol):
    def __call__(self, prediction: Any, target: Any, /) -> float: ...

    def backward(self) -> np.ndarray: ...


class Optimizer(Protocol):
    def step(self) -> None: ...

    def zero_grad(self) -> None: ...


def fit(
    model: Module,
    loss: Loss,
    optimizer: Optimizer,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int = 1,
    batch_size: int = 32,
    seed: int | None = 0,
    progress: bool | None = None,
    stream: IO[str] | None = None,
) -> list[float]:
    """Train ``model`` on ``(x, y)`` by minibatches; returns the mean loss of each epoch.

    A progress bar (epoch, loss, examples per second) is drawn on ``stream`` (default
    stderr) when it is a terminal, or when ``progress=True``; otherwise nothing is shown.

    >>> from convkit.nn import Linear, MSELoss, SGD
    >>> model = Linear(1, 1, seed=0)
    >>> x = np.linspace(-1, 1, 32, dtype=np.float32)[:, None]
    >>> history = fit(model, MSELoss(), SGD(model.parameters(), lr=0.5), x, 3 * x, epochs=30)
    >>> round(float(model.weight.value[0, 0]), 2)
    3.0
    """
    stream = sys.stderr if stream is None else stream
    show = stream.isatty() if progress is None else progress
    rng = np.random.default_rng(seed)
    n = len(x)
    history = []
    for epoch in range(epochs):
        order = rng.permutation(n) if seed is not None else np.arange(n)
        start, total, seen = time.perf_counter(), 0.0, 0
        for i in range(0, n, batch_size):
            batch = order[i : i + batch_size]
            optimizer.zero_grad()
            value = loss(model(x[batch]), y[batch])
            model.backward(loss.backward())
            optimizer.step()
            total += value * len(batch)
            seen += len(batch)
            if show:
                rate = seen / max(time.perf_counter() - start, 1e-9)
                done = int(20 * seen / n)
                stream.write(
                    f"\repoch {epoch + 1}/{epochs} [{'#' * done}{'.' * (20 - done)}] "
                    f"loss {total / seen:.4f}  {rate:,.0f} examples/s"
                )
                stream.flush()
        history.append(total / max(seen, 1))
        if show:
            stream.write("\n")
    return history
