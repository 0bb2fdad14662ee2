"""convkit.nn.torch: torch.nn.Modules computed by convkit.conv.

References: torch.nn.Conv1d/2d/3d and ConvTranspose1d/2d/3d where torch has the
configuration, a NumPy direct sum over numpy.pad for what it lacks (4-d, ``symmetric``,
strided ``same``, uneven padding), and finite differences (``torch.autograd.gradcheck``)
for the gradients.
"""

from __future__ import annotations

import importlib.util
import itertools
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="convkit.nn.torch needs torch")
F = torch.nn.functional

from convkit.nn.torch import (  # noqa: E402  (after the importorskip)
    Conv1d,
    Conv2d,
    Conv3d,
    Conv4d,
    ConvNd,
    ConvTranspose1d,
    ConvTranspose2d,
    ConvTranspose3d,
    ConvTranspose4d,
    ConvTransposeNd,
)

MODES = ("zeros", "reflect", "symmetric", "replicate", "circular")
TORCH_MODES = ("zeros", "reflect", "replicate", "circular")
NUMPY_MODE = {
    "zeros": "constant",
    "reflect": "reflect",
    "symmetric": "symmetric",
    "replicate": "edge",
    "circular": "wrap",
}
OURS = {1: Conv1d, 2: Conv2d, 3: Conv3d, 4: Conv4d}
TORCH = {1: torch.nn.Conv1d, 2: torch.nn.Conv2d, 3: torch.nn.Conv3d}
OURS_T = {1: ConvTranspose1d, 2: ConvTranspose2d, 3: ConvTranspose3d, 4: ConvTranspose4d}
TORCH_T = {1: torch.nn.ConvTranspose1d, 2: torch.nn.ConvTranspose2d, 3: torch.nn.ConvTranspose3d}
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "torch_conv4d.py"

# Small, uneven spatial sizes and kernels per d (an axis mix-up changes the shape).
SIZES = {1: (6,), 2: (5, 4), 3: (4, 5, 3), 4: (4, 3, 4, 3)}
KERNELS = {1: (3,), 2: (3, 2), 3: (2, 3, 2), 4: (2, 3, 2, 2)}


