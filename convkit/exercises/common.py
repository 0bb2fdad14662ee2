"""What every exercise shares: its context, its result, real photos, figures."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from convkit.fileio import atomic_output


@dataclass
class Context:
    """How to run: on which backend, how thoroughly, where figures go."""

    backend: str | None = None
    quick: bool = False
    out: Path = Path("out/exercises")
    progress: bool | None = None
    seed: int = 0
    backend_source: str | None = None
    """What the report says chose ``backend`` (``"--backend"``, the command's default);
    ``None``: where :func:`convkit.get_backend` finds the choice."""
    audio: Path | None = None
    """A recording of the user's (``--audio``) that exercise 4 denoises as well."""

    @property
    def verbose(self) -> int | None:
        """``progress`` as :func:`convkit.nn.fit`'s ``verbose``: a bar on a terminal
        (``None``), always (``True``) or never (``False``)."""
        return None if self.progress is None else int(self.progress)

    def rng(self, salt: int = 0) -> np.random.Generator:
        """A generator seeded per exercise, so each result is reproducible alone."""
        return np.random.default_rng(self.seed * 1000 + salt)


@dataclass
class Result:
    """What an exercise measured, the one-line verdict, and its figures."""

    name: str
    title: str
    verdict: str
    key: str
    numbers: dict[str, Any] = field(default_factory=dict)
    figures: list[str] = field(default_factory=list)
    details: str = ""
    """The evidence in Markdown: tables, derivations."""
    question: str = ""
    """The chapter's question, in a sentence or two."""
    answer: str = ""
    """The answer in two or three sentences, with its numbers."""
    limits: str = ""
    """What the evidence does not show."""


def photo(name: str, grey: bool = True, size: int | None = None) -> np.ndarray:
    """A photograph bundled with scikit-image, float64 in [0, 1]: ``(H, W)`` when grey,
    else ``(3, H, W)``; ``size`` block-averages it down to ``size`` rows (keeping the
    aspect)."""
    from skimage import color, data

    img = getattr(data, name)()
    arr = np.asarray(img, dtype=np.float64)
    if arr.max() > 1.0:
        arr = arr / 255.0
    if arr.ndim == 3:
        arr = arr[..., :3]
        arr = color.rgb2gray(arr) if grey else arr.transpose(2, 0, 1)
    if size is not None:
        factor = max(1, arr.shape[-2] // size)
        h, w = arr.shape[-2] // factor * factor, arr.shape[-1] // factor * factor
        arr = arr[..., :h, :w]
        arr = arr.reshape(*arr.shape[:-2], h // factor, factor, w // factor, factor).mean(
            axis=(-3, -1)
        )
    return arr


def save_figure(fig: Any, ctx: Context, name: str) -> str:
    """Save a matplotlib figure as ``figures/NAME.png`` under the output directory,
    atomically; returns the path relative to the report."""
    import matplotlib.pyplot as plt

    rel = f"figures/{name}.png"
    path = ctx.out / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as f:
        fig.savefig(f, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return rel


def pyplot() -> Any:
    """matplotlib's pyplot on the file-only Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def backends_for(
    ctx: Context, dtype: str = "float64", ndim: int = 2, devices: tuple[str, ...] = ("cpu",)
) -> tuple[list[str], dict[str, str]]:
    """The backends an exercise runs a case on, and those it skips with the reason.

    A named ``--backend`` (anything but ``auto``) is the only one; with ``auto`` (or no
    choice) every available backend whose declared capabilities cover ``dtype``,
    ``ndim`` spatial dimensions and one of ``devices`` — so a third-party backend without
    float64 is skipped with that reason, not a crash.
    """
    from convkit import list_backends

    if ctx.backend not in (None, "auto"):
        return [str(ctx.backend).split(":")[0]], {}
    run, skipped = [], {}
    for info in list_backends():
        caps = info.capabilities
        if not info.available:
            skipped[info.name] = f"not available ({info.reason})"
        elif caps is None:
            skipped[info.name] = "declares no capabilities"
        elif dtype not in caps.dtypes:
            skipped[info.name] = f"no {dtype} (it declares {', '.join(caps.dtypes)})"
        elif not caps.supports_ndim(ndim):
            skipped[info.name] = f"no {ndim}-d convolution ({caps.describe_ndim()})"
        elif not set(devices) & set(caps.devices):
            skipped[info.name] = f"runs on {', '.join(caps.devices)}"
        else:
            run.append(info.name)
    return run, skipped


def mean_sd(values: Any, digits: int = 3) -> str:
    """``mean ± s.d. (n = N)`` of repeated measurements (sample s.d.).

    >>> mean_sd([0.5, 0.7, 0.6])
    '0.600 ± 0.100 (n = 3)'
    """
    v = np.asarray(values, dtype=np.float64)
    sd = float(v.std(ddof=1)) if v.size > 1 else 0.0
    return f"{v.mean():.{digits}f} ± {sd:.{digits}f} (n = {v.size})"
