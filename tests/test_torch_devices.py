"""The torch backend on a device: every argument joins the call's device, the device's
index is kept, precision is scoped to the call, and costs, calibration and the bench
are the device's own.

Most tests run on a stand-in for a GPU: torch's ``meta`` device (tensors with shapes and
no data, on which every torch operation runs without computing) registered as one of
the backend's CUDA-like devices (``convkit_torch.ops.ACCELERATORS``), so the device
logic runs here; what needs values is checked on the CPU or, marked ``cuda``, on a real
GPU.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import convkit as ck
from convkit import bench, calibrate, calibration, checks, dispatch
from convkit.algorithms.direct import cheapest
from convkit.backend import Backend
from convkit.spec import ConvSpec
from convkit.testing import assert_close, reference_conv

torch = pytest.importorskip("torch", reason="these tests are about torch tensors")
from torch.overrides import TorchFunctionMode  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

from convkit_torch import ops as torch_ops  # noqa: E402

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
TORCH = checks.registered_backend("torch")


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> str:
    """Make the torch backend treat ``meta`` tensors as tensors on a CUDA device."""
    assert TORCH.unavailable_reason() is None  # its probe (on the CPU) runs before
    monkeypatch.setattr(torch_ops, "ACCELERATORS", {"cuda", "meta"})
    return "meta"


class Record(TorchFunctionMode):
    """Every torch function called inside: its name, the devices of its tensor
    arguments, and the float32 precision settings when a convolution or a matrix
    product runs."""

    def __init__(self) -> None:
        super().__init__()
        self.devices: dict[str, set[str]] = {}
        self.settings: list[tuple[str, str, str, str]] = []
        self.names: list[str] = []

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        name = getattr(func, "__name__", str(func))
        self.names.append(name)
        for a in (*args, *kwargs.values()):
            for t in a if isinstance(a, list | tuple) else (a,):
                if isinstance(t, torch.Tensor) and t.dim() > 0:
                    self.devices.setdefault(str(t.device), set()).add(name)
        if name.startswith("conv") or name in ("matmul", "einsum", "bmm"):
            self.settings.append(_settings())
        return func(*args, **kwargs)


def _computed_on(seen: Record) -> set[str]:
    """The devices of the tensors torch computed with: a tensor on another device may
    only be moved (``to``) or have an attribute read."""
    return {d for d, names in seen.devices.items() if names - {"to", "__get__"}}


def _settings() -> tuple[bool, bool, str, str]:
    """Whether TF32 is allowed for cuDNN's convolutions and cuBLAS's products (read
    through whichever of torch's two sets of switches answers), and oneDNN's
    per-operator float32 precisions."""
    b: Any = torch.backends
    try:
        cudnn, matmul = b.cudnn.allow_tf32, b.cuda.matmul.allow_tf32
    except RuntimeError:  # the per-operator switches were set apart: read those
        cudnn = b.cudnn.conv.fp32_precision == "tf32"
        matmul = b.cuda.matmul.fp32_precision == "tf32"
    return cudnn, matmul, b.mkldnn.conv.fp32_precision, b.mkldnn.matmul.fp32_precision


def _snapshot() -> list[str]:
    """Every per-operator precision switch of torch, to check that all are put back."""
    b: Any = torch.backends
    switches = [b, b.cuda.matmul, b.cudnn, b.cudnn.conv, b.cudnn.rnn, b.mkldnn]
    return [s.fp32_precision for s in (*switches, b.mkldnn.conv, b.mkldnn.matmul)]


def _meta(*shape: int) -> Any:
    return torch.ones(shape, device="meta")


def _f32(*shape: int) -> np.ndarray:
    return np.ones(shape, dtype=np.float32)


ARGUMENTS = {
    "numpy": _f32,
    "cpu tensor": lambda *shape: torch.ones(shape),
    "meta tensor": _meta,
}


@pytest.mark.parametrize("kind", list(ARGUMENTS))
@pytest.mark.parametrize(
    "op",
    ["conv", "conv 4-d", "conv fft", "conv winograd", "conv_transpose", "convolve", "correlate"],
)
def test_every_argument_joins_the_input_on_its_device(stand_in: str, op: str, kind: str) -> None:
    """The input is on the stand-in GPU, the weight (and bias) a NumPy array, a CPU
    tensor or on the device too: every tensor torch computes on is on the device and
    the result comes back there. (Before, a NumPy weight went to the CPU and
    ``F.conv2d`` refused the mix.)"""
    other = ARGUMENTS[kind]
    with Record() as seen:
        if op == "conv_transpose":
            y = ck.conv_transpose(_meta(2, 3, 9, 9), other(3, 4, 3, 3), other(4), stride=2)
            shape: tuple[int, ...] = (2, 4, 19, 19)
        elif op in ("convolve", "correlate"):
            fn = ck.convolve if op == "convolve" else ck.correlate
            y = fn(_meta(2, 40, 30), other(1, 9, 5), "same", axes=(1, 2))
            shape = (2, 40, 30)
        elif op == "conv 4-d":
            y = ck.conv(_meta(1, 2, 5, 5, 5, 5), other(3, 2, 2, 2, 2, 2), other(3), padding=1)
            shape = (1, 3, 6, 6, 6, 6)
        else:
            method = op.split()[1] if " " in op else "auto"
            y = ck.conv(_meta(2, 3, 12, 12), other(4, 3, 3, 3), other(4), padding=1, method=method)
            shape = (2, 4, 12, 12)
    assert y.device.type == "meta" and tuple(y.shape) == shape
    assert _computed_on(seen) == {"meta"}, seen.devices


@pytest.mark.parametrize("kind", ["numpy", "cpu tensor"])
def test_gradients_take_grad_out_onto_the_inputs_device(stand_in: str, kind: str) -> None:
    other = ARGUMENTS[kind]
    with Record() as seen:
        gx, gw, gb = ck.conv_vjp(_meta(2, 3, 8, 8), _meta(4, 3, 3, 3), other(2, 4, 8, 8), padding=1)
    assert {gx.device.type, gw.device.type, gb.device.type} == {"meta"}
    assert tuple(gw.shape) == (4, 3, 3, 3) and _computed_on(seen) == {"meta"}


def test_a_numpy_input_with_a_device_weight_runs_on_the_weights_device(stand_in: str) -> None:
    """The call runs where its first tensor is; results come back in the input's type,
    so NumPy here: a meta tensor has no values to copy back, which is where the
    stand-in stops."""
    with Record() as seen, pytest.raises(dispatch.BackendError, match="meta tensor"):
        ck.conv(_f32(1, 2, 8), _meta(3, 2, 3), backend="torch")
    assert set(seen.devices) == {"meta"}


def test_a_cpu_input_takes_the_other_arguments_onto_the_cpu(stand_in: str) -> None:
    """A CPU tensor's call runs on the CPU, so a device argument is brought there (the
    stand-in device has no values to bring, so the move itself is what fails) rather
    than handed to torch beside a CPU tensor."""
    x, w, g = torch.ones(1, 2, 8, 8), torch.ones(3, 2, 3, 3), _meta(1, 3, 6, 6)
    assert dispatch.call_device(TORCH, [(TORCH, x), (TORCH, w), (TORCH, g)]) == "cpu"
    assert dispatch.call_device(TORCH, [(TORCH, x), (TORCH, w)]) is None  # all on the CPU
    with pytest.raises(dispatch.BackendError, match=r"in asarray\(\).*meta tensor"):
        ck.conv_vjp(x, w, g)


class _OnSecondGpu(Backend):
    """A backend whose arrays live on ``cuda:1``: what the core reads from a tensor
    there (only the device string matters for the rule)."""

    name = "second-gpu"

    def device_of(self, obj: object) -> str:
        return "cuda:1"


def test_a_device_without_index_is_the_arrays_own_device_of_that_kind() -> None:
    gpu, numpy = _OnSecondGpu(), checks.registered_backend("numpy")
    on_gpu = [(gpu, object()), (numpy, np.ones(2))]
    assert dispatch.call_device(gpu, on_gpu) == "cuda:1"  # no option: the array's own
    assert dispatch.call_device(gpu, on_gpu, "cuda") == "cuda:1"  # "cuda": stays on cuda:1
    assert dispatch.call_device(gpu, on_gpu, "cuda:0") == "cuda:0"  # an index: that one
    assert dispatch.call_device(gpu, on_gpu, "cpu") == "cpu"
    assert dispatch.call_device(numpy, on_gpu) == "cpu"  # NumPy's: the host, others join
    assert dispatch.call_device(gpu, [(numpy, np.ones(2))], "cuda") == "cuda"


class _OnSecondGpuTensor:
    """What ``device_of`` reads from a tensor on ``cuda:1`` (no GPU here to make one)."""

    device = torch.device("cuda", 1)


def test_the_torch_backend_reports_the_device_with_its_index() -> None:
    assert TORCH.device_of(torch.ones(1)) == "cpu"
    assert TORCH.device_of(_meta(1)) == "meta"
    assert TORCH.device_of(_OnSecondGpuTensor()) == "cuda:1"


def test_the_backends_options_carry_the_device_and_precision(
    stand_in: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    received: list[Any] = []
    original = type(TORCH).conv_transpose

    def spy(self: Any, *args: Any) -> Any:
        received.append(args[-1])
        return original(self, *args)

    monkeypatch.setattr(type(TORCH), "conv_transpose", spy)
    ck.conv_transpose(_meta(1, 2, 6, 6), _f32(2, 3, 3, 3), precision="fast")
    ck.conv_transpose(torch.ones(1, 2, 6, 6), _f32(2, 3, 3, 3), backend="torch")
    on_device, on_host = received
    assert on_device["device"] == "meta" and on_device["precision"] == "fast"
    assert on_device.cost_model == TORCH.cuda_costs
    assert "device" not in on_host and on_host["precision"] == "highest"
    assert on_host.cost_model == TORCH.capabilities.costs


def test_methods_chosen_inside_the_backend_use_the_devices_rates(stand_in: str) -> None:
    """``conv_transpose`` picks the method of its inner convolution by the rates of the
    call's device: a 15x15 single-channel kernel goes to the FFT by the CPU's rates
    and stays direct by the GPU's."""
    spec = ConvSpec.build((1, 1, 256, 256), (1, 1, 15, 15), padding=14)
    methods = ("direct", "fft", "winograd")
    assert cheapest(TORCH.capabilities.costs, spec, "float32", methods)[0] == "fft"
    assert cheapest(TORCH.cuda_costs, spec, "float32", methods)[0] == "direct"
    w = np.ones((1, 1, 15, 15), dtype=np.float32)
    with Record() as on_host:
        ck.conv_transpose(torch.ones(1, 1, 242, 242), w, backend="torch")
    with Record() as on_device:
        ck.conv_transpose(_meta(1, 1, 242, 242), w)
    assert any(n.startswith("fft_") for n in on_host.names)
    assert not any(n.startswith("fft_") for n in on_device.names)
    assert "conv2d" in on_device.names


