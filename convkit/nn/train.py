"""Training and evaluation loops with Keras' interface: :func:`fit` returns a
:class:`~convkit.nn.History`, :func:`evaluate` a dict of the loss and metrics, and
:func:`predict` the model's outputs.

The progress bar is tqdm's (one bar per epoch: examples done, examples per second, the
running loss and metrics); it is drawn only on a terminal unless ``verbose`` says so.
"""

from __future__ import annotations

import io
import math
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import IO, Any, Protocol

import numpy as np

from convkit.nn.callbacks import Callback, History
from convkit.nn.checks import positive_int
from convkit.nn.metrics import Metric, resolve
from convkit.nn.module import Module


class Loss(Protocol):
    """A loss object: called with ``(prediction, target)`` it returns the batch's loss
    and remembers what :meth:`backward` needs (:class:`~convkit.nn.MSELoss`,
    :class:`~convkit.nn.CrossEntropyLoss`)."""

    def __call__(self, prediction: Any, target: Any, /) -> float: ...

    def backward(self) -> np.ndarray: ...


class Optimizer(Protocol):
    """An optimiser: :meth:`step` updates the parameters from their gradients,
    :meth:`zero_grad` resets the gradients (:class:`~convkit.nn.SGD`,
    :class:`~convkit.nn.Adam`)."""

    def step(self) -> None: ...

    def zero_grad(self) -> None: ...


DEFAULT_BATCH_SIZE = 32


