"""``convkit bench``: convkit's backends and methods against the peers, timed in one run.

Why this module is long: the workloads, their peers in other libraries, the interleaved
timing and memory probe, and the report are one pipeline that the command, the
calibration and the benchmark scripts share; each part is a few short functions.

Every workload is timed for each available convkit backend and method and for the peer
libraries that compute the same thing, interleaved in rounds (these machines are noisy);
the report gives the median, the ratio to the best peer, effective GFLOP/s, the fraction
of this machine's float32 matmul peak (measured in the same run) and the peak extra
memory (the growth of resident memory during a call).

A candidate that raises (a peer whose compiled library fails to load, a backend error,
at its first call or any later one) is reported in its row as ``failed: Type: message``
and left out of the ratios and the summary; the run goes on with the other candidates
and workloads.
"""

from __future__ import annotations

import functools
import json
import math
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from convkit.fileio import atomic_output


@dataclass(frozen=True)
class Workload:
    """One conv call to time: shapes, options, dtype; ``full`` and ``quick`` sizes."""

    name: str
    x: tuple[int, ...]
    w: tuple[int, ...]
    quick_x: tuple[int, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    dtype: str = "float32"
    backward: bool = False

    def shapes(self, quick: bool) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return (self.quick_x if quick else self.x), self.w

    def flops(self, quick: bool) -> float:
        """Multiply-adds times two of the direct computation (three passes if backward)."""
        from convkit.spec import ConvSpec

        x, w = self.shapes(quick)
        spec = ConvSpec.build(x, w, **self.kwargs)
        macs = (
            spec.batch
            * math.prod(spec.output_size)
            * spec.out_channels
            * (spec.in_channels // spec.groups)
            * math.prod(spec.kernel_size)
        )
        return 2.0 * macs * (3 if self.backward else 1)


WORKLOADS = [
    Workload("cnn3x3", (8, 64, 56, 56), (64, 64, 3, 3), (2, 64, 28, 28), dict(padding=1)),
    Workload("audio1k", (1, 1, 2**20), (1, 1, 1025), (1, 1, 2**16)),
    Workload("blur31", (1, 1, 2048, 2048), (1, 1, 31, 31), (1, 1, 512, 512)),
    Workload("vol5", (1, 1, 128, 128, 128), (1, 1, 5, 5, 5), (1, 1, 48, 48, 48)),
    Workload("text5", (64, 128, 512), (256, 128, 5), (8, 128, 256), dict(padding=2)),
    Workload(
        "depthw3", (8, 256, 56, 56), (256, 1, 3, 3), (2, 256, 28, 28), dict(padding=1, groups=256)
    ),
    Workload("conv4d", (2, 4, 16, 16, 16, 16), (8, 4, 3, 3, 3, 3), (1, 4, 8, 8, 8, 8)),
    Workload(
        "cnn3x3_backward",
        (8, 64, 56, 56),
        (64, 64, 3, 3),
        (2, 64, 28, 28),
        dict(padding=1),
        backward=True,
    ),
    Workload("blur31_f64", (1, 1, 2048, 2048), (1, 1, 31, 31), (1, 1, 512, 512), dtype="float64"),
]


@dataclass
class Row:
    """One candidate's measurement."""

    workload: str
    candidate: str
    peer: bool
    median_s: float
    gflops: float
    peak_fraction: float
    extra_mib: float
    ratio_to_best_peer: float = math.nan
    error: str = ""
    """Why the candidate could not be timed (``"Type: message"``); empty if it was."""


REPEAT = 3
"""Timed calls of one candidate in a row within a round (after an untimed one): the
median of a short run is less exposed to the previous candidate's threads than a
single call."""


def measure(
    candidates: dict[str, Callable[[], object]], rounds: int, repeat: int | dict[str, int] = 1
) -> dict[str, float]:
    """Median seconds of each candidate, timed in interleaved rounds.

    Each round calls every candidate once untimed (absorbing the previous candidate's
    worker threads winding down), then ``repeat`` times timed (``repeat`` may be given
    per candidate; one given a single timed call gets no untimed one: it is long enough
    to stand alone). Interleaving spreads the machine's drift over the candidates.
    """
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, fn in candidates.items():
            n = repeat if isinstance(repeat, int) else repeat[name]
            if n > 1 or repeat == 1:
                fn()
            for _ in range(n):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def ratio_table(medians: dict[str, float], peers: list[str], flops: float | None = None) -> str:
    """Rows of name, median ms, ratio to the fastest peer, GFLOP/s."""
    best = min(medians[p] for p in peers)
    lines = [
        f"{'candidate':40} {'median ms':>10} {'vs best peer':>13}"
        + (f" {'GFLOP/s':>8}" if flops else "")
    ]
    for name, med in medians.items():
        line = f"{name:40} {med * 1e3:10.2f} {med / best:12.2f}x"
        if flops:
            line += f" {flops / med / 1e9:8.1f}"
        lines.append(line)
    return "\n".join(lines)


def matmul_peak(dtype: str = "float32", n: int = 2048) -> float:
    """This machine's matrix-product rate in FLOP/s (NumPy's BLAS, best of three)."""
    a = np.ones((n, n), dtype=dtype)
    a @ a
    best = min(_time(lambda: a @ a) for _ in range(3))
    return 2 * n**3 / best


def _time(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


ERROR_CHARS = 100
"""The longest error message a row keeps."""


def failure(exc: BaseException) -> str:
    """A short ``"Type: message"`` for a row: the message's first line, cut to
    :data:`ERROR_CHARS`.

    >>> failure(OSError("libtorchaudio.so: cannot open shared object file\\nmore"))
    'OSError: libtorchaudio.so: cannot open shared object file'
    """
    lines = str(exc).strip().splitlines()
    message = lines[0] if lines else ""
    if len(message) > ERROR_CHARS:
        message = message[: ERROR_CHARS - 3] + "..."
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _raises(exc: Exception) -> Callable[[], object]:
    """A candidate that could not be built: calling it raises ``exc`` again, so that it
    is reported in its row like a candidate that fails when called."""

    def candidate() -> object:
        raise exc

    return candidate


def _not_installed(exc: Exception, *modules: str) -> bool:
    """Whether ``exc``, raised importing a peer, says that one of ``modules`` is not
    installed at all (a peer to leave out) rather than installed but broken, such as a
    compiled library that does not load (a peer to report as failed)."""
    name = (exc.name or "") if isinstance(exc, ModuleNotFoundError) else ""
    return name.split(".")[0] in modules


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
MMAP_THRESHOLD_MAX = 32 << 20  # glibc's ceiling on 64-bit systems


def _libc() -> Any:
    """glibc, or ``None`` on other C libraries and systems."""
    import ctypes
    import ctypes.util

    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018 - glibc has both
    except (OSError, AttributeError):
        return None
    return libc


def steady_allocator() -> bool:
    """Make glibc keep freed memory for reuse (arrays up to 32 MiB come from the heap,
    which is never trimmed during the run), so that no candidate pays the operating
    system's page faults for memory another one freed. On virtual machines a fault per
    4 KiB page can cost more than the convolution that touches the page, and which
    call pays it depends on the order of the candidates. Returns whether it applied."""
    libc = _libc()
    if libc is None:
        return False
    return bool(
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)
        and libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1)
    )


def _status_kib(field: str) -> int | None:
    """A memory field of ``/proc/self/status`` in KiB (Linux), or ``None``."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset this process's peak resident memory (``VmHWM``) to its current size."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def _extra_memory(fn: Callable[[], object]) -> float:
    """Peak MiB ``fn()`` needed beyond its inputs and the result it returned: how far the
    process's peak resident memory rose during the call (Linux: ``VmHWM`` after a reset,
    with cached free memory first given back to the system, so NumPy's, torch's and
    BLAS's buffers all count); elsewhere, what NumPy allocated (``tracemalloc``).
    Scratch memory kept from an earlier call does not count."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)  # memory kept for reuse goes back, so growth is visible
    baseline = _status_kib("VmRSS") if _reset_peak_rss() else None
    if baseline is None:  # tracemalloc slows NumPy's allocations: only as the fallback
        tracemalloc.start()
        try:
            result = fn()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    else:
        result = fn()
        peak = ((_status_kib("VmHWM") or baseline) - baseline) * 1024
    out = getattr(result, "nbytes", 0) or 0
    if not out and hasattr(result, "numel"):  # a tensor
        out = result.numel() * getattr(result, "element_size")()  # noqa: B009
    return max(0.0, (peak - out) / 2**20)


def candidates(work: Workload, quick: bool) -> tuple[dict[str, Callable[[], object]], list[str]]:
    """The callables to time for ``work``: convkit's backends and methods, and peers."""
    import convkit as ck

    xs, ws = work.shapes(quick)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(xs).astype(work.dtype)
    w = rng.standard_normal(ws).astype(work.dtype)
    kw = work.kwargs
    out: dict[str, Callable[[], object]] = {}
    peers: list[str] = []
    names = [b.name for b in ck.list_backends() if b.available]
    if work.backward:
        from convkit.spec import ConvSpec

        g = np.ones(ConvSpec.build(xs, ws, **kw).output_shape, dtype=work.dtype)
        out["convkit auto"] = functools.partial(ck.conv_vjp, x, w, g, **kw)
        for name in names:
            out[f"convkit {name}"] = functools.partial(ck.conv_vjp, x, w, g, backend=name, **kw)
    else:
        out["convkit auto"] = functools.partial(ck.conv, x, w, backend="auto", **kw)
        for name in names:
            try:
                costs = ck.choose_conv_method(x, w, backend=name, **kw).costs
            except Exception as exc:  # reported in the backend's row; the others go on
                out[f"convkit {name} auto"] = _raises(exc)
                continue
            for method in ("direct", "fft"):
                # skip a method estimated 20x slower than the backend's best: it would
                # only make the run long
                if costs[method] <= 20 * min(costs.values()):
                    out[f"convkit {name} {method}"] = functools.partial(
                        ck.conv, x, w, backend=name, method=method, **kw
                    )
            out[f"convkit {name} auto"] = functools.partial(ck.conv, x, w, backend=name, **kw)
    out.update(_peers(work, x, w, peers))
    return out, peers


def _peers(
    work: Workload, x: np.ndarray, w: np.ndarray, peers: list[str]
) -> dict[str, Callable[[], object]]:
    found: dict[str, Callable[[], object]] = {}
    d = x.ndim - 2
    kw = work.kwargs
    try:
        import torch
        import torch.nn.functional as F

        xt, wt = torch.from_numpy(x), torch.from_numpy(w)
        if d <= 3:
            fn = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[d]
            if work.backward:

                def torch_backward() -> object:
                    xr, wr = xt.clone().requires_grad_(), wt.clone().requires_grad_()
                    y = fn(xr, wr, padding=kw.get("padding", 0), groups=kw.get("groups", 1))
                    y.backward(torch.ones_like(y))
                    return wr.grad

                found["torch autograd (peer)"] = torch_backward
            else:
                found[f"torch F.conv{d}d (peer)"] = lambda: fn(
                    xt, wt, padding=kw.get("padding", 0), groups=kw.get("groups", 1)
                )
    except Exception as exc:  # not installed: no peer; installed but broken: reported
        if not _not_installed(exc, "torch") and d <= 3:
            name = "torch autograd (peer)" if work.backward else f"torch F.conv{d}d (peer)"
            found[name] = _raises(exc)
    single = x.shape[:2] == (1, 1) and w.shape[:2] == (1, 1) and not work.backward
    if single:
        import scipy.ndimage
        import scipy.signal

        a, k = x[0, 0], w[0, 0]
        found["scipy.signal.fftconvolve (peer)"] = lambda: scipy.signal.fftconvolve(
            a, k[(slice(None, None, -1),) * d], "valid"
        )
        found["scipy.signal.oaconvolve (peer)"] = lambda: scipy.signal.oaconvolve(
            a, k[(slice(None, None, -1),) * d], "valid"
        )
        if d <= 2 or a.size <= 2**21:
            found["scipy.signal.correlate (peer)"] = lambda: scipy.signal.correlate(a, k, "valid")
        if math.prod(k.shape) <= 256:
            found["scipy.ndimage.correlate (peer)"] = lambda: scipy.ndimage.correlate(a, k)
        if d == 1:
            found["numpy.convolve (peer)"] = lambda: np.convolve(a, k[::-1], "valid")
            try:
                import torch
                import torchaudio.functional as AF

                ta, tk = torch.from_numpy(a), torch.from_numpy(k[::-1].copy())
                found["torchaudio fftconvolve (peer)"] = lambda: AF.fftconvolve(ta, tk, "valid")
            except Exception as exc:  # as for torch: a broken install is reported
                if not _not_installed(exc, "torch", "torchaudio"):
                    found["torchaudio fftconvolve (peer)"] = _raises(exc)
    peers.extend(found)
    return found


def run(
    only: Sequence[str] | None = None,
    *,
    quick: bool = False,
    rounds: int | None = None,
    stream: IO[str] | None = None,
    steady: bool = True,
) -> tuple[list[Row], float]:
    """Time every workload (or those named); returns the rows and the matmul peak.
    ``steady`` applies :func:`steady_allocator` first."""
    stream = sys.stderr if stream is None else stream
    show = stream.isatty()
    unknown = sorted(set(only or []) - {w.name for w in WORKLOADS})
    if unknown:
        raise ValueError(
            f"unknown workload(s) {', '.join(unknown)}; valid: "
            f"{', '.join(w.name for w in WORKLOADS)}"
        )
    selected = [w for w in WORKLOADS if not only or w.name in only]
    if steady:
        steady_allocator()
    peak = matmul_peak()
    rows: list[Row] = []
    for i, work in enumerate(selected, 1):
        try:
            fns, peers = candidates(work, quick)
        except Exception as exc:  # the workload cannot even be set up: one row says why
            rows.append(_failed_row(work.name, "convkit auto", False, failure(exc)))
            continue
        order = list(fns)
        failed: dict[str, str] = {}
        first: dict[str, float] = {}
        for name, fn in list(fns.items()):
            try:
                first[name] = _time(fn)  # one that cannot run is reported, not fatal
            except Exception as exc:
                failed[name] = failure(exc)
                del fns[name]
        times: dict[str, list[float]] = {name: [] for name in fns}
        n_rounds = rounds or (3 if quick else 5)
        # a call of a tenth of a second is long enough to time alone
        repeats = {name: REPEAT if first[name] < 0.1 else 1 for name in fns}
        for r in range(n_rounds):
            # one round of measure() over all candidates, one candidate at a time, so
            # that one failing in a later round loses only its own row
            for name in list(fns):
                try:
                    seconds = measure({name: fns[name]}, rounds=1, repeat=repeats)[name]
                except Exception as exc:
                    failed[name] = failure(exc)
                    del fns[name], times[name]
                    continue
                times[name].append(seconds)
            if show:
                done = int(20 * (r + 1) / n_rounds)
                stream.write(
                    f"\r[{i}/{len(selected)}] {work.name:16} [{'#' * done}{'.' * (20 - done)}]"
                )
                stream.flush()
        if show:
            stream.write("\n")
        flops = work.flops(quick)
        measured: dict[str, Row] = {}
        for name, ts in times.items():
            med = statistics.median(ts)
            try:
                extra = _extra_memory(fns[name])
            except Exception as exc:
                failed[name] = failure(exc)
                continue
            measured[name] = Row(
                work.name,
                name,
                name in peers,
                med,
                flops / med / 1e9,
                flops / med / peak,
                extra,
            )
        group = [
            measured[name]
            if name in measured
            else _failed_row(work.name, name, name in peers, failed[name])
            for name in order
        ]
        best = min(
            (r.median_s for r in group if r.peer and r.median_s == r.median_s), default=math.nan
        )
        for row in group:
            row.ratio_to_best_peer = row.median_s / best if best == best else math.nan
        rows.extend(group)
    return rows, peak


def _failed_row(workload: str, candidate: str, peer: bool, error: str) -> Row:
    """The row of a candidate that raised: no measurements, and why."""
    nan = math.nan
    return Row(workload, candidate, peer, nan, nan, nan, nan, error=error)


def table(rows: Sequence[Row], peak: float) -> str:
    """The terminal table."""
    lines = [f"float32 matmul peak here: {peak / 1e9:.0f} GFLOP/s", ""]
    header = f"{'workload':16} {'candidate':38} {'median ms':>10} {'vs peer':>8} {'GFLOP/s':>8} {'% peak':>7} {'extra MiB':>9}"
    lines.append(header)
    for r in rows:
        if r.error:
            lines.append(f"{r.workload:16} {r.candidate:38} failed: {r.error}")
            continue
        ratio = (
            f"{r.ratio_to_best_peer:.2f}x" if r.ratio_to_best_peer == r.ratio_to_best_peer else "-"
        )
        lines.append(
            f"{r.workload:16} {r.candidate:38} {r.median_s * 1e3:10.2f} {ratio:>8} "
            f"{r.gflops:8.1f} {100 * r.peak_fraction:6.1f}% {r.extra_mib:9.1f}"
        )
    return "\n".join(lines)


def peer_library(candidate: str) -> str:
    """The library a peer row belongs to, across workloads (``torch F.conv2d (peer)``
    and ``torch F.conv1d (peer)`` are both ``torch F.conv``).

    >>> peer_library("torch F.conv2d (peer)")
    'torch F.conv'
    """
    name = candidate.removesuffix(" (peer)")
    return name[:-2] if name.startswith("torch F.conv") else name


def summary(rows: Sequence[Row], candidate: str = "convkit auto") -> str:
    """``candidate`` against each peer library: the geometric mean, over the workloads
    both ran, of the candidate's time over the peer's (below 1: the candidate is
    faster), and the candidate's worst ratio to the best peer of a workload."""
    mine = {r.workload: r.median_s for r in rows if r.candidate == candidate and not r.error}
    ratios: dict[str, list[float]] = {}
    for r in rows:
        if r.peer and not r.error and r.workload in mine:
            ratios.setdefault(peer_library(r.candidate), []).append(mine[r.workload] / r.median_s)
    lines = [f"{candidate} against each peer (geometric mean of time ratios; <1: faster):"]
    for lib, rs in sorted(ratios.items()):
        gm = math.exp(statistics.fmean(math.log(x) for x in rs))
        lines.append(f"  {lib:36} {gm:6.2f}x over {len(rs)} workload(s)")
    vs_best = [
        (r.ratio_to_best_peer, r.workload)
        for r in rows
        if r.candidate == candidate and r.ratio_to_best_peer == r.ratio_to_best_peer
    ]
    if vs_best:
        worst, where = max(vs_best)
        lines.append(f"  worst ratio to a workload's best peer: {worst:.2f}x ({where})")
    return "\n".join(lines)


def write_json(rows: Sequence[Row], peak: float, path: str | Path) -> None:
    """The rows as JSON, atomically."""

    def clean(row: Row) -> dict[str, Any]:
        return {
            k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in asdict(row).items()
        }

    payload = {"matmul_peak_flops": peak, "rows": [clean(r) for r in rows]}
    with atomic_output(path) as f:
        f.write(json.dumps(payload, indent=2).encode())


def plot(rows: Sequence[Row], path: str | Path) -> None:
    """A bar chart of each candidate's time relative to the best peer, atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = list(dict.fromkeys(r.workload for r in rows))
    fig, axes = plt.subplots(len(workloads), 1, figsize=(9, 2.2 * len(workloads)), squeeze=False)
    for ax, work in zip(axes[:, 0], workloads, strict=True):
        group = [r for r in rows if r.workload == work and not r.error]
        ax.barh(
            [r.candidate for r in group],
            [r.ratio_to_best_peer for r in group],
            color=["tab:gray" if r.peer else "tab:blue" for r in group],
        )
        ax.axvline(1.0, color="k", lw=0.8)
        ax.set_xscale("log")
        ax.set_title(f"{work}: time relative to the best peer (gray: peers)", fontsize=9)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    with atomic_output(path) as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)
