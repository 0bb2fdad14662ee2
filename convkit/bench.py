"""``convkit bench``: convkit's backends and methods against the peers, timed in one run.

Why this module is long: the workloads, their peers in other libraries, the interleaved
timing and memory probe, and the report are one pipeline that the command, the
calibration and the benchmark scripts share; each part is a few short functions.

Every workload is timed for each available convkit backend and method and for the peer
libraries that compute the same thing, interleaved in rounds (these machines are noisy);
the report gives the median, the ratio to the best peer, effective GFLOP/s, the fraction
of this machine's float32 matmul peak (measured in the same run), the peak extra
memory (the growth of resident memory during a call), and for every convkit row the
time ``auto``'s cost model estimated for it, over the time measured. Loop workloads
(a call too short to time alone) report the mean time per call.

A candidate that raises (a peer whose compiled library fails to load, a backend error,
at its first call or any later one), or whose first call takes longer than
:data:`FIRST_CALL_LIMIT_S`, is reported in its row as ``failed: ...`` and left out of
the ratios and the summary; the run goes on with the other candidates and workloads.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import re
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from convkit.fileio import atomic_output


@dataclass(frozen=True)
class Workload:
    """One call to time: shapes, options, dtype; ``full`` and ``quick`` sizes.

    ``op`` is ``"conv"`` (:func:`convkit.conv`, or its gradients
    :func:`convkit.conv_vjp` when ``backward``) or ``"convolve"``
    (:func:`convkit.convolve` of two signals, full mode). ``calls`` above one makes a
    loop workload: a call too short to time alone, timed as the mean per call over a
    loop of up to ``calls`` calls (fewer for a candidate whose loop would last longer
    than :data:`LOOP_SECONDS`).
    """

    name: str
    x: tuple[int, ...]
    w: tuple[int, ...]
    quick_x: tuple[int, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    dtype: str = "float32"
    backward: bool = False
    op: str = "conv"
    calls: int = 1

    def shapes(self, quick: bool) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return (self.quick_x if quick else self.x), self.w

    def flops(self, quick: bool) -> float:
        """Multiply-adds times two of the direct computation (three passes if backward);
        for ``convolve`` (full mode) every pair of elements multiplies once."""
        from convkit.spec import ConvSpec

        x, w = self.shapes(quick)
        if self.op == "convolve":
            mode = self.kwargs.get("mode", "full")
            if mode != "full":
                raise ValueError(
                    f"workload {self.name!r}: mode={mode!r}; flops are counted for 'full' only"
                )
            return 2.0 * math.prod(x) * math.prod(w)
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
    Workload(
        "grad_large",
        (1, 2, 1024, 768),
        (3, 2, 5, 5),
        (1, 2, 256, 192),
        dict(padding=2),
        backward=True,
    ),
    Workload("blur31_f64", (1, 1, 2048, 2048), (1, 1, 31, 31), (1, 1, 512, 512), dtype="float64"),
    Workload("tiny_conv", (1, 1, 16), (1, 1, 3), (1, 1, 16), calls=2000),
    Workload("tiny_convolve", (16,), (3,), (16,), dtype="float64", op="convolve", calls=2000),
]


@dataclass
class Row:
    """One candidate's measurement (per call, for a loop workload)."""

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
    estimate_s: float = math.nan
    """``auto``'s estimated seconds for this candidate (convkit rows; NaN for peers)."""
    estimate_ratio: float = math.nan
    """``estimate_s / median_s``: above 1, the cost model overestimates."""
    calls: int = 1
    """Calls per timed loop (loop workloads), over which ``median_s`` is the mean."""


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


