"""What every exercise shares: its context, its result, real photos, figures."""

from __future__ import annotations

from collections.abc import Callable
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
    ctx: Context,
    dtype: str = "float64",
    ndim: int = 2,
    devices: tuple[str, ...] = ("cpu",),
    fallback: str | None = None,
) -> tuple[dict[str, str], dict[str, str]]:
    """The backends an exercise runs a case on, each with the dtype to run it in, and
    those it skips with the reason.

    A named ``--backend`` (anything but ``auto``) is the only candidate; with ``auto`` (or
    no choice) every registered backend is. A candidate runs the case in ``dtype`` if its
    declared capabilities cover it, else in ``fallback`` (e.g. float32 for float64) if they
    cover that; it is skipped, with the reason, if it is unavailable, covers neither
    dtype, lacks ``ndim`` spatial dimensions or (unless named) runs on none of
    ``devices``. Nothing here raises: a third-party backend without float64 is run in
    float32 or skipped, never a crash.
    """
    from convkit import list_backends

    named = None if ctx.backend in (None, "auto") else str(ctx.backend).split(":")[0]
    infos = list_backends()
    run: dict[str, str] = {}
    skipped: dict[str, str] = {}
    if named is not None and named not in {info.name for info in infos}:
        skipped[named] = "not registered (convkit.list_backends() does not list it)"
    for info in infos:
        if named is not None and info.name != named:
            continue
        caps = info.capabilities
        wanted = [dtype] + ([fallback] if fallback else [])
        if not info.available:
            skipped[info.name] = f"not available ({info.reason})"
        elif caps is None:
            skipped[info.name] = "declares no capabilities"
        elif not any(d in caps.dtypes for d in wanted):
            skipped[info.name] = f"no {' or '.join(wanted)} (it declares {', '.join(caps.dtypes)})"
        elif not caps.supports_ndim(ndim):
            skipped[info.name] = f"no {ndim}-d convolution ({caps.describe_ndim()})"
        elif named is None and not set(devices) & set(caps.devices):
            skipped[info.name] = f"runs on {', '.join(caps.devices)}"
        else:
            run[info.name] = dtype if dtype in caps.dtypes else str(fallback)
    return run, skipped


def lowered_note(
    rows: dict[str, dict[str, Any]],
    by_dtype: dict[str, dict[str, Any]],
    main: str,
    wanted: str,
    describe: Callable[[dict[str, Any]], str],
) -> str:
    """The summary's note on backends that ran a case in another dtype than ``wanted``
    (see :func:`backends_for`): ``rows`` per backend (each with its ``"dtype"``), the
    worst results ``by_dtype``, ``main`` the dtype the summary reports; ``describe``
    gives a dtype's worst results as text. Empty when every backend ran ``wanted``.

    >>> rows = {"numpy": {"dtype": "float64"}, "mine": {"dtype": "float32"}}
    >>> by_dtype = {"float64": {"e": 1e-16}, "float32": {"e": 1e-7}}
    >>> lowered_note(rows, by_dtype, "float64", "float64", lambda v: f"error {v['e']:.0e}")
    ' (float32 on mine, which declares no float64: error 1e-07, float32 round-off)'
    """
    lowered = {n: r["dtype"] for n, r in rows.items() if r["dtype"] != wanted}
    if not lowered:
        return ""
    if main != wanted:
        return f" ({', '.join(lowered)} declares no {wanted})"
    return "".join(
        f" ({dt} on {', '.join(n for n, d in lowered.items() if d == dt)}, which declares "
        f"no {wanted}: {describe(v)}, {dt} round-off)"
        for dt, v in by_dtype.items()
        if dt != main
    )


def mean_sd(values: Any, digits: int = 3) -> str:
    """``mean ± s.d. (n = N)`` of repeated measurements (sample s.d.).

    >>> mean_sd([0.5, 0.7, 0.6])
    '0.600 ± 0.100 (n = 3)'
    """
    v = np.asarray(values, dtype=np.float64)
    sd = float(v.std(ddof=1)) if v.size > 1 else 0.0
    return f"{v.mean():.{digits}f} ± {sd:.{digits}f} (n = {v.size})"
