"""conv_vjp and conv_transpose against torch autograd, finite differences and each other."""

from __future__ import annotations

import numpy as np
import pytest
from support import GRADIENT_CASES as CASES

import convkit as ck
from convkit import plugins
from convkit.spec import ConvSpec
from convkit.testing import check_grads

torch = pytest.importorskip("torch", reason="torch autograd is the reference")
F = torch.nn.functional
TORCH_MODES = {
    "zeros": "constant",
    "reflect": "reflect",
    "replicate": "replicate",
    "circular": "circular",
}


def torch_grads(x, w, b, gy, **kw):
    """Autograd through F.pad (or a numpy.pad-built gather, for 'symmetric') and F.convNd."""
    spec = ConvSpec.build(x.shape, w.shape, None if b is None else b.shape, **kw)
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    bt = None if b is None else torch.tensor(b, requires_grad=True)
    xp = xt
    if spec.padding_mode == "symmetric":
        for i, ((lo, hi), size) in enumerate(zip(spec.padding, spec.input_size, strict=True)):
            index = np.pad(np.arange(size), (lo, hi), mode="symmetric")
            xp = torch.index_select(xp, 2 + i, torch.from_numpy(index))
    elif spec.has_padding:
        flat = [p for lo_hi in reversed(spec.padding) for p in lo_hi]
        xp = F.pad(xp, flat, mode=TORCH_MODES[spec.padding_mode])
    fn = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[spec.ndim]
    y = fn(xp, wt, bt, stride=spec.stride, dilation=spec.dilation, groups=spec.groups)
    y.backward(torch.tensor(gy))
    return xt.grad.numpy(), wt.grad.numpy(), None if bt is None else bt.grad.numpy()


@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize(("x_shape", "w_shape", "kwargs"), CASES, ids=str)
def test_gradients_equal_torch_autograd(backend: str, x_shape, w_shape, kwargs, with_bias) -> None:
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[0]) if with_bias else None
    gy = rng.standard_normal(ck.conv(x, w, b, **kwargs).shape)
    expected = torch_grads(x, w, b, gy, **kwargs)
    got = ck.conv_vjp(x, w, gy, bias=with_bias, backend=backend, **kwargs)
    for name, g, e in zip(("x", "weight", "bias"), got, expected, strict=True):
        if e is None:
            assert g is None
            continue
        assert g.shape == e.shape, name
        assert np.max(np.abs(g - e)) <= 1e-10 * max(1.0, np.max(np.abs(e))), name


def test_unbatched_gradients(backend: str) -> None:
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((3, 8, 7)), rng.standard_normal((2, 3, 3, 3))
    gy = rng.standard_normal((2, 8, 7))
    gx, gw, gb = ck.conv_vjp(x, w, gy, padding=1, padding_mode="reflect", backend=backend)
    ex, ew, eb = torch_grads(x[None], w, np.zeros(2), gy[None], padding=1, padding_mode="reflect")
    np.testing.assert_allclose(gx, ex[0], atol=1e-10)
    np.testing.assert_allclose(gw, ew, atol=1e-10)
    np.testing.assert_allclose(gb, eb, atol=1e-10)


@pytest.mark.parametrize("mode", ["zeros", "reflect", "symmetric", "replicate", "circular"])
def test_4d_gradients_match_finite_differences(backend: str, mode: str) -> None:
    check_grads(
        backend,
        (2, 2, 4, 3, 4, 5),
        (4, 1, 2, 2, 1, 3),
        groups=2,
        padding_mode=mode,
        stride=(1, 2, 1, 2),
        padding=((2, 1), 1, 0, (3, 0)),
        dilation=(2, 1, 1, 1),
    )