class Device:
    """Where a run computes. ``"cpu"``: NumPy inputs, every available backend and the
    peers of every library. A torch device (``"cuda"``, ``"cuda:1"``): the inputs as
    tensors there, made once; the torch backend and ``auto`` against torch's and
    torchaudio's functions on the same tensors; every call timed up to
    ``torch.cuda.synchronize`` (the work done, not queued); memory as the growth of
    ``torch.cuda.max_memory_allocated``; the peak that of a float32 matrix product
    there with TF32 off.

    >>> Device("cpu").put(np.ones(2)).tolist()
    [1.0, 1.0]
    """

    def __init__(self, name: str = "cpu") -> None:
        self.name = name
        self.host = name == "cpu"
        self.torch: Any = None
        if self.host:
            return
        try:
            import torch
        except ImportError as exc:
            raise ValueError(f"device={name!r} needs torch, which is not installed") from exc
        try:
            self.device = torch.device(name)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(f"device={name!r} is not a torch device") from exc
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(
                f"device={name!r}: torch {torch.__version__} sees no CUDA device "
                f"(torch.cuda.is_available() is False)"
            )
        count = torch.cuda.device_count() if self.device.type == "cuda" else 0
        if self.device.index is not None and self.device.index >= count:
            raise ValueError(f"device={name!r} does not exist; this machine has {count} GPU(s)")
        self.torch = torch

    @property
    def cuda(self) -> bool:
        return not self.host and self.device.type == "cuda"

    def put(self, a: np.ndarray) -> Any:
        """``a`` on this device (a tensor there, or ``a`` itself on the CPU)."""
        return a if self.host else self.torch.as_tensor(a, device=self.device)

    def synchronize(self) -> None:
        """Wait for the work queued on this device."""
        if self.cuda:
            self.torch.cuda.synchronize(self.device)

    def timed(self, fn: Callable[[], object]) -> Callable[[], object]:
        """``fn``, returning only once its work on this device is done."""
        if self.host:
            return fn

        def synchronized() -> object:
            result = fn()
            self.synchronize()
            return result

        return synchronized

    def extra_memory(self, fn: Callable[[], object]) -> float:
        """Peak MiB ``fn()`` needed beyond its inputs and result: :func:`_extra_memory`
        on the CPU; on a CUDA device the growth of ``torch.cuda.max_memory_allocated``
        (memory torch's caching allocator handed out, whatever it had cached); NaN on a
        device that has no such count."""
        if self.host:
            return _extra_memory(fn)
        if not self.cuda:
            return math.nan
        cuda = self.torch.cuda
        self.synchronize()
        cuda.reset_peak_memory_stats(self.device)
        baseline = cuda.memory_allocated(self.device)
        result = fn()
        self.synchronize()
        peak = cuda.max_memory_allocated(self.device) - baseline
        out = sum(
            t.numel() * t.element_size()
            for t in (result if isinstance(result, tuple) else (result,))
            if isinstance(t, self.torch.Tensor)
        )
        return max(0.0, (peak - out) / 2**20)

    def matmul_peak(self) -> float:
        """The float32 matrix-product rate here in FLOP/s (best of three): NumPy's BLAS
        on the CPU; on a CUDA device torch's, with TF32 off; NaN elsewhere."""
        if self.host:
            return matmul_peak()
        if not self.cuda:
            return math.nan
        n = 4096
        a = self.torch.ones((n, n), device=self.device)
        with self.fp32("ieee"):
            fn = self.timed(lambda: a @ a)
            fn()
            best = min(_time(fn) for _ in range(3))
        return 2 * n**3 / best

    @contextlib.contextmanager
    def fp32(self, precision: str) -> Iterator[None]:
        """Within the block, cuDNN's convolutions and cuBLAS's products in float32 as
        ``precision`` says (``"ieee"``, or ``"tf32"``), restored after: how a peer is
        timed at the precision convkit's ``"highest"`` computes."""
        backends = self.torch.backends
        settings = (backends.cudnn.conv, backends.cuda.matmul)
        before = [s.fp32_precision for s in settings]
        try:
            for s in settings:
                s.fp32_precision = precision
            yield
        finally:
            for s, value in zip(settings, before, strict=True):
                s.fp32_precision = value

    def describe(self, peak: float) -> str:
        """The report's first line: the device and its peak."""
        if self.host:
            return f"float32 matmul peak here: {peak / 1e9:.0f} GFLOP/s"
        from convkit import checks

        name = checks.registered_backend("torch").device_key(self.name)
        return (
            f"device {name}; float32 matmul peak there (TF32 off): {peak / 1e9:.0f} GFLOP/s; "
            f"extra MiB: growth of torch.cuda.max_memory_allocated during a call"
        )


