"""Metrics for :func:`convkit.nn.fit` and :func:`convkit.nn.evaluate`: a number from a
batch's predictions and targets, averaged over the examples of a dataset.

A metric is named by a string (``"accuracy"``, ``"mse"``, ``"mae"``) or given as a
callable ``metric(prediction, target) -> float`` that returns the batch's mean; it is
reported under its ``__name__``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

Metric = Callable[[Any, Any], float]


def accuracy(prediction: Any, target: Any) -> float:
    """The fraction of examples whose predicted class is the target.

    ``prediction`` holds scores ``(N, K)`` (logits or probabilities; the class is the
    largest) and ``target`` class indices ``(N,)``; or both hold class indices.

    >>> accuracy(np.array([[0.1, 2.0], [3.0, 0.0]]), np.array([1, 1]))
    0.5
    """
    p, t = np.asarray(prediction), np.asarray(target)
    if p.ndim == t.ndim + 1 and t.dtype.kind in "iub":
        if p.shape[-1] < 2:
            raise ValueError(
                f"accuracy: prediction {p.shape} has one score per example; a classifier "
                f"for accuracy gives one score per class (two for a binary one), or pass a "
                f"metric that thresholds a single score"
            )
        return float(np.mean(np.argmax(p, axis=-1) == t))
    if p.shape == t.shape and p.dtype.kind in "iub" and t.dtype.kind in "iub":
        return float(np.mean(p == t))
    raise ValueError(
        f"accuracy compares scores (N, K) with integer labels (N,), or labels with labels; "
        f"got prediction {p.shape} {p.dtype} and target {t.shape} {t.dtype}"
    )


def _same_shape(name: str, p: np.ndarray, t: np.ndarray) -> None:
    if p.shape != t.shape:
        raise ValueError(
            f"{name}: prediction.shape={p.shape} does not match target.shape={t.shape}"
        )


def mse(prediction: Any, target: Any) -> float:
    """Mean squared error.

    >>> mse(np.array([1.0, 3.0]), np.array([0.0, 0.0]))
    5.0
    """
    p, t = np.asarray(prediction), np.asarray(target)
    _same_shape("mse", p, t)
    return float(np.mean((p - t) ** 2))


def mae(prediction: Any, target: Any) -> float:
    """Mean absolute error.

    >>> mae(np.array([1.0, -3.0]), np.array([0.0, 0.0]))
    2.0
    """
    p, t = np.asarray(prediction), np.asarray(target)
    _same_shape("mae", p, t)
    return float(np.mean(np.abs(p - t)))


BUILTIN: dict[str, Metric] = {"accuracy": accuracy, "mse": mse, "mae": mae}


def resolve(metrics: Iterable[str | Metric]) -> list[tuple[str, Metric]]:
    """``(name, function)`` for each metric named or given.

    >>> [name for name, _ in resolve(["accuracy", mae])]
    ['accuracy', 'mae']
    """
    if isinstance(metrics, str):
        metrics = [metrics]
    out: list[tuple[str, Metric]] = []
    for metric in metrics:
        if isinstance(metric, str):
            if metric not in BUILTIN:
                raise ValueError(
                    f"metrics: unknown metric {metric!r}; expected one of "
                    f"{sorted(BUILTIN)} or a callable (prediction, target) -> float"
                )
            out.append((metric, BUILTIN[metric]))
        elif callable(metric):
            name = getattr(metric, "__name__", type(metric).__name__)
            if not name.isidentifier():
                raise ValueError(
                    f"metrics: a metric is reported under its __name__, and {name!r} is not "
                    f"a name; define it with def (or set its __name__)"
                )
            out.append((name, metric))
        else:
            raise TypeError(f"metrics: {metric!r} is neither a metric name nor a callable")
    names = [name for name, _ in out]
    if len(set(names)) != len(names):
        raise ValueError(f"metrics: names must be distinct; got {names}")
    if "loss" in names:
        raise ValueError("metrics: 'loss' is reported already; name the metric otherwise")
    return out