def test_auto_estimates_a_device_tensor_with_the_gpus_rates(stand_in: str) -> None:
    x, w = _meta(8, 64, 56, 56), _f32(64, 64, 3, 3)
    choice = ck.explain(x, w, padding=1)
    spec = ConvSpec.build((8, 64, 56, 56), (64, 64, 3, 3), padding=1)
    assert choice.backend == "torch"  # a device tensor stays with its owner
    assert choice.costs["direct"] == pytest.approx(TORCH.cuda_costs.conv_direct(spec))


def test_the_cuda_model_is_faster_than_torchs_cpu_model_at_every_rate() -> None:
    """Every throughput of the built-in CUDA model is above torch's CPU one (the
    depthwise rate was left at a default below it, sending every depthwise conv on a
    GPU to the FFT), and every fixed cost is set."""
    gpu, cpu = TORCH.cuda_costs, TORCH.capabilities.costs
    for rate in ("mac_rate", "tap_rate", "fft_rate", "depthwise_rate", "copy_rate"):
        assert getattr(gpu, rate) > getattr(cpu, rate), rate
    assert gpu.spectral_mac_rate is not None and gpu.spectral_mac_rate > cpu.spectral_mac_rate
    spec = ConvSpec.build((8, 256, 56, 56), (256, 1, 3, 3), padding=1, groups=256)
    assert cheapest(gpu, spec, "float32", ("direct", "fft", "winograd"))[0] == "direct"
    tiny = ConvSpec.build((1, 4, 16, 16), (4, 4, 3, 3), padding=1)
    assert cheapest(gpu, tiny, "float32", ("direct", "fft", "winograd"))[0] == "direct"