HOST = Device("cpu")


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


FIRST_CALL_LIMIT_S = 30.0
"""A candidate whose first (untimed) call takes longer than this many seconds is
reported as too slow and left out of the rounds."""

LOOP_SECONDS = 0.25
"""The longest a loop workload's timed loop should last: a candidate whose single call
is slow loops fewer than the workload's ``calls`` times."""

PROBE_CALLS = 10
"""Calls timed together to size a loop workload's loop."""

MIN_RATIO, MAX_RATIO = 1 / 3, 3.0
"""The band of estimate over measured time within which the cost model counts as right."""


def inputs(work: Workload, quick: bool) -> tuple[np.ndarray, np.ndarray]:
    """The workload's two operands: standard normal values of its dtype, seeded.

    >>> x, w = inputs(WORKLOADS[0], quick=True)
    >>> x.shape, w.shape, str(x.dtype)
    ((2, 64, 28, 28), (64, 64, 3, 3), 'float32')
    """
    xs, ws = work.shapes(quick)
    rng = np.random.default_rng(0)
    return rng.standard_normal(xs).astype(work.dtype), rng.standard_normal(ws).astype(work.dtype)


def backend_row(work: Workload, name: str) -> str:
    """The row of backend ``name`` with its method chosen by ``auto``: ``convkit NAME
    auto`` beside per-method rows (forward convolutions), else ``convkit NAME``.

    >>> backend_row(WORKLOADS[0], "numpy"), backend_row(WORKLOADS[-1], "numpy")
    ('convkit numpy auto', 'convkit numpy')
    """
    return f"convkit {name} auto" if _per_method(work) else f"convkit {name}"


def _per_method(work: Workload) -> bool:
    """Whether the workload times each method (forward convolutions called once)."""
    return work.op == "conv" and not work.backward and work.calls == 1


def method_choice(work: Workload, x: np.ndarray, w: np.ndarray, backend: str | None) -> Any:
    """What ``auto`` picks for the workload's call on ``backend`` (``None``: any),
    with its estimates (a :class:`~convkit.planner.MethodChoice`)."""
    import convkit as ck

    if work.op == "convolve":
        return ck.choose_method(x, w, backend=backend, **work.kwargs)
    if work.backward:
        return ck.explain(x, w, op="conv_vjp", backend=backend, **work.kwargs)
    return ck.choose_conv_method(x, w, backend=backend, **work.kwargs)


def estimates(
    work: Workload, x: np.ndarray, w: np.ndarray, backends: Sequence[str]
) -> dict[str, float]:
    """``auto``'s estimated seconds for each convkit candidate of the workload, by row
    name: ``convkit NAME METHOD`` (the backend's own estimate for the method), the
    backend's row of :func:`backend_row` (its cheapest method) and ``convkit auto``
    (the estimate of the backend and method auto picks now, on that backend's own
    rates: no import or hand-over surcharge). A backend that cannot estimate the call
    is left out.

    >>> est = estimates(WORKLOADS[0], *inputs(WORKLOADS[0], quick=True), ["numpy"])
    >>> methods = {k: v for k, v in est.items() if k.startswith("convkit numpy ")}
    >>> methods.pop("convkit numpy auto") == min(methods.values())
    True
    """
    out: dict[str, float] = {}
    for name in backends:
        try:
            costs = method_choice(work, x, w, name).costs
        except Exception:  # the row reports the backend's error when it runs
            continue
        if backend_row(work, name) == f"convkit {name} auto":
            out.update({f"convkit {name} {method}": s for method, s in costs.items()})
        out[backend_row(work, name)] = min(costs.values())
    try:
        choice = method_choice(work, x, w, None)
        out["convkit auto"] = choice.costs[choice.method]
    except Exception:  # the row reports auto's error when it runs
        pass
    return out


