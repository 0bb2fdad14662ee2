"""Tensors in, tensors out: array types, devices and autograd through the torch backend."""

from __future__ import annotations

import numpy as np
import pytest

import convkit as ck
from convkit.testing import assert_close, reference_conv

torch = pytest.importorskip("torch", reason="these tests are about torch tensors")
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")


@pytest.mark.parametrize("name", ["numpy", "scipy", "torch"])
def test_tensor_in_tensor_out_whichever_backend_computes(name: str) -> None:
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64)
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64)
    y = ck.conv(x, w, padding=1, padding_mode="reflect", backend=name)
    assert isinstance(y, torch.Tensor) and y.device == x.device and y.dtype == torch.float64
    assert_close(y.numpy(), reference_conv(x.numpy(), w.numpy(), padding=1, padding_mode="reflect"))


def test_mixed_numpy_weights_with_tensor_input() -> None:
    x = torch.randn(1, 2, 9)
    w = np.random.default_rng(0).standard_normal((3, 2, 3))  # float64 weights
    y = ck.conv(x, w)
    assert isinstance(y, torch.Tensor) and y.dtype == torch.float64


def test_autograd_flows_through_the_torch_backend_for_any_d() -> None:
    for shape in [(1, 2, 6, 5), (1, 2, 4, 3, 4, 5)]:
        d = len(shape) - 2
        x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
        w = torch.randn(3, 2, *(2,) * d, dtype=torch.float64, requires_grad=True)
        b = torch.randn(3, dtype=torch.float64, requires_grad=True)

        def f(x, w, b, d=d):
            return ck.conv(x, w, b, stride=2, padding=1, padding_mode="circular")

        assert torch.autograd.gradcheck(f, (x, w, b))


@cuda
@pytest.mark.cuda
def test_device_from_the_input_tensor() -> None:
    x = torch.randn(2, 3, 8, 8, device="cuda")
    w = torch.randn(4, 3, 3, 3, device="cuda")
    y = ck.conv(x, w, padding="same", padding_mode="symmetric")
    assert y.device.type == "cuda"
    expected = reference_conv(
        x.cpu().numpy(), w.cpu().numpy(), padding="same", padding_mode="symmetric"
    )
    assert_close(y.cpu().numpy(), expected, "float32")


@cuda
@pytest.mark.cuda
def test_selected_device_computes_and_result_returns_to_the_callers_device() -> None:
    x = torch.randn(1, 2, 4, 4, 4, 4)  # 4-d, on the CPU
    w = torch.randn(3, 2, 2, 2, 2, 2)
    with ck.use_backend("torch", device="cuda"):
        y = ck.conv(x, w, padding=1)
    assert y.device.type == "cpu"
    assert_close(y.numpy(), reference_conv(x.numpy(), w.numpy(), padding=1), "float32")
    y_np = ck.conv(x.numpy(), w.numpy(), backend="torch:cuda")
    assert isinstance(y_np, np.ndarray)


@pytest.mark.parametrize("name", ["numpy", "scipy", "torch"])
@pytest.mark.parametrize("method", ["direct", "fft"])
def test_convolve_returns_tensors_for_tensors(name: str, method: str) -> None:
    import scipy.signal

    x = torch.randn(3, 200, dtype=torch.float64)
    k = torch.randn(1, 9, dtype=torch.float64)
    y = ck.convolve(x, k, "same", axes=1, method=method, backend=name)
    assert isinstance(y, torch.Tensor) and y.dtype == torch.float64
    expected = scipy.signal.fftconvolve(x.numpy(), k.numpy(), "same", axes=1)
    np.testing.assert_allclose(y.numpy(), expected, atol=1e-10)
    z = ck.correlate(x, k, "valid", axes=1, method=method, backend=name)
    assert isinstance(z, torch.Tensor)


@cuda
@pytest.mark.cuda
def test_convolve_on_cuda_stays_on_cuda() -> None:
    import scipy.signal

    x = torch.randn(2, 5000, device="cuda")
    k = torch.randn(1, 257, device="cuda")
    for method in ("direct", "fft"):
        y = ck.convolve(x, k, "valid", axes=1, method=method)
        assert y.device.type == "cuda"
        expected = scipy.signal.fftconvolve(
            x.cpu().double().numpy(), k.cpu().double().numpy(), "valid", axes=1
        )
        assert np.max(np.abs(y.cpu().numpy() - expected)) <= 1e-4 * np.max(np.abs(expected))