@contextlib.contextmanager
def _per_operator_switches_set_apart() -> Iterator[None]:
    """The process as a program that set cuDNN's convolution switch by torch's
    per-operator API leaves it: torch then refuses to read its older switches."""
    conv = torch.backends.cudnn.conv
    before = conv.fp32_precision
    conv.fp32_precision = "ieee"
    try:
        yield
    finally:
        conv.fp32_precision = before


CALLS = {
    "conv": lambda p: ck.conv(_meta(2, 3, 12, 12), _f32(4, 3, 3, 3), padding=1, precision=p),
    "conv fft": lambda p: ck.conv(_meta(2, 3, 12, 12), _f32(4, 3, 3, 3), method="fft", precision=p),
    "conv winograd": lambda p: ck.conv(
        _meta(2, 8, 12, 12), _f32(8, 8, 3, 3), method="winograd", precision=p
    ),
    "conv_vjp": lambda p: ck.conv_vjp(
        _meta(2, 3, 8, 8), _meta(4, 3, 3, 3), _meta(2, 4, 6, 6), precision=p
    ),
    "conv_transpose": lambda p: ck.conv_transpose(
        _meta(1, 2, 6, 6), _f32(2, 3, 3, 3), stride=2, precision=p
    ),
    "convolve": lambda p: ck.convolve(_meta(3, 500), _f32(1, 9), axes=1, precision=p),
    "correlate 2-d": lambda p: ck.correlate(_meta(40, 30), _f32(9, 5), precision=p),
}