def candidates(
    work: Workload, x: Any, w: Any, on: Device = HOST
) -> tuple[dict[str, Callable[[], object]], list[str]]:
    """The callables to time for ``work`` (convkit's backends and methods, and the
    peers) and the names of the peers; on a torch device (:class:`Device`), the torch
    backend, ``auto`` and a ``precision="fast"`` row against torch's own functions, each
    call synchronised."""
    import convkit as ck

    names = [b.name for b in ck.list_backends() if b.available] if on.host else ["torch"]
    if work.op == "convolve":
        call = functools.partial(ck.convolve, x, w, **work.kwargs)
    elif work.backward:
        from convkit.spec import ConvSpec

        shape = ConvSpec.build(tuple(x.shape), tuple(w.shape), **work.kwargs).output_shape
        g = on.put(np.ones(shape, dtype=work.dtype))
        call = functools.partial(ck.conv_vjp, x, w, g, **work.kwargs)
    else:
        call = functools.partial(ck.conv, x, w, **work.kwargs)
    if _per_method(work):
        out = _method_calls(work, x, w, names)
    else:
        out = _backend_calls(work, names, call)
    if not on.host:
        out["convkit torch fast"] = functools.partial(call, backend="torch", precision="fast")
    peers = _peers(work, x, w) if on.host else _device_peers(work, x, w, on)
    out.update(peers)
    return {name: on.timed(fn) for name, fn in out.items()}, list(peers)


def _backend_calls(
    work: Workload, names: Sequence[str], call: Callable[..., object]
) -> dict[str, Callable[[], object]]:
    """``convkit auto`` and one row per backend, each with its method chosen by auto."""
    out: dict[str, Callable[[], object]] = {"convkit auto": call}
    for name in names:
        out[backend_row(work, name)] = functools.partial(call, backend=name)
    return out


def _method_calls(
    work: Workload, x: np.ndarray, w: np.ndarray, names: Sequence[str]
) -> dict[str, Callable[[], object]]:
    """``convkit auto``, and per backend a row for each method it estimates (a method
    estimated over 20x the backend's best is skipped: it would only make the run long)
    and one with the method chosen by auto."""
    import convkit as ck

    kw = work.kwargs
    out: dict[str, Callable[[], object]] = {
        "convkit auto": functools.partial(ck.conv, x, w, backend="auto", **kw)
    }
    for name in names:
        try:
            costs = method_choice(work, x, w, name).costs
        except Exception as exc:  # reported in the backend's row; the others go on
            out[f"convkit {name} auto"] = _raises(exc)
            continue
        best = min(costs.values())
        for method, cost in costs.items():
            if not math.isinf(cost) and cost <= 20 * best:
                out[f"convkit {name} {method}"] = functools.partial(
                    ck.conv, x, w, backend=name, method=method, **kw
                )
        out[f"convkit {name} auto"] = functools.partial(ck.conv, x, w, backend=name, **kw)
    return out


def _peers(work: Workload, x: np.ndarray, w: np.ndarray) -> dict[str, Callable[[], object]]:
    """The peer libraries' calls that compute what the workload's convkit call does."""
    if work.op == "convolve":  # full mode
        import scipy.signal

        return {
            "scipy.signal.convolve (peer)": lambda: scipy.signal.convolve(x, w),
            "numpy.convolve (peer)": lambda: np.convolve(x, w),
        }
    found = _torch_peers(work, x, w)
    if work.calls > 1:  # a call's fixed cost: the plain direct calls
        a, k = x[0, 0], w[0, 0]
        found["numpy.correlate (peer)"] = lambda: np.correlate(a, k, "valid")
        return found
    single = x.shape[:2] == (1, 1) and w.shape[:2] == (1, 1) and not work.backward
    if single:
        found.update(_signal_peers(x[0, 0], w[0, 0]))
    return found


