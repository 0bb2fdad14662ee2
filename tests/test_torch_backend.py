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


# -- torch and torchaudio load together --------------------------------------------


def test_the_installed_torchaudio_runs_a_compiled_operation() -> None:
    """The torch extra's pinned pair loads together: torchaudio's IIR filter runs in its
    compiled library (not the pure-Python fallback) and agrees with SciPy. A torchaudio
    built for another torch ABI fails here, loudly, rather than in scattered tests."""
    import scipy.signal
    import torchaudio
    import torchaudio.functional as AF
    from torchaudio._extension import _IS_TORCHAUDIO_EXT_AVAILABLE

    assert _IS_TORCHAUDIO_EXT_AVAILABLE, f"torchaudio {torchaudio.__version__} has no extension"
    x = np.random.default_rng(0).standard_normal(64)
    b, a = [0.2, 0.3], [1.0, -0.4]
    y = AF.lfilter(
        torch.from_numpy(x),
        torch.tensor(a, dtype=torch.float64),
        torch.tensor(b, dtype=torch.float64),
        clamp=False,
    )
    np.testing.assert_allclose(y.numpy(), scipy.signal.lfilter(b, a, x), rtol=1e-12, atol=1e-12)
    assert ck.checks.registered_backend("torch").unavailable_reason() is None


BROKEN_TORCHAUDIO = """
raise OSError(
    "libtorchaudio.so: undefined symbol: torch_exception_get_what_without_backtrace"
)
"""


def test_a_torchaudio_that_does_not_load_makes_the_torch_backend_unavailable(tmp_path) -> None:
    """A torchaudio whose compiled library does not match torch (here a package of that
    name ahead on the path whose import fails as the mismatched build's does): the
    torch backend is listed as unavailable with the reason, ``auto`` computes NumPy
    arrays elsewhere, and selecting torch names the reason, never an ``OSError``."""
    from support import run_python

    (tmp_path / "torchaudio").mkdir()
    (tmp_path / "torchaudio" / "__init__.py").write_text(BROKEN_TORCHAUDIO)
    code = """
        import numpy as np
        import convkit as ck
        import torch  # the user's torch is loaded: auto would weigh the torch backend

        info = {b.name: b for b in ck.list_backends()}["torch"]
        print("available:", info.available)
        print("reason:", info.reason)
        y = ck.convolve(np.ones(2**15), np.ones(2**10))  # auto
        print("auto:", float(y[2000]))
        try:
            ck.convolve(np.ones(64), np.ones(5), backend="torch")
        except ck.BackendUnavailableError as exc:
            print("selected:", exc)
    """
    result = run_python(code, site=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "available: False" in out
    assert "reason: torchaudio does not load with this torch (torch 2." in out
    assert "undefined symbol: torch_exception_get_what_without_backtrace" in out
    assert "auto: 1024.0" in out
    assert "selected: backend 'torch' (selected by argument) is not available: torchaudio" in out


def test_convkit_backends_says_why_torch_is_unavailable(tmp_path) -> None:
    from support import run_python

    (tmp_path / "torchaudio").mkdir()
    (tmp_path / "torchaudio" / "__init__.py").write_text(BROKEN_TORCHAUDIO)
    result = run_python("from convkit.cli import main; main(['backends'])", site=tmp_path)
    assert "torch: unavailable: torchaudio does not load with this torch" in result.stdout


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "kwargs"),
    [
        (
            (2, 3, 20, 17),
            (4, 3, 3, 4),
            dict(stride=(2, 1), padding=((1, 2), (0, 3)), dilation=(2, 1)),
        ),
        ((1, 2, 30), (2, 1, 5), dict(groups=2, padding=2, padding_mode="reflect")),
        ((1, 1, 9, 8, 7, 6), (1, 1, 3, 2, 2, 2), dict(stride=2)),
    ],
    ids=["2d-strided-dilated", "1d-grouped-reflect", "4d"],
)
def test_a_call_with_a_large_im2col_runs_in_blocks_of_rows(
    monkeypatch: pytest.MonkeyPatch, x_shape, w_shape, kwargs
) -> None:
    from convkit_torch import ops

    calls: list[tuple[int, ...]] = []
    real = ops._conv_valid

    def spy(x, *args):  # type: ignore[no-untyped-def]
        calls.append(tuple(x.shape))
        return real(x, *args)

    monkeypatch.setattr(ops, "COLUMN_BYTES", 2000)
    monkeypatch.setattr(ops, "_conv_valid", spy)
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[0])
    y = ck.conv(x, w, b, backend="torch", method="direct", **kwargs)
    assert_close(y, reference_conv(x, w, b, **kwargs))
    assert len(calls) > 1
