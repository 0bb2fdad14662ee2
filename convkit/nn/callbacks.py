"""Callbacks of :func:`convkit.nn.fit`, with Keras' names: :class:`History`,
:class:`EarlyStopping`, and the base :class:`Callback` to write one."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from convkit.nn.module import Module


class Callback:
    """Hooks called by :func:`convkit.nn.fit`. ``logs`` maps ``"loss"``, each metric,
    and with validation data ``"val_loss"`` and ``"val_<metric>"``, to the epoch's
    values. Set :attr:`stop_training` to end training after the current epoch.

    >>> class Print(Callback):
    ...     def on_epoch_end(self, epoch, logs):
    ...         print(epoch, sorted(logs))
    """

    model: Module | None = None
    params: dict[str, Any]
    stop_training: bool = False
    """Set by a callback to stop :func:`~convkit.nn.fit` after the current epoch."""

    def set_model(self, model: Module) -> None:
        """Called once, before training, with the model being trained."""
        self.model = model

    def set_params(self, params: dict[str, Any]) -> None:
        """Called once, before training: ``epochs``, ``steps`` (batches per epoch),
        ``samples``, ``batch_size``, ``metrics`` (the names the logs will hold)."""
        self.params = params

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
        """Before the first epoch."""

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        """Before each epoch (counted from 0)."""

    def on_train_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None:
        """After each optimiser step, with the batch's ``"loss"`` and metrics."""

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        """After each epoch, with the epoch's values."""

    def on_train_end(self, logs: dict[str, float] | None = None) -> None:
        """After the last epoch (also when training stopped early)."""


class History(Callback):
    """What :func:`convkit.nn.fit` returns: :attr:`history` maps each name in the logs
    (``"loss"``, ``"val_loss"``, ``"val_accuracy"``, ...) to one value per epoch, and
    :attr:`epoch` lists the epochs run.

    >>> h = History()
    >>> h.on_train_begin(); h.on_epoch_end(0, {"loss": 0.5}); h.on_epoch_end(1, {"loss": 0.25})
    >>> h.history, h.epoch
    ({'loss': [0.5, 0.25]}, [0, 1])
    """

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.params = {}

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
        self.history, self.epoch = {}, []

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)

    def __repr__(self) -> str:
        last = ", ".join(f"{k}={v[-1]:.4g}" for k, v in self.history.items() if v)
        return f"History(epochs={len(self.epoch)}{', ' if last else ''}{last})"


class EarlyStopping(Callback):
    """Stop training when ``monitor`` has not improved for ``patience`` epochs.

    ``mode`` is ``"min"``, ``"max"`` or ``"auto"`` (``"max"`` for names containing
    ``"acc"``, ``"min"`` otherwise); an improvement must exceed ``min_delta``. With
    ``restore_best=True`` (Keras' ``restore_best_weights``) the model ends training
    with the parameters and buffers of its best epoch — whether training stopped early
    or ran all its epochs (Keras restores only when it stops early). :attr:`best`,
    :attr:`best_epoch` and :attr:`stopped_epoch` (``None`` when it ran to the end)
    record what happened.

    >>> stop = EarlyStopping("val_loss", patience=1)
    >>> stop.on_train_begin()
    >>> for epoch, value in enumerate([3.0, 2.0, 2.5]):
    ...     stop.on_epoch_end(epoch, {"val_loss": value})
    >>> stop.stop_training, stop.best, stop.best_epoch, stop.stopped_epoch
    (True, 2.0, 1, 2)
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 0,
        restore_best: bool = False,
        *,
        min_delta: float = 0.0,
        mode: str = "auto",
    ) -> None:
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode={mode!r}; expected 'auto', 'min' or 'max'")
        if not isinstance(patience, int) or patience < 0:
            raise ValueError(f"patience={patience!r} must be a non-negative integer")
        if min_delta < 0:
            raise ValueError(f"min_delta={min_delta!r} must be non-negative")
        self.monitor, self.patience, self.restore_best = monitor, patience, restore_best
        self.min_delta = float(min_delta)
        self.mode = ("max" if "acc" in monitor else "min") if mode == "auto" else mode
        self.on_train_begin()

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
        names = getattr(self, "params", {}).get("metrics")
        if names is not None and self.monitor not in names:
            raise ValueError(
                f"EarlyStopping(monitor={self.monitor!r}): fit() reports {names}"
                f"{' (val_* needs validation_data)' if self.monitor.startswith('val_') else ''}"
            )
        self.best = -math.inf if self.mode == "max" else math.inf
        self.best_epoch: int | None = None
        self.stopped_epoch: int | None = None
        self.wait = 0
        self.stop_training = False
        self._best_state: dict[str, np.ndarray] | None = None

    def _improved(self, value: float) -> bool:
        if self.mode == "max":
            return value > self.best + self.min_delta
        return value < self.best - self.min_delta

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        if self.monitor not in logs:
            raise ValueError(
                f"EarlyStopping(monitor={self.monitor!r}): the logs hold {sorted(logs)}"
            )
        value = float(logs[self.monitor])
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best and self.model is not None:
                self._best_state = self.model.state_dict()
            return
        self.wait += 1
        if self.wait >= self.patience:  # Keras' count: patience 0 and 1 both stop at once
            self.stop_training = True
            self.stopped_epoch = epoch

    def on_train_end(self, logs: dict[str, float] | None = None) -> None:
        if self.restore_best and self.model is not None and self._best_state is not None:
            self.model.load_state_dict(self._best_state)