def _torch_peers(work: Workload, x: np.ndarray, w: np.ndarray) -> dict[str, Callable[[], object]]:
    """``torch.nn.functional.convNd``, or autograd through it for a backward workload."""
    d = x.ndim - 2
    kw = work.kwargs
    name = "torch autograd (peer)" if work.backward else f"torch F.conv{d}d (peer)"
    if d > 3:
        return {}
    try:
        import torch
        import torch.nn.functional as F
    except Exception as exc:  # not installed: no peer; installed but broken: reported
        return {} if _not_installed(exc, "torch") else {name: _raises(exc)}
    xt, wt = torch.from_numpy(x), torch.from_numpy(w)
    fn = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[d]
    padding, groups = kw.get("padding", 0), kw.get("groups", 1)
    if not work.backward:
        return {name: lambda: fn(xt, wt, padding=padding, groups=groups)}

    def torch_backward() -> object:
        xr, wr = xt.clone().requires_grad_(), wt.clone().requires_grad_()
        y = fn(xr, wr, padding=padding, groups=groups)
        y.backward(torch.ones_like(y))
        return wr.grad

    return {name: torch_backward}


def _device_peers(work: Workload, x: Any, w: Any, on: Device) -> dict[str, Callable[[], object]]:
    """torch's and torchaudio's calls on the device's tensors: ``F.convNd`` (autograd
    through it for a backward workload) as torch ships it (cuDNN may use TF32 for
    float32) and, for float32 on CUDA, with TF32 off (the precision of convkit's
    ``"highest"``); ``torchaudio.functional.fftconvolve`` for one-channel signals and
    ``convolve`` workloads."""
    torch = on.torch
    import torch.nn.functional as F

    found: dict[str, Callable[[], object]] = {}
    try:
        import torchaudio.functional as AF
    except Exception as exc:  # as for the CPU peers: a broken install is reported
        AF = None
        if not _not_installed(exc, "torchaudio"):
            found["torchaudio fftconvolve (peer)"] = _raises(exc)
    if work.op == "convolve":  # full mode
        if AF is not None:
            found["torchaudio convolve (peer)"] = lambda: AF.convolve(x, w)
            found["torchaudio fftconvolve (peer)"] = lambda: AF.fftconvolve(x, w)
        return found
    d = x.ndim - 2
    kw = work.kwargs
    if d <= 3:
        fn = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[d]
        padding, groups = kw.get("padding", 0), kw.get("groups", 1)
        name = "torch autograd" if work.backward else f"torch F.conv{d}d"

        def forward() -> object:
            return fn(x, w, padding=padding, groups=groups)

        def backward() -> object:
            xr, wr = x.detach().requires_grad_(), w.detach().requires_grad_()
            y = fn(xr, wr, padding=padding, groups=groups)
            y.backward(torch.ones_like(y))
            return wr.grad

        call = backward if work.backward else forward
        found[f"{name} (peer)"] = call
        if on.cuda and work.dtype == "float32":

            def exact() -> object:
                with on.fp32("ieee"):
                    return call()

            found[f"{name} TF32 off (peer)"] = exact
    single = tuple(x.shape[:2]) == (1, 1) and tuple(w.shape[:2]) == (1, 1)
    if d == 1 and single and not work.backward and AF is not None:
        a, k = x[0, 0], w[0, 0].flip(0)
        found["torchaudio fftconvolve (peer)"] = lambda: AF.fftconvolve(a, k, "valid")
    return found


def _signal_peers(a: np.ndarray, k: np.ndarray) -> dict[str, Callable[[], object]]:
    """SciPy's, NumPy's and torchaudio's single-channel valid correlation of ``a`` by ``k``."""
    import scipy.ndimage
    import scipy.signal

    d = a.ndim
    flipped = k[(slice(None, None, -1),) * d]
    found: dict[str, Callable[[], object]] = {
        "scipy.signal.fftconvolve (peer)": lambda: scipy.signal.fftconvolve(a, flipped, "valid"),
        "scipy.signal.oaconvolve (peer)": lambda: scipy.signal.oaconvolve(a, flipped, "valid"),
    }
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
    return found