def _check_data(x: Any, y: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    xa, ya = np.asarray(x), np.asarray(y)
    if xa.ndim == 0 or ya.ndim == 0 or len(xa) != len(ya):
        raise ValueError(
            f"{what}: x and y need one entry per example along their first axis; got "
            f"x.shape={xa.shape} and y.shape={ya.shape}"
        )
    if len(xa) == 0:
        raise ValueError(f"{what}: x and y hold no examples (x.shape={xa.shape})")
    return xa, ya


class _Means:
    """Running means of named values, weighted by the examples of each batch."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0

    def add(self, values: dict[str, float], n: int) -> None:
        for key, value in values.items():
            self.sums[key] = self.sums.get(key, 0.0) + value * n
        self.count += n

    def means(self, prefix: str = "") -> dict[str, float]:
        return {prefix + k: v / max(self.count, 1) for k, v in self.sums.items()}


def _bar(verbose: int | None, file: IO[str], total: int, desc: str) -> Any:
    """A tqdm bar: drawn on a terminal (``verbose=None``), always (``1``), never (``0``,
    ``2``). A terminal that reports no size (a bare pseudo-terminal) gets 80 columns
    and 24 rows, where tqdm would draw nothing."""
    from tqdm import tqdm

    class Bar(tqdm):
        monitor_interval = 0  # no monitor thread left running after fit

    disable = None if verbose is None else verbose != 1
    try:
        width = os.get_terminal_size(file.fileno()).columns
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        width = 0
    return Bar(
        total=total,
        desc=desc,
        unit="ex",
        file=file,
        disable=disable,
        leave=True,
        ncols=None if width else 80,
        nrows=None if width else 24,
    )


def _postfix(values: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in values.items())


def fit(
    model: Module,
    loss: Loss,
    optimizer: Optimizer,
    x: Any,
    y: Any,
    *,
    epochs: int = 1,
    batch_size: int = DEFAULT_BATCH_SIZE,
    validation_data: tuple[Any, Any] | None = None,
    metrics: Iterable[str | Metric] = (),
    shuffle: bool = True,
    seed: int | None = None,
    callbacks: Sequence[Callback] = (),
    verbose: int | None = None,
    file: IO[str] | None = None,
) -> History:
    """Train ``model`` on ``(x, y)`` by minibatches and return a :class:`History`.

    Each step: ``optimizer.zero_grad()``, ``loss(model(xb), yb)``,
    ``model.backward(loss.backward())``, ``optimizer.step()``. ``History.history`` maps
    ``"loss"`` and each metric (means over the epoch's training batches, as Keras
    reports them) and, given ``validation_data=(x_val, y_val)``, ``"val_loss"`` and
    ``"val_<metric>"`` (from :func:`evaluate` after each epoch) to one value per epoch.

    ``metrics`` are names (``"accuracy"``, ``"mse"``, ``"mae"``) or callables
    ``(prediction, target) -> float``. The examples are shuffled every epoch with
    ``numpy.random.default_rng(seed)`` unless ``shuffle=False``. ``callbacks`` receive
    the epoch's values (:class:`~convkit.nn.EarlyStopping`, ...). The model trains in
    training mode, is evaluated in evaluation mode, and is left in the mode it had.

    Callbacks get ``params`` with ``epochs``, ``steps``, ``samples``, ``batch_size`` and
    ``metrics`` (the names the logs will hold).

    ``verbose``: ``None`` draws a tqdm progress bar on ``file`` (default stderr) only
    when it is a terminal; ``1`` always; ``2`` one line per epoch; ``0`` nothing. A loss
    that is not finite stops training with :class:`FloatingPointError`.

    >>> from convkit.nn import Linear, MSELoss, SGD
    >>> model = Linear(1, 1, seed=0)
    >>> x = np.linspace(-1, 1, 32, dtype=np.float32)[:, None]
    >>> history = fit(model, MSELoss(), SGD(model.parameters(), lr=0.5), x, 3 * x, epochs=30, seed=0)
    >>> round(float(model.weight.value[0, 0]), 2), len(history.history["loss"])
    (3.0, 30)
    """
    x, y = _check_data(x, y, "fit")
    epochs = positive_int("epochs", epochs, zero=True)
    batch_size = positive_int("batch_size", batch_size)
    if verbose not in (None, 0, 1, 2):
        raise ValueError(f"verbose={verbose!r}; expected None, 0, 1 or 2")
    if validation_data is not None:
        if not (isinstance(validation_data, tuple | list) and len(validation_data) == 2):
            raise ValueError("validation_data must be a pair (x_val, y_val)")
        validation = _check_data(*validation_data, "validation_data")
    named = resolve(metrics)
    stream = sys.stderr if file is None else file
    n = len(x)
    steps = math.ceil(n / batch_size)
    history = History()
    every: list[Callback] = [history, *callbacks]
    names = ["loss", *(k for k, _ in named)]
    if validation_data is not None:
        names += [f"val_{k}" for k in names]
    params = {"epochs": epochs, "steps": steps, "samples": n, "batch_size": batch_size}
    for cb in every:
        cb.set_model(model)
        cb.set_params({**params, "metrics": names})
    rng = np.random.default_rng(seed)
    was_training = model.training
    try:
        for cb in every:
            cb.on_train_begin()
        for epoch in range(epochs):
            for cb in every:
                cb.on_epoch_begin(epoch)
            model.train()
            order = rng.permutation(n) if shuffle else np.arange(n)
            running = _Means()
            bar = _bar(verbose, stream, n, f"epoch {epoch + 1}/{epochs}")
            try:
                for step in range(steps):
                    batch = order[step * batch_size : (step + 1) * batch_size]
                    xb, yb = x[batch], y[batch]
                    optimizer.zero_grad()
                    prediction = model(xb)
                    value = float(loss(prediction, yb))
                    if not math.isfinite(value):
                        raise FloatingPointError(
                            f"the loss became {value} at epoch {epoch + 1}, batch {step + 1}; "
                            f"lower the learning rate or check the data"
                        )
                    model.backward(loss.backward())
                    optimizer.step()
                    logs = {"loss": value, **{k: float(f(prediction, yb)) for k, f in named}}
                    running.add(logs, len(batch))
                    for cb in every:
                        cb.on_train_batch_end(step, logs)
                    bar.set_postfix_str(_postfix(running.means()), refresh=False)
                    bar.update(len(batch))
                epoch_logs = running.means()
                if validation_data is not None:
                    scores = _evaluate(model, *validation, loss, named, batch_size)
                    epoch_logs.update({f"val_{k}": v for k, v in scores.items()})
                bar.set_postfix_str(_postfix(epoch_logs))
            finally:
                bar.close()
            if verbose == 2:
                print(f"epoch {epoch + 1}/{epochs}: {_postfix(epoch_logs)}", file=stream)
            for cb in every:
                cb.on_epoch_end(epoch, epoch_logs)
            if any(cb.stop_training for cb in every):
                break
        for cb in every:
            cb.on_train_end()
    finally:
        model.train(was_training)
    return history


def _batches(n: int, batch_size: int | None) -> Iterable[slice]:
    size = DEFAULT_BATCH_SIZE if batch_size is None else positive_int("batch_size", batch_size)
    return (slice(i, i + size) for i in range(0, n, size))


def _in_eval_mode(model: Module, run: Callable[[], Any]) -> Any:
    was_training = model.training
    model.eval()
    try:
        return run()
    finally:
        model.train(was_training)


def evaluate(
    model: Module,
    x: Any,
    y: Any,
    *,
    loss: Loss | None = None,
    metrics: Iterable[str | Metric] = ("accuracy",),
    batch_size: int | None = None,
) -> dict[str, float]:
    """The mean ``loss`` (when given) and ``metrics`` of ``model`` over ``(x, y)``, in
    evaluation mode, in batches of ``batch_size`` (default 32, as Keras); the model is
    left in the mode it had.

    >>> from convkit.nn import Linear, MSELoss
    >>> model = Linear(1, 1, seed=0)
    >>> model.weight, model.bias = np.ones((1, 1), np.float32), np.zeros(1, np.float32)
    >>> x = np.ones((4, 1), dtype=np.float32)
    >>> evaluate(model, x, 3 * x, loss=MSELoss(), metrics=["mae"])
    {'loss': 4.0, 'mae': 2.0}
    """
    x, y = _check_data(x, y, "evaluate")
    return _evaluate(model, x, y, loss, resolve(metrics), batch_size)


def _evaluate(
    model: Module,
    x: np.ndarray,
    y: np.ndarray,
    loss: Loss | None,
    named: list[tuple[str, Metric]],
    batch_size: int | None,
) -> dict[str, float]:
    def run() -> dict[str, float]:
        means = _Means()
        for part in _batches(len(x), batch_size):
            prediction = model(x[part])
            values = {} if loss is None else {"loss": float(loss(prediction, y[part]))}
            values.update({k: float(f(prediction, y[part])) for k, f in named})
            means.add(values, len(x[part]))
        return means.means()

    result: dict[str, float] = _in_eval_mode(model, run)
    return result


def predict(model: Module, x: Any, *, batch_size: int | None = None) -> np.ndarray:
    """The model's outputs for ``x``, in evaluation mode and in batches (default 32).

    >>> from convkit.nn import Linear
    >>> predict(Linear(3, 2, seed=0), np.zeros((5, 3), dtype=np.float32)).shape
    (5, 2)
    """
    xa = np.asarray(x)
    if xa.ndim == 0 or len(xa) == 0:
        raise ValueError(f"predict: x needs one or more examples; got shape {xa.shape}")

    def run() -> np.ndarray:
        return np.concatenate([np.asarray(model(xa[p])) for p in _batches(len(xa), batch_size)])

    out: np.ndarray = _in_eval_mode(model, run)
    return out