@pytest.mark.parametrize("process", ["as torch starts", "per-operator switches set apart"])
@pytest.mark.parametrize("call", list(CALLS))
@pytest.mark.parametrize("precision", ["highest", "fast"])
def test_precision_is_set_within_the_call_and_restored(
    stand_in: str, precision: str, call: str, process: str
) -> None:
    """On a CUDA device ``"highest"`` turns TF32 off for cuDNN's convolutions and
    cuBLAS's products inside the call (torch allows it for convolutions by default)
    and ``"fast"`` turns it on, whichever of torch's two sets of switches the program
    uses; every switch is as before afterwards."""
    apart = process == "per-operator switches set apart"
    with _per_operator_switches_set_apart() if apart else contextlib.nullcontext():
        before, snapshot = _settings(), _snapshot()
        with Record() as seen:
            CALLS[call](precision)
        assert _settings() == before and _snapshot() == snapshot
    want = precision == "fast"
    assert seen.settings and {s[:2] for s in seen.settings} == {(want, want)}


class RecordKernels(TorchDispatchMode):
    """The TF32 switches whenever a convolution kernel runs, the backward's included
    (which autograd runs after the Python call returned)."""

    def __init__(self) -> None:
        super().__init__()
        self.settings: list[tuple[bool, bool]] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if "convolution" in str(func):
            self.settings.append(_settings()[:2])
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("precision", ["highest", "fast"])
def test_precision_covers_the_autograd_backward_too(stand_in: str, precision: str) -> None:
    x = torch.ones(2, 3, 8, 8, device="meta", requires_grad=True)
    w = torch.ones(4, 3, 3, 3, device="meta", requires_grad=True)
    with RecordKernels() as kernels:
        y = ck.conv(x, w, padding=1, precision=precision)
        y.sum().backward()
    assert x.grad is not None and w.grad is not None and tuple(w.grad.shape) == (4, 3, 3, 3)
    want = precision == "fast"
    assert len(kernels.settings) >= 2  # the forward and the backward kernels
    assert set(kernels.settings) == {(want, want)}