def run(
    only: Sequence[str] | None = None,
    *,
    quick: bool = False,
    rounds: int | None = None,
    stream: IO[str] | None = None,
    steady: bool = True,
    device: str = "cpu",
) -> tuple[list[Row], float]:
    """Time every workload (or those named) on ``device`` (:class:`Device`); returns the
    rows and the matmul peak. ``steady`` applies :func:`steady_allocator` first."""
    stream = sys.stderr if stream is None else stream
    unknown = sorted(set(only or []) - {w.name for w in WORKLOADS})
    if unknown:
        raise ValueError(
            f"unknown workload(s) {', '.join(unknown)}; valid: "
            f"{', '.join(w.name for w in WORKLOADS)}"
        )
    selected = [w for w in WORKLOADS if not only or w.name in only]
    on = Device(device)
    if steady:
        steady_allocator()
    peak = on.matmul_peak()
    rows: list[Row] = []
    n_rounds = rounds or (3 if quick else 5)
    for i, work in enumerate(selected, 1):
        label = f"[{i}/{len(selected)}] {work.name:16}"
        progress = functools.partial(_progress, stream, label) if stream.isatty() else None
        rows.extend(_run_workload(work, quick, n_rounds, peak, progress, on))
    return rows, peak


def _progress(stream: IO[str], label: str, done: float) -> None:
    """Redraw a progress bar ``done`` (0 to 1) full after ``label``; a line end at 1."""
    n = int(20 * done)
    stream.write(f"\r{label} [{'#' * n}{'.' * (20 - n)}]" + ("\n" if done >= 1 else ""))
    stream.flush()


def _run_workload(
    work: Workload,
    quick: bool,
    n_rounds: int,
    peak: float,
    progress: Callable[[float], None] | None,
    on: Device = HOST,
) -> list[Row]:
    """The rows of one workload: every candidate timed in ``n_rounds`` rounds."""
    import convkit as ck

    try:
        x, w = map(on.put, inputs(work, quick))
        fns, peers = candidates(work, x, w, on)
    except Exception as exc:  # the workload cannot even be set up: one row says why
        return [_failed_row(work.name, "convkit auto", False, failure(exc))]
    order = list(fns)
    failed: dict[str, str] = {}
    first = _first_calls(fns, failed)
    calls = _loops(fns, first, failed, work.calls) if work.calls > 1 else {}
    # after the first calls, with every library loaded: what auto weighs in the rounds
    names = [b.name for b in ck.list_backends() if b.available] if on.host else ["torch"]
    est = estimates(work, x, w, names)
    if not on.host:  # auto plans "fast" calls with the rates of "highest" ones
        est["convkit torch fast"] = est.get(backend_row(work, "torch"), math.nan)
    times = _rounds(fns, failed, first, n_rounds, progress)
    flops = work.flops(quick)
    group: list[Row] = []
    for name in order:
        peer = name in peers
        row = _failed_row(work.name, name, peer, failed.get(name, ""))
        if name in times and name not in failed:
            n = calls.get(name, 1)
            med = statistics.median(times[name]) / n
            try:
                extra = on.extra_memory(fns[name])
            except Exception as exc:
                row.error = failure(exc)
            else:
                row = Row(work.name, name, peer, med, flops / med / 1e9, flops / med / peak, extra)
                row.calls = n
        if not peer:
            row.estimate_s = est.get(name, math.nan)
            row.estimate_ratio = row.estimate_s / row.median_s
        group.append(row)
    best = min((r.median_s for r in group if r.peer and not r.error), default=math.nan)
    for row in group:
        row.ratio_to_best_peer = row.median_s / best
    return group


def _first_calls(fns: dict[str, Callable[[], object]], failed: dict[str, str]) -> dict[str, float]:
    """Seconds of one untimed call of each candidate. One that raises, or takes longer
    than :data:`FIRST_CALL_LIMIT_S`, is moved from ``fns`` to ``failed`` with why."""
    first: dict[str, float] = {}
    for name, fn in list(fns.items()):
        try:
            seconds = _time(fn)  # one that cannot run is reported, not fatal
        except Exception as exc:
            failed[name] = failure(exc)
            del fns[name]
            continue
        if seconds > FIRST_CALL_LIMIT_S:
            failed[name] = f"too slow: first call {seconds:.3g} s > {FIRST_CALL_LIMIT_S:g} s limit"
            del fns[name]
            continue
        first[name] = seconds
    return first


