"""Losses: a scalar from a prediction and a target, and its gradient."""

from __future__ import annotations

from typing import Any

import numpy as np


class MSELoss:
    """Mean (or sum, ``reduction="sum"``) of squared differences.

    >>> loss = MSELoss()
    >>> float(loss(np.array([1.0, 3.0]), np.array([0.0, 0.0]))), loss.backward().tolist()
    (5.0, [1.0, 3.0])
    """

    def __init__(self, reduction: str = "mean") -> None:
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction={reduction!r}; expected 'mean' or 'sum'")
        self.reduction = reduction
        self._diff: np.ndarray | None = None

    def __call__(self, prediction: Any, target: Any) -> float:
        p, t = np.asarray(prediction), np.asarray(target)
        if p.shape != t.shape:
            raise ValueError(f"prediction.shape={p.shape} does not match target.shape={t.shape}")
        self._diff = p - t
        total = float(np.sum(self._diff**2))
        return total / p.size if self.reduction == "mean" else total

    def backward(self) -> np.ndarray:
        """Gradient with respect to the prediction of the last call."""
        if self._diff is None:
            raise RuntimeError("MSELoss.backward() called before the loss was computed")
        g = 2 * self._diff
        return g / self._diff.size if self.reduction == "mean" else g


class CrossEntropyLoss:
    """Softmax cross-entropy of logits ``(N, K)`` against integer labels ``(N,)``, averaged
    over the batch (as ``torch.nn.functional.cross_entropy``).

    >>> loss = CrossEntropyLoss()
    >>> round(loss(np.array([[0.0, 0.0]]), np.array([1])), 4)  # log 2
    0.6931
    >>> loss.backward().tolist()
    [[0.5, -0.5]]
    """

    def __init__(self) -> None:
        self._probs: np.ndarray | None = None
        self._labels: np.ndarray | None = None

    def __call__(self, logits: Any, labels: Any) -> float:
        z = np.asarray(logits)
        y = np.asarray(labels)
        if z.ndim != 2 or y.shape != (z.shape[0],) or y.dtype.kind not in "iu":
            raise ValueError(
                f"expected logits (N, K) and integer labels (N,); got logits.shape={z.shape} "
                f"and labels.shape={y.shape} with dtype {y.dtype}"
            )
        if y.size and (y.min() < 0 or y.max() >= z.shape[1]):
            raise ValueError(f"labels must lie in [0, {z.shape[1]}); got {y.min()}..{y.max()}")
        shifted = z - z.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        self._probs, self._labels = np.exp(log_probs), y
        return float(-log_probs[np.arange(len(y)), y].mean())

    def backward(self) -> np.ndarray:
        """Gradient with respect to the logits of the last call."""
        if self._probs is None or self._labels is None:
            raise RuntimeError("CrossEntropyLoss.backward() called before the loss was computed")
        g = self._probs.copy()
        g[np.arange(len(self._labels)), self._labels] -= 1
        return g / len(self._labels)
