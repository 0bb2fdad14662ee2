"""A JAX backend for convkit: ``jax.lax.conv_general_dilated`` for any number of
spatial dimensions, and ``jax.numpy`` for everything convkit computes generically."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np

import convkit
from convkit import Backend, Capabilities, ConvSpec
from convkit.costs import CostModel

CONVKIT_PLUGIN_API = 1
"""The convkit plugin API this plugin was written for."""


def _x64() -> bool:
    """JAX computes in 64 bits only in its x64 mode (read without importing JAX)."""
    jax = sys.modules.get("jax")
    if jax is not None:
        return bool(jax.config.jax_enable_x64)
    return os.environ.get("JAX_ENABLE_X64", "").lower() in ("1", "true", "yes")


class JaxBackend(Backend):
    """JAX arrays in, JAX arrays out, on JAX's CPU device."""

    name = "jax"
    requires = ("jax",)
    install_hint = "pip install jax"

    @property  # type: ignore[override]
    def capabilities(self) -> Capabilities:
        dtypes = ("float32", "complex64") + (("float64", "complex128") if _x64() else ())
        return Capabilities(
            dtypes=dtypes,
            devices=("cpu",),
            array_types=("jax.Array",),
            costs=CostModel(mac_rate=1e11, tap_rate=2e9, fft_rate=3e9),
        )

    def owns(self, obj: object) -> bool:
        jax = sys.modules.get("jax")
        return jax is not None and isinstance(obj, jax.Array)

    def namespace(self) -> Any:
        import jax.numpy as jnp

        return jnp

    def asarray(self, obj: Any, dtype: str, options: Mapping[str, Any]) -> Any:
        import jax.numpy as jnp

        return jnp.asarray(obj, dtype=dtype)

    def to_numpy(self, obj: Any) -> np.ndarray:
        return np.asarray(obj)

    def restore(self, obj: Any, like: Any) -> Any:
        import jax.numpy as jnp

        return jnp.asarray(obj)

    def conv(
        self, x: Any, weight: Any, bias: Any | None, spec: ConvSpec, options: Mapping[str, Any]
    ) -> Any:
        if spec.method == "fft":
            return self.conv_fft(x, weight, bias, spec, options)
        from jax import lax

        padding = list(spec.padding)
        if spec.padding_mode != "zeros":
            x = self.pad(x, spec.padding, spec.padding_mode)
            padding = [(0, 0)] * spec.ndim
        y = lax.conv_general_dilated(
            x,
            weight,
            window_strides=spec.stride,
            padding=padding,
            rhs_dilation=spec.dilation,
            feature_group_count=spec.groups,
            precision=lax.Precision.HIGHEST,
        )
        if bias is not None:
            y = y + bias.reshape(-1, *(1,) * spec.ndim)
        return y


def laplacian_of_gaussian(sigma: float = 1.0, size: int | None = None) -> np.ndarray:
    """Laplacian of Gaussian (a blob and edge detector), zero-sum."""
    if not sigma > 0:
        raise ValueError(f"log: sigma={sigma!r} must be > 0")
    size = 2 * int(np.ceil(3 * sigma)) + 1 if size is None else size
    r = np.arange(size) - (size - 1) / 2
    yy, xx = np.meshgrid(r, r, indexing="ij")
    rr = (xx**2 + yy**2) / (2 * sigma**2)
    k = (rr - 1) * np.exp(-rr)
    return k - k.mean()


@convkit.hookimpl
def convkit_add_backends(registry: Any) -> None:
    """Register the ``jax`` backend."""
    registry.add(JaxBackend())


@convkit.hookimpl
def convkit_add_kernels(registry: Any) -> None:
    """Contribute the ``log`` (Laplacian of Gaussian) image kernel."""
    registry.add("log", "image", laplacian_of_gaussian, "Laplacian of Gaussian: log:sigma=2")