def _loops(
    fns: dict[str, Callable[[], object]],
    first: dict[str, float],
    failed: dict[str, str],
    calls: int,
) -> dict[str, int]:
    """Replace each candidate by a loop of up to ``calls`` calls lasting about
    :data:`LOOP_SECONDS` (sized from a probe of :data:`PROBE_CALLS` warm calls) and
    ``first`` by the loop's expected seconds; returns the calls per loop."""
    counts: dict[str, int] = {}
    for name, fn in list(fns.items()):
        probe = min(PROBE_CALLS, calls)
        try:
            seconds = _time(_loop(fn, probe)) / probe
        except Exception as exc:
            failed[name] = failure(exc)
            del fns[name]
            continue
        n = max(1, min(calls, int(LOOP_SECONDS / max(seconds, 1e-9))))
        fns[name], counts[name], first[name] = _loop(fn, n), n, seconds * n
    return counts


def _loop(fn: Callable[[], object], n: int) -> Callable[[], object]:
    """``fn`` called ``n`` times in a row; returns the last result."""

    def looped() -> object:
        for _ in range(n - 1):
            fn()
        return fn()

    return looped


def _rounds(
    fns: dict[str, Callable[[], object]],
    failed: dict[str, str],
    first: dict[str, float],
    n_rounds: int,
    progress: Callable[[float], None] | None,
) -> dict[str, list[float]]:
    """Each candidate's median seconds per round, interleaved over ``n_rounds``
    rounds. One failing in a round is moved from ``fns`` to ``failed``."""
    times: dict[str, list[float]] = {name: [] for name in fns}
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
        if progress is not None:
            progress((r + 1) / n_rounds)
    return times


def _failed_row(workload: str, candidate: str, peer: bool, error: str) -> Row:
    """The row of a candidate that raised: no measurements, and why."""
    nan = math.nan
    return Row(workload, candidate, peer, nan, nan, nan, nan, error=error)


def _ms(seconds: float) -> str:
    """Milliseconds with two decimals, three significant digits below one millisecond;
    ``-`` for NaN.

    >>> _ms(0.0123), _ms(2.5e-5), _ms(6.12e-7), _ms(float("nan"))
    ('12.30', '0.0250', '0.000612', '-')
    """
    if seconds != seconds:
        return "-"
    ms = seconds * 1e3
    return f"{ms:.2f}" if ms >= 1 else f"{ms:#.3g}"


def _times(value: float) -> str:
    """A ratio as ``1.23x`` (two significant digits below 0.1); ``-`` for NaN.

    >>> _times(1.234), _times(0.00336), _times(float("nan"))
    ('1.23x', '0.0034x', '-')
    """
    if value != value:
        return "-"
    return f"{value:.2f}x" if value >= 0.1 else f"{value:.2g}x"


def table(rows: Sequence[Row], peak: float, device: str = "cpu") -> str:
    """The terminal table, then how the cost model's estimates compare
    (:func:`cost_model`)."""
    lines = [Device(device).describe(peak), ""]
    header = (
        f"{'workload':16} {'candidate':38} {'median ms':>10} {'vs peer':>8} {'GFLOP/s':>8} "
        f"{'% peak':>7} {'extra MiB':>9} {'est ms':>10} {'est/meas':>9}"
    )
    lines.append(header)
    for r in rows:
        if r.error:
            lines.append(f"{r.workload:16} {r.candidate:38} failed: {r.error}")
            continue
        lines.append(
            f"{r.workload:16} {r.candidate:38} {_ms(r.median_s):>10} "
            f"{_times(r.ratio_to_best_peer):>8} {r.gflops:8.1f} {100 * r.peak_fraction:6.1f}% "
            f"{r.extra_mib:9.1f} {_ms(r.estimate_s):>10} {_times(r.estimate_ratio):>9}"
        )
    loops = {r.workload: r.calls for r in rows if r.calls > 1}
    if loops:
        lines.append("")
        lines.append(
            f"{', '.join(loops)}: time per call, the mean over a timed loop of up to "
            f"{max(loops.values())} calls"
        )
    report = cost_model(rows)
    return "\n".join(lines) + (f"\n\n{report}" if report else "")