def test_the_backward_under_a_precision_is_autograds() -> None:
    """On the CPU with a process-wide bf16 opt-in (so the call takes the recomputing
    backward): torch's gradcheck passes, a retained graph goes backward twice, and the
    node keeps only the tensor arguments, as ``F.conv2d``'s does."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 7, 7, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, generator=g, dtype=torch.float64, requires_grad=True)

    def f(x: Any, w: Any, b: Any) -> Any:
        return ck.conv(x, w, b, padding=1, padding_mode="reflect", backend="torch")

    with _process_opts_into_bf16():
        assert torch.autograd.gradcheck(f, (x, w, b))
        y = f(x, w, b)
        node = y.grad_fn
        assert type(node).__name__ == "_AtPrecisionBackward"
        assert len(node.saved_tensors) == 3  # x, w, b: no output, no graph
        loss = y.square().sum()
        loss.backward(retain_graph=True)
        first = w.grad.clone()
        loss.backward()
        gw = torch.func.grad(lambda w: f(x.detach(), w, b.detach()).square().sum())(w.detach())
    torch.testing.assert_close(w.grad, 2 * first)
    torch.testing.assert_close(gw, first)  # torch.func differentiates the forward's graph
    xr, wr = x.detach().requires_grad_(), w.detach().requires_grad_()
    ref = torch.nn.functional.conv2d(torch.nn.functional.pad(xr, (1, 1, 1, 1), "reflect"), wr)
    (ref + b.detach().reshape(1, -1, 1, 1)).square().sum().backward()
    torch.testing.assert_close(first, wr.grad)


def test_a_backward_recomputes_its_forward_once(
    stand_in: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``conv_transpose`` runs ``conv`` inside: its recomputation must not build a
    recomputing node of its own (the forward would then run twice more)."""
    calls = [0]
    conv2d = torch_ops._CONV[2]

    def counted(*args: Any) -> Any:
        calls[0] += 1
        return conv2d(*args)

    monkeypatch.setitem(torch_ops._CONV, 2, counted)
    x = torch.ones(1, 2, 6, 6, device="meta", requires_grad=True)
    w = torch.ones(2, 3, 3, 3, device="meta", requires_grad=True)
    y = ck.conv_transpose(x, w)
    assert calls == [1]
    y.sum().backward()
    assert calls == [2]  # one recomputation
    assert x.grad is not None and w.grad is not None


def test_a_switch_the_program_sets_during_a_call_is_kept(stand_in: str) -> None:
    """The last call out puts back only the switches that still hold what the calls
    set; one the program set meanwhile keeps the program's value."""
    b: Any = torch.backends
    conv, matmul = b.cudnn.conv.fp32_precision, b.cuda.matmul.fp32_precision
    try:
        with torch_ops.scope("fast", torch.device("meta")):
            b.cuda.matmul.fp32_precision = "ieee"  # the program's own choice
        assert b.cuda.matmul.fp32_precision == "ieee"
        assert b.cudnn.conv.fp32_precision == conv  # the one convkit set: put back
    finally:
        b.cuda.matmul.fp32_precision = matmul


def test_calls_in_two_threads_share_the_switches(stand_in: str) -> None:
    """Two threads calling with different precisions at once: a ``"highest"`` call never
    sees TF32 (a ``"fast"`` one may run at the highest while they overlap), and the
    process's switches are as before when both are done."""
    before, snapshot = _settings(), _snapshot()
    seen: dict[str, list[tuple[bool, bool]]] = {}
    errors: list[BaseException] = []

    def calls(precision: str) -> None:
        try:
            with Record() as mine:
                for _ in range(30):
                    ck.conv(_meta(1, 2, 8, 8), _f32(3, 2, 3, 3), precision=precision)
            seen[precision] = [s[:2] for s in mine.settings]
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=calls, args=(p,)) for p in ("highest", "fast")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert set(seen["highest"]) == {(False, False)}
    assert set(seen["fast"]) <= {(True, True), (False, False)} and (True, True) in seen["fast"]
    assert _settings() == before and _snapshot() == snapshot


@contextlib.contextmanager
def _process_opts_into_bf16() -> Iterator[None]:
    """The process as a program that opted in to oneDNN's bfloat16 for float32 leaves it."""
    mkldnn = torch.backends.mkldnn
    before = (mkldnn.conv.fp32_precision, mkldnn.matmul.fp32_precision)
    mkldnn.conv.fp32_precision = mkldnn.matmul.fp32_precision = "bf16"
    try:
        yield
    finally:
        mkldnn.conv.fp32_precision, mkldnn.matmul.fp32_precision = before


def test_highest_undoes_a_process_wide_lower_precision_on_the_cpu() -> None:
    x, w = torch.ones(1, 2, 8, 8), torch.ones(3, 2, 3, 3)
    with _process_opts_into_bf16():
        with Record() as highest:
            ck.conv(x, w, backend="torch")
        with Record() as fast:
            ck.conv(x, w, backend="torch", precision="fast")
        assert {s[2:] for s in highest.settings} == {("ieee", "ieee")}
        assert {s[2:] for s in fast.settings} == {("bf16", "bf16")}  # the process's choice
        assert _settings()[2:] == ("bf16", "bf16")