def test_the_gradient_checker_catches_a_wrong_gradient(monkeypatch: pytest.MonkeyPatch) -> None:
    numpy_backend = plugins.host().registry.get("numpy")
    assert numpy_backend is not None
    honest = numpy_backend.conv_vjp

    def off_by_one_percent(*args, **kwargs):
        gx, gw, gb = honest(*args, **kwargs)
        return gx, gw * 1.01, gb

    monkeypatch.setattr(numpy_backend, "conv_vjp", off_by_one_percent)
    with pytest.raises(AssertionError, match="grad_weight on backend 'numpy'"):
        check_grads("numpy", (2, 3, 9), (2, 3, 3))


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "kwargs"),
    [
        ((2, 4, 7), (4, 3, 3), dict(stride=2, padding=1, output_padding=1)),
        (
            (1, 4, 5, 6),
            (4, 3, 3, 2),
            dict(stride=(2, 3), padding=(1, 0), output_padding=(1, 2), dilation=(1, 2), groups=2),
        ),
        (
            (2, 2, 3, 4, 3),
            (2, 1, 2, 3, 2),
            dict(stride=2, dilation=(1, 1, 2), groups=2, output_padding=(1, 0, 1)),
        ),
        ((3, 5), (3, 2, 4), dict(stride=3, padding=2, dilation=2, output_padding=2)),  # unbatched
        ((1, 2, 5), (2, 3, 3), dict(dilation=2, output_padding=1)),  # output_padding >= stride
    ],
    ids=str,
)
def test_conv_transpose_equals_torch(backend: str, x_shape, w_shape, kwargs) -> None:
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[1] * kwargs.get("groups", 1))
    d = len(w_shape) - 2
    fn = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[d]
    expected = fn(torch.tensor(x), torch.tensor(w), torch.tensor(b), **kwargs).numpy()
    got = ck.conv_transpose(x, w, b, backend=backend, **kwargs)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-10)


def test_conv_transpose_is_the_adjoint_of_conv(backend: str) -> None:
    """<conv(x), y> = <x, conv_transpose(y)> for any x, y (here in 4-d)."""
    rng = np.random.default_rng(3)
    w = rng.standard_normal((4, 3, 2, 3, 2, 2))
    x = rng.standard_normal((2, 3, 7, 8, 5, 6))
    kw = dict(stride=(2, 1, 2, 3), padding=(1, 2, 0, 1), dilation=(1, 2, 1, 1))
    y = ck.conv(x, w, backend=backend, **kw)
    v = rng.standard_normal(y.shape)
    out_pad = tuple(
        s - t
        for s, t in zip(
            x.shape[2:], ck.conv_transpose(v, w, backend=backend, **kw).shape[2:], strict=True
        )
    )
    xt = ck.conv_transpose(v, w, backend=backend, output_padding=out_pad, **kw)
    assert xt.shape == x.shape
    assert np.isclose(np.sum(y * v), np.sum(x * xt), rtol=1e-10)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            dict(output_padding=2, stride=2),
            ValueError,
            r"output_padding must be smaller than max\(stride, dilation\)",
        ),
        (dict(padding="same"), ValueError, r"padding='same': conv_transpose takes an int"),
        (dict(padding=5), ValueError, r"conv_transpose would produce .* positions"),
    ],
)
def test_conv_transpose_errors(kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        ck.conv_transpose(np.ones((1, 2, 4)), np.ones((2, 1, 3)), **kwargs)


def test_grad_out_of_the_wrong_shape_is_named() -> None:
    with pytest.raises(
        ValueError,
        match=r"grad_out must have the forward output's shape \(1, 2, 3\); got grad_out.shape=\(1, 2, 4\)",
    ):
        ck.conv_vjp(np.ones((1, 1, 5)), np.ones((2, 1, 3)), np.ones((1, 2, 4)))


def test_autograd_reaches_the_weights_through_conv() -> None:
    x = torch.randn(2, 3, 9, 9, dtype=torch.float64)
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    loss = ck.conv(x, w, padding=1, padding_mode="reflect").square().sum()
    loss.backward()
    expected = ck.conv_vjp(
        x.numpy(),
        w.detach().numpy(),
        2 * ck.conv(x.numpy(), w.detach().numpy(), padding=1, padding_mode="reflect"),
        padding=1,
        padding_mode="reflect",
        backend="numpy",
    )[1]
    np.testing.assert_allclose(w.grad.numpy(), expected, atol=1e-9)