def cost_model(rows: Sequence[Row]) -> str:
    """Whether ``auto``'s estimate of each measured convkit row is within
    :data:`MIN_RATIO` to :data:`MAX_RATIO` of its measured time; the rows outside are
    listed, and so are those with no estimate or no measurement.

    >>> row = Row("w", "convkit numpy", False, 1e-3, 0.0, 0.0, 0.0, estimate_s=1e-4)
    >>> row.estimate_ratio = 0.1
    >>> print(cost_model([row]))  # doctest: +NORMALIZE_WHITESPACE
    cost model (auto's estimate / measured time; right: 0.33x to 3x): 0 of 1 rows right;
    of the backends auto ranks for host arrays: 0 of 1
      outside: w / convkit numpy: est 0.100 ms, measured 1.00 ms (0.10x)
    """
    mine = [r for r in rows if not r.peer]
    if not mine:
        return ""
    rated = [r for r in mine if not r.error and r.estimate_ratio == r.estimate_ratio]
    outside = [r for r in rated if not MIN_RATIO <= r.estimate_ratio <= MAX_RATIO]
    ranked = [r for r in rated if _ranked(r.candidate)]
    lines = [
        f"cost model (auto's estimate / measured time; right: {MIN_RATIO:.2f}x to "
        f"{MAX_RATIO:g}x): {len(rated) - len(outside)} of {len(rated)} rows right; of the "
        f"backends auto ranks for host arrays: "
        f"{sum(r not in outside for r in ranked)} of {len(ranked)}"
    ]
    for r in outside:
        note = "" if _ranked(r.candidate) else " (a backend auto does not rank for host arrays)"
        lines.append(
            f"  outside: {r.workload} / {r.candidate}: est {_ms(r.estimate_s)} ms, "
            f"measured {_ms(r.median_s)} ms ({_times(r.estimate_ratio)}){note}"
        )
    for r in mine:
        if r.error:
            lines.append(
                f"  not measured: {r.workload} / {r.candidate}: est {_ms(r.estimate_s)} ms"
                f" ({r.error})"
            )
        elif r.estimate_s != r.estimate_s:
            lines.append(f"  no estimate: {r.workload} / {r.candidate}")
    return "\n".join(lines)


def _ranked(candidate: str) -> bool:
    """Whether ``auto`` weighs the backend of a ``convkit NAME ...`` row for NumPy
    input (``convkit auto`` itself: yes); a backend that does not take host arrays, such
    as dask, is run only when selected."""
    from convkit import checks

    name = candidate.split()[1] if candidate.startswith("convkit ") else ""
    if name in ("", "auto"):
        return name == "auto"
    try:
        return bool(checks.registered_backend(name).capabilities.host_arrays)
    except ValueError:
        return False


def peer_library(candidate: str) -> str:
    """The library a peer row belongs to, across workloads (``torch F.conv2d (peer)``
    and ``torch F.conv1d (peer)`` are both ``torch F.conv``).

    >>> peer_library("torch F.conv2d (peer)"), peer_library("torch F.conv1d TF32 off (peer)")
    ('torch F.conv', 'torch F.conv TF32 off')
    """
    return re.sub(r"F\.conv\dd", "F.conv", candidate.removesuffix(" (peer)"))


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


def write_json(rows: Sequence[Row], peak: float, path: str | Path, device: str = "cpu") -> None:
    """The rows as JSON (with the device they were measured on), atomically."""

    def clean(row: Row) -> dict[str, Any]:
        return {
            k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in asdict(row).items()
        }

    payload = {"device": device, "matmul_peak_flops": peak, "rows": [clean(r) for r in rows]}
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