@pytest.mark.parametrize("precision", ["highest", "fast"])
def test_precision_reaches_the_blocks_of_the_dask_backend(precision: str) -> None:
    """The dask backend has no precision of its own: it hands the call's to the local
    backend that computes each block."""
    da = pytest.importorskip("dask.array", reason="the dask backend needs dask")
    x, w = da.ones((1, 2, 16, 16), chunks=8, dtype="float32"), np.ones((3, 2, 3, 3), "float32")
    with _process_opts_into_bf16(), Record() as seen:
        with ck.use_backend("dask", inner="torch"):
            y = ck.conv(x, w, padding=1, precision=precision)
        y = y.compute(scheduler="synchronous")  # in this thread, where Record sees it
    assert y.shape == (1, 3, 16, 16)
    want = "ieee" if precision == "highest" else "bf16"
    assert seen.settings and {s[2:] for s in seen.settings} == {(want, want)}


def test_a_call_without_lowered_settings_on_the_cpu_sets_nothing() -> None:
    before = _settings()
    with Record() as seen:
        ck.conv(torch.ones(1, 2, 8, 8), torch.ones(3, 2, 3, 3), backend="torch")
    assert {s[2:] for s in seen.settings} == {before[2:]}


@pytest.mark.parametrize("bad", ["high", "HIGHEST", None, 3])
@pytest.mark.parametrize("op", ["conv", "conv_vjp", "conv_transpose", "convolve", "correlate"])
def test_a_bad_precision_is_refused_with_the_values(op: str, bad: Any) -> None:
    x = np.ones((1, 1, 8))
    args = {
        "conv": (x, np.ones((1, 1, 3))),
        "conv_vjp": (x, np.ones((1, 1, 3)), np.ones((1, 1, 6))),
        "conv_transpose": (x, np.ones((1, 1, 3))),
        "convolve": (np.ones(8), np.ones(3)),
        "correlate": (np.ones(8), np.ones(3)),
    }[op]
    with pytest.raises(ValueError, match=r"precision=.* expected one of 'highest', 'fast'"):
        getattr(ck, op)(*args, precision=bad)
    with pytest.raises(ValueError, match="precision="):  # an empty convolve too
        ck.convolve(np.ones(0), np.ones(3), precision="high")


@pytest.mark.parametrize("name", ["numpy", "scipy", "torch"])
def test_backends_without_a_choice_compute_fast_at_the_highest_precision(name: str) -> None:
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 3, 16, 16), np.float32), rng.standard_normal((4, 3, 3, 3))
    w = w.astype(np.float32)
    highest = ck.conv(x, w, padding=1, backend=name)
    fast = ck.conv(x, w, padding=1, backend=name, precision="fast")
    np.testing.assert_array_equal(highest, fast)  # on the CPU torch's fast changes nothing
    assert_close(fast, reference_conv(x, w, padding=1), "float32")


def test_list_backends_says_who_honours_precision() -> None:
    precisions = {b.name: b.capabilities.precisions for b in ck.list_backends()}
    assert precisions["torch"] == ("highest", "fast")
    assert precisions["numpy"] == precisions["scipy"] == ("highest",)
    out = subprocess.run(
        [sys.executable, "-m", "convkit", "backends"], capture_output=True, text=True, check=True
    ).stdout
    header, *rows = out.splitlines()
    assert "precision" in header.split()
    assert any(r.startswith("torch ") and "highest,fast" in r for r in rows)


def test_calibration_keys_rates_by_device_model_and_index() -> None:
    class TwoGpus(_OnSecondGpu):
        def device_key(self, device: str) -> str:
            index = device.partition(":")[2] or "0"
            return f"cuda:{index} ({'H200' if index == '1' else 'A100'})"

    backend = TwoGpus()
    assert calibration.model_key(backend, {"device": "cuda:1"}) == "second-gpu:cuda:1 (H200)"
    assert calibration.model_key(backend, {"device": "cuda:0"}) == "second-gpu:cuda:0 (A100)"
    assert calibration.model_key(TORCH, {}) == "torch:cpu"
    assert TORCH.device_key("meta") == "meta" and TORCH.device_key("cpu") == "cpu"


