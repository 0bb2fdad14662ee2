"""The array_api backend on array-api-strict arrays (the standard's reference library,
which rejects anything outside the standard): the whole conformance suite in float32 and
float64 on its own arrays, the gradients, equality with the numpy backend, capabilities
per namespace and device, and dedicated backends keeping their own types."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import convkit as ck
from convkit.testing.conformance import BackendConformance

xp = pytest.importorskip("array_api_strict", reason="needs pip install -e '.[test]'")
Strict = type(xp.asarray(0.0))  # the library's array type (not a public name)


def _strict(a: Any) -> Any:
    if a is None or not isinstance(a, np.ndarray):
        return a
    return xp.asarray(a)


def _host(a: Any) -> np.ndarray:
    return np.from_dlpack(a) if isinstance(a, Strict) else np.asarray(a)


class TestArrayAPIStrictConformance(BackendConformance):
    """The whole suite, every input an array-api-strict array, every result checked to be
    one."""

    @pytest.fixture
    def backend(self) -> str:
        return "array_api"

    @pytest.fixture
    def native(self) -> Any:
        return _strict

    @pytest.fixture
    def host(self) -> Any:
        return _host


CASES = [
    ((2, 3, 17), (4, 3, 3), dict(stride=2, padding=1, padding_mode="reflect")),
    ((1, 4, 9, 8), (6, 2, 3, 2), dict(groups=2, dilation=(2, 1), padding="same")),
    ((1, 2, 5, 4, 6), (2, 2, 2, 3, 2), dict(padding=1, padding_mode="circular", stride=(1, 2, 1))),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", CASES, ids=["1d", "2d-groups", "3d-circular"])
def test_every_operation_returns_strict_arrays_equal_to_numpy(case: Any, dtype: str) -> None:
    xs, ws, kwargs = case
    rng = np.random.default_rng(len(xs))
    x, w = rng.standard_normal(xs).astype(dtype), rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(ws[0]).astype(dtype)
    tol: dict[str, float] = dict(rtol=1e-4, atol=1e-4) if dtype == "float32" else dict(rtol=1e-10)
    y = ck.conv(_strict(x), _strict(w), _strict(b), **kwargs)
    assert isinstance(y, Strict) and str(y.dtype) == str(getattr(xp, dtype))
    expected = ck.conv(x, w, b, backend="numpy", **kwargs)
    np.testing.assert_allclose(_host(y), expected, **tol)
    gy = rng.standard_normal(expected.shape).astype(dtype)
    got = ck.conv_vjp(_strict(x), _strict(w), _strict(gy), bias=True, **kwargs)
    ref = ck.conv_vjp(x, w, gy, bias=True, backend="numpy", **kwargs)
    for g, r in zip(got, ref, strict=True):
        assert isinstance(g, Strict)
        np.testing.assert_allclose(_host(g), r, **tol)
    a, k = rng.standard_normal(40).astype(dtype), rng.standard_normal(7).astype(dtype)
    for op in (ck.convolve, ck.correlate):
        for mode in ("full", "same", "valid"):
            z = op(_strict(a), _strict(k), mode)
            assert isinstance(z, Strict)
            np.testing.assert_allclose(_host(z), op(a, k, mode, backend="numpy"), **tol)


def test_conv_transpose_returns_strict_arrays() -> None:
    rng = np.random.default_rng(3)
    v, w = rng.standard_normal((2, 4, 5, 6)), rng.standard_normal((4, 3, 3, 2))
    b = rng.standard_normal(3)
    kw: dict[str, Any] = dict(stride=2, padding=1, output_padding=1)
    y = ck.conv_transpose(_strict(v), _strict(w), _strict(b), **kw)
    assert isinstance(y, Strict)
    np.testing.assert_allclose(_host(y), ck.conv_transpose(v, w, b, backend="numpy", **kw))


def test_numpy_weights_join_the_strict_namespace() -> None:
    rng = np.random.default_rng(4)
    x, w = rng.standard_normal((1, 2, 8, 8)), rng.standard_normal((3, 2, 3, 3))
    y = ck.conv(_strict(x), w, padding=1)  # NumPy weights: converted into x's namespace
    assert isinstance(y, Strict)
    np.testing.assert_allclose(_host(y), ck.conv(x, w, padding=1, backend="numpy"))


def test_dedicated_backends_keep_their_own_arrays() -> None:
    from convkit import dispatch, plugins

    host = plugins.host()
    assert dispatch.owner_of(host, np.ones(3), "x").name == "numpy"
    assert dispatch.owner_of(host, xp.ones(3), "x").name == "array_api"
    torch = pytest.importorskip("torch")
    assert dispatch.owner_of(host, torch.ones(3), "x").name == "torch"
    choice = ck.choose_conv_method(np.ones((1, 1, 32)), np.ones((1, 1, 3)))
    assert choice.backend != "array_api"  # never chosen for NumPy arrays by auto


def test_dedicated_jax_backend_wins_for_jax_arrays() -> None:
    jnp = pytest.importorskip("jax.numpy")
    from convkit import dispatch, plugins

    owner = dispatch.owner_of(plugins.host(), jnp.ones(3), "x").name
    dedicated = "jax" in plugins.host().registry.names()
    assert owner == ("jax" if dedicated else "array_api")


def test_a_device_without_float64_refuses_it_clearly() -> None:
    device = xp.Device("no_float64")
    x = xp.asarray(np.ones((1, 1, 8), dtype=np.float32), device=device)
    y = ck.conv(x, xp.asarray(np.ones((1, 1, 3), dtype=np.float32), device=device))
    assert y.device == device and _host(xp.asarray(y, device=xp.Device("CPU_DEVICE")))[0, 0, 0] == 3
    with pytest.raises(TypeError, match=r"array_api.*float64"):
        ck.conv(x, np.ones((1, 1, 3)))  # float64 weights promote the call to float64


def test_a_namespace_without_fft_says_so_and_auto_uses_direct() -> None:
    xp.set_array_api_strict_flags(enabled_extensions=("linalg",))
    try:
        x = xp.asarray(np.ones((1, 1, 4096)))
        w = xp.asarray(np.ones((1, 1, 301)))
        with pytest.raises(ValueError, match=r"no fft extension; use method='direct'"):
            ck.conv(x, w, method="fft")
        assert ck.choose_conv_method(x, w).method == "direct"
        y = ck.conv(x, w)
        assert _host(y)[0, 0, 0] == 301
        with pytest.raises(ValueError, match=r"no fft extension"):
            ck.convolve(xp.asarray(np.ones(50)), xp.asarray(np.ones(5)), method="fft")
    finally:
        xp.reset_array_api_strict_flags()


def test_the_listing_names_the_namespaces_seen(capsys: pytest.CaptureFixture[str]) -> None:
    from convkit.cli import main

    ck.conv(_strict(np.ones((1, 1, 5))), _strict(np.ones((1, 1, 2))))
    main(["backends"])
    out = capsys.readouterr().out
    line = next(li for li in out.splitlines() if li.startswith("array_api: seen array_api_strict"))
    assert line.endswith(": float32,float64,complex64,complex128; fft"), line


def test_unbatched_and_explain_on_strict_arrays() -> None:
    x, w = _strict(np.ones((2, 9))), _strict(np.ones((3, 2, 3)))
    y = ck.conv(x, w)
    assert isinstance(y, Strict) and tuple(y.shape) == (3, 7)
    assert "array_api" in str(ck.explain(x, w))


@pytest.mark.parametrize("workspace", [1, 3000, 1 << 20])
def test_shared_algorithms_stay_in_the_standard_on_any_chunking(workspace: int) -> None:
    # chunks of images and rows that do not divide the batch or the rows: every slice
    # must stay within the array (array-api-strict refuses one that ends past it)
    from convkit.algorithms import gather, winograd
    from convkit.spec import ConvSpec

    rng = np.random.default_rng(7)
    x, w = rng.standard_normal((5, 4, 11, 9)), rng.standard_normal((6, 2, 3, 3))
    spec = ConvSpec.build(x.shape, w.shape, groups=2, padding=1)
    expected = ck.conv(x, w, groups=2, padding=1, backend="numpy")
    y = winograd.winograd_conv(
        xp, _strict(x), _strict(w), None, spec, tile=2, workspace_bytes=workspace
    )
    np.testing.assert_allclose(_host(y), expected, rtol=1e-10, atol=1e-10)
    xpad = xp.asarray(np.pad(x, [(0, 0), (0, 0), (1, 1), (1, 1)]))
    y = gather.direct_conv(xp, xpad, _strict(w), None, spec, workspace_bytes=workspace)
    np.testing.assert_allclose(_host(y), expected, rtol=1e-10, atol=1e-10)


def test_integer_convolve_reads_magnitudes_in_the_arrays_namespace() -> None:
    a = np.arange(-50, 50, dtype=np.int32)
    b = np.arange(7, dtype=np.int32)
    y = ck.convolve(xp.asarray(a), xp.asarray(b))
    assert isinstance(y, Strict)
    np.testing.assert_array_equal(_host(y), np.convolve(a.astype(np.int64), b))
    device = xp.Device("no_float64")
    a_dev, b_dev = xp.asarray(a, device=device), xp.asarray(b, device=device)
    with pytest.raises(ValueError, match=r"has no float64, so its FFT cannot keep integers"):
        ck.convolve(a_dev, b_dev, method="fft")
    with pytest.raises(ValueError, match=r"cannot convolve these integers exactly"):
        ck.convolve(a_dev, b_dev)  # as on any backend without float64


def test_weights_on_another_device_join_the_inputs_device() -> None:
    x = xp.asarray(np.ones((1, 1, 8)), device=xp.Device("device1"))
    w = xp.asarray(np.ones((1, 1, 3)))  # the CPU device
    y = ck.conv(x, w)
    assert y.device == xp.Device("device1")


class TestNumpyThroughArrayAPIConformance(BackendConformance):
    """NumPy arrays forced through the backend: computed in array_api_compat's NumPy
    namespace, returned as NumPy."""

    @pytest.fixture
    def backend(self) -> str:
        return "array_api"


def test_torch_tensors_through_the_compat_namespace() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    x, w = rng.standard_normal((2, 3, 10, 9)), rng.standard_normal((4, 3, 3, 3))
    kw: dict[str, Any] = dict(padding=1, padding_mode="reflect", stride=2)
    y = ck.conv(torch.from_numpy(x), torch.from_numpy(w), backend="array_api", **kw)
    assert isinstance(y, torch.Tensor)
    np.testing.assert_allclose(y.numpy(), ck.conv(x, w, backend="numpy", **kw), rtol=1e-10)
    gy = rng.standard_normal(tuple(y.shape))
    got = ck.conv_vjp(
        torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(gy), backend="array_api", **kw
    )
    for g, r in zip(got[:2], ck.conv_vjp(x, w, gy, backend="numpy", **kw)[:2], strict=True):
        assert isinstance(g, torch.Tensor)
        np.testing.assert_allclose(g.numpy(), r, rtol=1e-9, atol=1e-12)