def _gradcheck(module: torch.nn.Module, x: torch.Tensor, **kwargs: Any) -> None:
    """Finite differences against autograd w.r.t. the input and every parameter of
    ``module``, called through ``torch.func.functional_call`` (the module's forward)."""
    names = [name for name, _ in module.named_parameters()]
    params = [p.detach().clone().requires_grad_(True) for _, p in module.named_parameters()]

    def f(x: torch.Tensor, *values: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(module, dict(zip(names, values, strict=True)), (x,))

    assert torch.autograd.gradcheck(f, (x.requires_grad_(True), *params), **kwargs)


def _reference_conv(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    *,
    stride: tuple[int, ...],
    pads: list[tuple[int, int]],
    dilation: tuple[int, ...],
    mode: str,
) -> np.ndarray:
    """Direct sum over numpy.pad, any d, groups=1: y[n, o, i] = b[o] +
    sum_{c, a} w[o, c, a] x_pad[n, c, i * stride + a * dilation]."""
    xp = np.pad(x, [(0, 0), (0, 0), *pads], mode=NUMPY_MODE[mode])
    k = w.shape[2:]
    out = [
        (p - (kk - 1) * dl - 1) // s + 1
        for p, kk, s, dl in zip(xp.shape[2:], k, stride, dilation, strict=True)
    ]
    y = np.zeros((x.shape[0], w.shape[0], *out))
    for a in itertools.product(*(range(kk) for kk in k)):
        window = tuple(
            slice(ai * dl, ai * dl + (o - 1) * s + 1, s)
            for ai, dl, o, s in zip(a, dilation, out, stride, strict=True)
        )
        y += np.einsum("nc...,oc->no...", xp[(slice(None), slice(None), *window)], w[(..., *a)])
    if b is not None:
        y += b.reshape(1, -1, *([1] * len(k)))
    return y


def _same_pads(size, kernel, stride, dilation) -> list[tuple[int, int]]:
    pads = []
    for s, k, st, dl in zip(size, kernel, stride, dilation, strict=True):
        total = max(0, (math.ceil(s / st) - 1) * st + (k - 1) * dl + 1 - s)
        pads.append((total // 2, total - total // 2))
    return pads


# ---------------------------------------------------------------- gradients


@pytest.mark.parametrize("config", ["stride1-int", "stride2-same"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("d", [1, 2, 3, 4])
def test_conv_gradcheck(d: int, mode: str, config: str) -> None:
    torch.manual_seed(d)
    kwargs: dict[str, Any] = (
        {"stride": 1, "padding": 1} if config == "stride1-int" else {"stride": 2, "padding": "same"}
    )
    conv = ConvNd(2, 2, KERNELS[d], padding_mode=mode, dtype=torch.float64, **kwargs)
    x = torch.randn(1, 2, *SIZES[d], dtype=torch.float64)
    _gradcheck(conv, x)


@pytest.mark.parametrize(
    ("d", "options"),
    [
        (2, {"groups": 2, "dilation": 2, "padding": (2, (1, 3)), "padding_mode": "reflect"}),
        (3, {"groups": 4, "dilation": (1, 2, 1), "padding": "same", "padding_mode": "symmetric"}),
        (4, {"groups": 2, "dilation": 2, "stride": 2, "padding": 2, "padding_mode": "circular"}),
    ],
    ids=["2d-groups-dilation-uneven", "3d-depthwise-same", "4d-groups-dilation-stride"],
)
def test_conv_gradcheck_groups_and_dilation(d: int, options: dict[str, Any]) -> None:
    torch.manual_seed(0)
    conv = ConvNd(4, 4, (2,) * d, dtype=torch.float64, **options)
    x = torch.randn(1, 4, *((5,) * d), dtype=torch.float64)
    _gradcheck(conv, x, fast_mode=d == 4)  # fast mode: random directions, 4-d is large


@pytest.mark.parametrize("d", [1, 2, 3, 4])
def test_conv_transpose_gradcheck(d: int) -> None:
    torch.manual_seed(d)
    up = ConvTransposeNd(
        2, 4, KERNELS[d], stride=2, padding=1, output_padding=1, groups=2, dtype=torch.float64
    )
    x = torch.randn(1, 2, *(3,) * d, dtype=torch.float64)
    _gradcheck(up, x, fast_mode=d == 4)  # fast mode: random directions, 4-d is large
    dilated = ConvTransposeNd(2, 2, KERNELS[d], dilation=2, dtype=torch.float64, bias=False)
    _gradcheck(dilated, x[0], fast_mode=d == 4)  # unbatched too


# ---------------------------------------------------------------- parity with torch.nn

CONV_OPTIONS = [
    {"stride": 1, "padding": 1},
    {"stride": 2, "padding": 1, "dilation": 2},
    {"padding": "same", "dilation": (2, 1, 1)},
    {"padding": 1, "groups": 2, "bias": False},
    {"padding": "valid", "stride": (1, 2, 1)},
]


@pytest.mark.parametrize("options", CONV_OPTIONS, ids=lambda o: ",".join(map(str, o.items())))
@pytest.mark.parametrize("mode", TORCH_MODES)
@pytest.mark.parametrize("d", [1, 2, 3])
def test_conv_equals_torch(d: int, mode: str, options: dict[str, Any]) -> None:
    options = {
        k: v[:d] if isinstance(v, tuple) and not isinstance(v[0], tuple) else v
        for k, v in options.items()
    }
    args = (4, 6, 3)
    torch.manual_seed(7)
    theirs = TORCH[d](*args, padding_mode=mode, dtype=torch.float64, **options)
    torch.manual_seed(7)
    ours = OURS[d](*args, padding_mode=mode, dtype=torch.float64, **options)

    # the same seed gives the same parameters, and the same printout
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for key, value in theirs.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value), key

    x = torch.randn(2, 4, *((7,) * d), dtype=torch.float64)
    x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    y_ours, y_theirs = ours(x1), theirs(x2)
    torch.testing.assert_close(y_ours, y_theirs, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(y_theirs)
    (y_ours * g).sum().backward()
    (y_theirs * g).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-12, atol=1e-12)
    for (name, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-12, atol=1e-12, msg=name)
    # unbatched, as torch allows
    torch.testing.assert_close(ours(x[0]), theirs(x[0]), rtol=1e-12, atol=1e-12)


def test_positional_arguments_are_torchs() -> None:
    """Conv2d(in, out, k, stride, padding, dilation, groups, bias, padding_mode, device,
    dtype) and ConvTranspose2d(in, out, k, stride, padding, output_padding, groups, bias,
    dilation, padding_mode, device, dtype), all positional."""
    conv_args = (4, 6, 3, 2, 1, 2, 2, False, "reflect", "cpu", torch.float64)
    torch.manual_seed(1)
    theirs = torch.nn.Conv2d(*conv_args)
    torch.manual_seed(1)
    ours = Conv2d(*conv_args)
    assert repr(ours) == repr(theirs)
    assert torch.equal(ours.weight, theirs.weight) and ours.weight.dtype == torch.float64
    x = torch.randn(1, 4, 9, 9, dtype=torch.float64)
    torch.testing.assert_close(ours(x), theirs(x), rtol=1e-12, atol=1e-12)

    t_args = (4, 6, 3, 2, 1, 1, 2, True, 2, "zeros", "cpu", torch.float64)
    torch.manual_seed(1)
    theirs_t = torch.nn.ConvTranspose2d(*t_args)
    torch.manual_seed(1)
    ours_t = ConvTranspose2d(*t_args)
    assert repr(ours_t) == repr(theirs_t)
    assert torch.equal(ours_t.weight, theirs_t.weight) and torch.equal(ours_t.bias, theirs_t.bias)
    torch.testing.assert_close(ours_t(x), theirs_t(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize(
    "options",
    [
        {"stride": 2, "padding": 1, "output_padding": 1},
        {"stride": 3, "dilation": 2, "groups": 2, "output_padding": 1},
        {"padding": 2, "dilation": 2, "bias": False},
    ],
    ids=["stride-outpad", "stride-dilation-groups", "padding-dilation-nobias"],
)
def test_conv_transpose_equals_torch(d: int, options: dict[str, Any]) -> None:
    args = (4, 6, 3)
    torch.manual_seed(5)
    theirs = TORCH_T[d](*args, dtype=torch.float64, **options)
    torch.manual_seed(5)
    ours = OURS_T[d](*args, dtype=torch.float64, **options)
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for key, value in theirs.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value), key
    x = torch.randn(2, 4, *((4,) * d), dtype=torch.float64)
    x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    y_ours, y_theirs = ours(x1), theirs(x2)
    torch.testing.assert_close(y_ours, y_theirs, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(y_theirs)
    (y_ours * g).sum().backward()
    (y_theirs * g).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ours.weight.grad, theirs.weight.grad, rtol=1e-12, atol=1e-12)
    if "output_padding" in options:  # output_size picks output_padding as torch's does
        size = [s - 1 for s in y_theirs.shape[2:]]
        y_sized = theirs(x, output_size=size)
        assert list(y_sized.shape[2:]) == size
        torch.testing.assert_close(ours(x, output_size=size), y_sized, rtol=1e-12, atol=1e-12)


def test_load_state_dict_from_torch_gives_torchs_outputs() -> None:
    theirs = torch.nn.Conv3d(3, 4, (3, 2, 3), stride=(1, 2, 1), padding=(1, 0, 2))
    ours = Conv3d(3, 4, (3, 2, 3), stride=(1, 2, 1), padding=(1, 0, 2))
    assert not torch.equal(ours.weight, theirs.weight)  # independently initialised
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(2, 3, 6, 7, 5)
    torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-6)
    # and back
    theirs_t = torch.nn.ConvTranspose2d(3, 2, 3, stride=2)
    ours_t = ConvTranspose2d(3, 2, 3, stride=2)
    theirs_t.load_state_dict(ours_t.state_dict())
    x = torch.randn(1, 3, 4, 4)
    torch.testing.assert_close(ours_t(x), theirs_t(x), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- beyond torch.nn


@pytest.mark.parametrize("mode", MODES)
def test_conv4d_equals_direct_sum(mode: str) -> None:
    """Four dimensions, every padding mode, uneven padding and stride, against a direct
    sum over numpy.pad."""
    torch.manual_seed(2)
    pads = [(1, 0), (0, 2), (1, 1), (2, 1)]
    conv = Conv4d(
        2, 3, (2, 3, 2, 3), stride=(1, 2, 1, 2), padding=pads, dilation=(2, 1, 1, 1),
        padding_mode=mode, dtype=torch.float64,
    )  # fmt: skip
    x = torch.randn(2, 2, 4, 5, 3, 4, dtype=torch.float64)
    expected = _reference_conv(
        x.numpy(), conv.weight.detach().numpy(), conv.bias.detach().numpy(),
        stride=conv.stride, pads=pads, dilation=conv.dilation, mode=mode,
    )  # fmt: skip
    np.testing.assert_allclose(conv(x).detach().numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", MODES)
def test_strided_same_and_symmetric_equal_direct_sum(mode: str) -> None:
    """What torch.nn refuses: padding='same' with stride 2 (output ceil(S / 2)), and the
    symmetric mode; 2-d and 3-d."""
    for d, size in ((2, (7, 6)), (3, (5, 6, 4))):
        torch.manual_seed(d)
        conv = OURS[d](2, 3, 3, stride=2, padding="same", dilation=1, padding_mode=mode)
        conv = conv.double()
        x = torch.randn(1, 2, *size, dtype=torch.float64)
        y = conv(x)
        assert tuple(y.shape[2:]) == tuple(math.ceil(s / 2) for s in size)
        expected = _reference_conv(
            x.numpy(), conv.weight.detach().numpy(), conv.bias.detach().numpy(),
            stride=conv.stride, pads=_same_pads(size, (3,) * d, (2,) * d, (1,) * d),
            dilation=conv.dilation, mode=mode,
        )  # fmt: skip
        np.testing.assert_allclose(y.detach().numpy(), expected, rtol=1e-12, atol=1e-12)


def test_conv_transpose4d_is_the_adjoint_of_conv4d() -> None:
    """<conv(x), y> = <x, conv_transpose(y)> with the same weight; output_size gives back
    the input's size."""
    torch.manual_seed(3)
    conv = Conv4d(2, 4, (3, 2, 3, 2), stride=2, padding=1, dilation=(1, 2, 1, 1), bias=False)
    conv = conv.double()
    up = ConvTranspose4d(
        4, 2, (3, 2, 3, 2), stride=2, padding=1, dilation=(1, 2, 1, 1), bias=False
    ).double()
    up.load_state_dict(conv.state_dict())
    x = torch.randn(2, 2, 5, 6, 4, 5, dtype=torch.float64)
    y = torch.randn_like(conv(x))
    back = up(y, output_size=x.shape)
    assert back.shape == x.shape
    torch.testing.assert_close((conv(x) * y).sum(), (x * back).sum(), rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- a module like any other


def test_repr_state_dict_and_parameters_of_a_4d_module() -> None:
    conv = Conv4d(2, 4, 3, stride=(1, 2, 1, 2), padding=((1, 2), 0, 1, 1), groups=2)
    assert repr(conv) == (
        "Conv4d(2, 4, kernel_size=(3, 3, 3, 3), stride=(1, 2, 1, 2), "
        "padding=((1, 2), 0, 1, 1), groups=2)"
    )
    assert list(conv.state_dict()) == ["weight", "bias"]
    assert [p.shape for p in conv.parameters()] == [(4, 1, 3, 3, 3, 3), (4,)]
    assert all(isinstance(p, torch.nn.Parameter) for p in conv.parameters())
    bound = 1 / math.sqrt(1 * 3**4)  # fan_in = C_in / groups * prod(K)
    assert conv.weight.abs().max() <= bound and conv.bias.abs().max() <= bound
    up = ConvTranspose4d(4, 6, 2, stride=2, groups=2, bias=False)
    assert repr(up) == (
        "ConvTranspose4d(4, 6, kernel_size=(2, 2, 2, 2), stride=(2, 2, 2, 2), groups=2, bias=False)"
    )
    assert up.weight.shape == (4, 3, 2, 2, 2, 2)


def test_dtype_and_device_moves() -> None:
    conv = Conv4d(1, 2, 2, padding=1)
    x = torch.randn(1, 1, 3, 3, 3, 3)
    y32 = conv(x)
    assert y32.dtype == torch.float32
    y64 = conv.double()(x.double())
    assert conv.weight.dtype == torch.float64 and y64.dtype == torch.float64
    torch.testing.assert_close(y64.float(), y32, rtol=1e-5, atol=1e-6)
    conv.to(torch.float32)
    assert conv.weight.dtype == torch.float32 and conv.bias.dtype == torch.float32
    conv.to("cpu")
    torch.testing.assert_close(conv(x), y32)
    with torch.no_grad():  # inference: no graph
        assert not conv(x).requires_grad


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_to_cuda_computes_on_the_gpu() -> None:
    torch.manual_seed(0)
    conv = Conv4d(2, 3, 3, stride=2, padding="same", padding_mode="symmetric").double()
    up = ConvTranspose3d(2, 3, 2, stride=2).double()
    x = torch.randn(2, 2, 5, 4, 5, 4, dtype=torch.float64)
    expected, expected_up = conv(x), up(x[:, :, 0])
    expected.sum().backward()
    grad_cpu = conv.weight.grad.clone()
    conv.zero_grad()
    conv.to("cuda")
    up.to("cuda")
    xc = x.to("cuda")
    y = conv(xc)
    assert y.device.type == "cuda" and conv.weight.device.type == "cuda"
    y.sum().backward()
    assert conv.weight.grad.device.type == "cuda"
    torch.testing.assert_close(y.cpu(), expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(conv.weight.grad.cpu(), grad_cpu, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(up(xc[:, :, 0]).cpu(), expected_up, rtol=1e-10, atol=1e-10)
    with pytest.raises(RuntimeError, match=r"input is on cpu but the weight is on cuda"):
        conv(x)


def test_conv4d_in_sequential_trained_by_sgd_lowers_the_loss() -> None:
    torch.manual_seed(0)
    teacher = torch.nn.Sequential(Conv4d(2, 1, 2, padding=1, padding_mode="symmetric"))
    model = torch.nn.Sequential(
        Conv4d(2, 4, 2, padding=1, padding_mode="symmetric"),
        torch.nn.Tanh(),
        Conv4d(4, 1, 1),
    )
    x = torch.randn(8, 2, 3, 4, 3, 4)
    with torch.no_grad():
        target = teacher(x)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.5)
    losses = []
    for _ in range(40):
        optimizer.zero_grad()
        loss = F.mse_loss(model(x), target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    assert losses[-1] < 0.2 * losses[0], losses


# ---------------------------------------------------------------- errors


def test_errors_name_the_argument_and_what_was_expected() -> None:
    with pytest.raises(TypeError, match=r"ConvNd takes kernel_size as a tuple .* Conv1d, Conv2d"):
        ConvNd(2, 3, 3)
    with pytest.raises(ValueError, match=r"padding_mode='mirror'; expected one of 'zeros'"):
        Conv2d(2, 3, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match=r"groups=4 must divide both in_channels=4 and out_ch"):
        Conv2d(4, 6, 3, groups=4)
    with pytest.raises(ValueError, match=r"in_channels=0 must be a positive integer"):
        Conv1d(0, 3, 3)
    with pytest.raises(ValueError, match=r"padding='full' is not a padding; expected 'same'"):
        Conv2d(1, 1, 3, padding="full")
    with pytest.raises(ValueError, match=r"kernel_size=\(3, 3, 3\) has 3 entries; expected .* 2"):
        Conv2d(1, 1, (3, 3, 3))
    with pytest.raises(ValueError, match=r"stride=\(1, 2\) has 2 entries; expected .* 4"):
        Conv4d(1, 1, 3, stride=(1, 2))
    with pytest.raises(ValueError, match=r"padding must be >= 0"):
        Conv2d(1, 1, 3, padding=-1)
    with pytest.raises(TypeError, match=r"dtype=torch.float16; convkit computes in torch.float32"):
        Conv2d(1, 1, 3, dtype=torch.float16)
    with pytest.raises(ValueError, match=r"padding='same'; ConvTranspose2d takes an int"):
        ConvTranspose2d(1, 1, 3, padding="same")
    with pytest.raises(ValueError, match=r"output_padding=2 must be smaller than max\(stride"):
        ConvTranspose1d(1, 1, 3, stride=2, output_padding=2)
    with pytest.raises(ValueError, match=r"padding_mode='reflect'; ConvTranspose3d supports only"):
        ConvTranspose3d(1, 1, 3, padding_mode="reflect")


def test_forward_errors_say_what_input_was_expected() -> None:
    conv = Conv2d(3, 4, 3)
    with pytest.raises(
        TypeError,
        match=r"Conv2d: the input has dtype torch.float64 but the weight has dtype "
        r"torch.float32; convert one",
    ):
        conv(torch.randn(1, 3, 8, 8, dtype=torch.float64))
    with pytest.raises(
        ValueError, match=r"expects input of shape \(N, 3, \*S\) .* got \(1, 2, 8, 8\)"
    ):
        conv(torch.randn(1, 2, 8, 8))
    with pytest.raises(ValueError, match=r"2 spatial dimensions S; got \(1, 1, 3, 8, 8\)"):
        conv(torch.randn(1, 1, 3, 8, 8))
    with pytest.raises(TypeError, match=r"takes a torch.Tensor .* got ndarray"):
        conv(np.ones((1, 3, 8, 8), dtype=np.float32))
    with pytest.raises(TypeError, match=r"holds torch.float16 weights"):
        conv.half()(torch.randn(1, 3, 8, 8).half())
    on_meta = Conv2d(3, 4, 3, device="meta")  # no data: stands for another device here
    with pytest.raises(RuntimeError, match=r"the input is on cpu but the weight is on meta"):
        on_meta(torch.randn(1, 3, 8, 8))
    up = ConvTranspose2d(2, 2, 3, stride=2)
    with pytest.raises(ValueError, match=r"output_size=\(12, 9\) is not reachable"):
        up(torch.randn(1, 2, 4, 4), output_size=(12, 9))


# ---------------------------------------------------------------- the example


def test_example_trains_a_conv4d_and_reports_accuracy() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), "--quick"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    found = re.search(
        r"held-out accuracy ([\d.]+) \(chance 0\.167\); trained in ([\d.]+) s", result.stdout
    )
    assert found, result.stdout
    assert float(found.group(1)) >= 0.5, result.stdout  # chance is 1/6


def test_example_leaves_the_global_rng_as_it_was() -> None:
    spec = importlib.util.spec_from_file_location("torch_conv4d", EXAMPLE)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    x, y = example.make_clips(64, 4, 0.0, torch.Generator().manual_seed(0))
    assert x.shape == (64, 1, 4, 4, 4, 4) and set(y.tolist()) <= set(range(6))
    # noiseless clips: every frame holds the same blob, shifted one voxel along the axis
    for clip, label in zip(x[:, 0], y.tolist(), strict=True):
        step = 1 if label % 2 == 0 else -1
        torch.testing.assert_close(clip[1], torch.roll(clip[0], step, dims=label // 2))
    before = torch.get_rng_state()
    example.main(["--quick"])
    assert torch.equal(torch.get_rng_state(), before)