def test_calibration_on_a_device_times_arrays_already_there(
    stand_in: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a device the measured operands are made there once: every tensor the
    measurement computes with is on the device (no host round trip in the timings),
    and every rate comes out finite."""
    synced: list[Any] = []
    monkeypatch.setattr(torch_ops, "synchronize", synced.append)
    with Record() as seen:
        model = calibrate._measure("torch", {"device": "meta"}, TORCH.cuda_costs, quick=True)
    assert _computed_on(seen) == {"meta"}, seen.devices
    assert len(synced) > 20 and all(  # every timed call, its results on the device
        t.device.type == "meta" for r in synced for t in (r if isinstance(r, tuple) else (r,))
    )
    rates = [v for v in vars(model).values() if isinstance(v, float)]
    assert all(np.isfinite(rates))


def test_direct_convolve_is_direct_inside_the_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    """``method="direct"`` of an N-d ``convolve`` runs the direct convolution even
    where the backend's cost model would pick a transform for the inner ``conv``
    (which is what calibration times as the direct rate, and what keeps integers
    exact)."""
    a, k = torch.ones(256, 256), torch.ones(31, 31)
    with Record() as seen:
        ck.convolve(a, k, "valid", method="direct", backend="torch")
    assert "conv2d" in seen.names
    assert not any(n.startswith("fft_") for n in seen.names)


def test_bench_on_a_device_times_the_torch_backend_against_torchs_functions(
    stand_in: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced = [0]

    def count(self: bench.Device) -> None:
        synced[0] += 1

    monkeypatch.setattr(bench.Device, "synchronize", count)
    rows, peak = bench.run(
        ["cnn3x3", "audio1k", "cnn3x3_backward"],
        quick=True,
        rounds=1,
        device="meta",
        stream=io.StringIO(),
    )
    names = {(r.workload, r.candidate) for r in rows}
    for work in ("cnn3x3", "audio1k"):
        assert {(work, "convkit auto"), (work, "convkit torch auto")} <= names
        assert (work, "convkit torch fast") in names and (work, "convkit torch direct") in names
    assert ("cnn3x3", "torch F.conv2d (peer)") in names
    assert ("audio1k", "torchaudio fftconvolve (peer)") in names
    assert ("cnn3x3_backward", "torch autograd (peer)") in names
    assert not any("numpy" in c or "scipy" in c for _, c in names)  # host libraries
    assert not [r.error for r in rows if r.error]
    assert "device meta" in bench.table(rows, peak, "meta")
    assert synced[0] >= sum(r.calls for r in rows) * 3  # every call timed, in each round


def test_bench_on_a_missing_device_is_a_usage_error() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    result = subprocess.run(
        [sys.executable, "-m", "convkit", "bench", "--device", "cuda", "--quick"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "sees no CUDA device" in result.stderr


def test_nn_layers_refuse_a_device_tensor_and_name_the_gpu_modules() -> None:
    from convkit import nn

    layer = nn.Conv2d(3, 4, 3)
    with pytest.raises(TypeError, match=r"Conv2d computes on NumPy arrays.*convkit\.nn\.torch"):
        layer(_meta(1, 3, 8, 8))
    layer(np.ones((1, 3, 8, 8), dtype=np.float32))
    with pytest.raises(TypeError, match=r"its grad_out is a torch\.Tensor on meta"):
        layer.backward(_meta(1, 4, 6, 6))
    assert layer(torch.ones(1, 3, 8, 8)).shape == (1, 4, 6, 6)  # a CPU tensor is host memory
    with pytest.raises(TypeError, match=r"requires grad.*convkit\.nn\.torch"):
        layer(torch.ones(1, 3, 8, 8, requires_grad=True))
    xp = pytest.importorskip("array_api_strict", reason="an Array API array on the CPU")
    assert layer(xp.ones((1, 3, 8, 8), dtype=xp.float32)).shape == (1, 4, 6, 6)


# --- on a real GPU -------------------------------------------------------------------


def _tf32_sensitive() -> tuple[Any, Any]:
    """float32 operands where TF32 (10 mantissa bits) is far from float32's 1e-5:
    sums of 2304 products of normal values per output."""
    g = torch.Generator().manual_seed(0)
    return torch.randn(4, 256, 32, 32, generator=g), torch.randn(256, 256, 3, 3, generator=g)


@cuda
@pytest.mark.cuda
def test_highest_keeps_float32_on_cuda_where_tf32_would_not() -> None:
    x, w = _tf32_sensitive()
    expected = reference_conv(x.double().numpy(), w.double().numpy(), padding=1)
    xc, wc = x.cuda(), w.cuda()
    scale = np.max(np.abs(expected))
    highest = ck.conv(xc, wc, padding=1, method="direct").cpu().double().numpy()
    fast = ck.conv(xc, wc, padding=1, method="direct", precision="fast").cpu().double().numpy()
    assert np.max(np.abs(highest - expected)) / scale <= 1e-5
    assert np.max(np.abs(fast - expected)) / scale <= 5e-3  # the documented tolerance
    if torch.cuda.get_device_capability() >= (8, 0):  # tensor cores with TF32
        assert np.max(np.abs(fast - highest)) > 0
    for method in ("fft", "winograd"):  # cuFFT's and cuBLAS's paths under both switches
        for precision, tol in (("highest", 1e-5), ("fast", 5e-3)):
            y = ck.conv(xc, wc, padding=1, method=method, precision=precision)
            error = np.max(np.abs(y.cpu().double().numpy() - expected)) / scale
            assert error <= tol, (method, precision, error)
    before = torch.backends.cudnn.conv.fp32_precision
    ck.conv(xc, wc, padding=1)
    assert torch.backends.cudnn.conv.fp32_precision == before


@cuda
@pytest.mark.cuda
@pytest.mark.parametrize("op", ["conv", "conv_vjp", "conv_transpose", "convolve"])
def test_numpy_arguments_join_a_cuda_input(op: str) -> None:
    rng = np.random.default_rng(0)
    x = torch.randn(2, 3, 16, 16, device="cuda", dtype=torch.float64)
    w = rng.standard_normal((4, 3, 3, 3))
    if op == "conv":
        y = ck.conv(x, w, rng.standard_normal(4), padding=1)
        assert y.device == x.device
    elif op == "conv_vjp":
        gx, gw, _ = ck.conv_vjp(x, w, rng.standard_normal((2, 4, 16, 16)), padding=1)
        assert gx.device == x.device and isinstance(gw, np.ndarray)
    elif op == "conv_transpose":
        y = ck.conv_transpose(x, rng.standard_normal((3, 2, 3, 3)), stride=2)
        assert y.device == x.device
    else:
        y = ck.convolve(x, rng.standard_normal((1, 1, 5, 5)), "same", axes=(2, 3))
        assert y.device == x.device


@pytest.mark.cuda
@pytest.mark.skipif(
    not torch.cuda.is_available() or torch.cuda.device_count() < 2, reason="needs two GPUs"
)
def test_a_tensor_on_the_second_gpu_stays_there() -> None:
    x = torch.randn(1, 2, 8, 8, device="cuda:1")
    w = torch.randn(3, 2, 3, 3, device="cuda:1")
    with Record() as seen, ck.use_backend("torch", device="cuda"):
        y = ck.conv(x, w)
    assert y.device == x.device and set(seen.devices) == {"cuda:1"}


@cuda
@pytest.mark.cuda
def test_calibration_and_bench_on_cuda(tmp_path: Any) -> None:
    model = calibrate._measure("torch", {"device": "cuda"}, TORCH.cuda_costs, quick=True)
    assert all(v > 0 for v in (model.mac_rate, model.fft_rate, model.depthwise_rate))
    key = calibration.model_key(TORCH, {"device": "cuda"})
    assert key.startswith("torch:cuda:") and torch.cuda.get_device_name() in key
    models, _, failures = calibrate.calibrate(["torch"], quick=True)
    assert not failures
    assert {
        calibration.model_key(TORCH, {"device": f"cuda:{i}"})
        for i in range(torch.cuda.device_count())
    } <= set(models)  # each GPU measured and stored by its index and model
    rows, _ = bench.run(["cnn3x3"], quick=True, rounds=1, device="cuda", stream=io.StringIO())
    by_name = {r.candidate: r for r in rows}
    assert not [r.error for r in rows if r.error]
    assert by_name["convkit torch auto"].extra_mib >= 0
