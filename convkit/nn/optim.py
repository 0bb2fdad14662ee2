"""Optimisers: SGD with momentum and Adam, with PyTorch's update rules."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from convkit.nn.parameter import Parameter


class SGD:
    """``v = momentum * v + grad; p -= lr * v`` (``v = grad`` on the first step), as
    ``torch.optim.SGD``. :meth:`step` updates, :meth:`zero_grad` resets the gradients.

    >>> from convkit.nn import Parameter
    >>> p = Parameter(np.array([1.0]))
    >>> opt = SGD([p], lr=0.1)
    >>> p.grad = np.array([2.0]); opt.step(); p.value.tolist()
    [0.8]
    """

    def __init__(self, params: Iterable[Parameter], lr: float, momentum: float = 0.0) -> None:
        self.params = list(params)
        self.lr, self.momentum = lr, momentum
        self._velocity: list[np.ndarray | None] = [None] * len(self.params)

    def step(self) -> None:
        """Update every parameter from its gradient."""
        for i, p in enumerate(self.params):
            g = p.grad
            if self.momentum:
                v = self._velocity[i]
                v = g.copy() if v is None else self.momentum * v + g
                self._velocity[i] = v
                g = v
            p.value = (p.value - self.lr * g).astype(p.value.dtype)

    def zero_grad(self) -> None:
        """Reset the gradients of the parameters."""
        for p in self.params:
            p.zero_grad()


class Adam:
    """Adam with bias correction, as ``torch.optim.Adam``. :meth:`step` updates,
    :meth:`zero_grad` resets the gradients.

    >>> from convkit.nn import Parameter
    >>> p = Parameter(np.array([1.0]))
    >>> opt = Adam([p], lr=0.1)
    >>> p.grad = np.array([5.0]); opt.step(); p.value.round(6).tolist()  # first step: lr
    [0.9]
    """

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.params = list(params)
        self.lr, self.betas, self.eps = lr, betas, eps
        self._m = [np.zeros_like(p.value) for p in self.params]
        self._v = [np.zeros_like(p.value) for p in self.params]
        self._t = 0

    def step(self) -> None:
        """Update every parameter from its gradient."""
        self._t += 1
        b1, b2 = self.betas
        for i, p in enumerate(self.params):
            g = p.grad
            self._m[i] = b1 * self._m[i] + (1 - b1) * g
            self._v[i] = b2 * self._v[i] + (1 - b2) * g * g
            m_hat = self._m[i] / (1 - b1**self._t)
            v_hat = self._v[i] / (1 - b2**self._t)
            p.value = (p.value - self.lr * m_hat / (np.sqrt(v_hat) + self.eps)).astype(
                p.value.dtype
            )

    def zero_grad(self) -> None:
        """Reset the gradients of the parameters."""
        for p in self.params:
            p.zero_grad()
