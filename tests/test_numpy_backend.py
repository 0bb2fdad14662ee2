"""The numpy backend's bounded workspace."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from support import GRADIENT_CASES

import convkit as ck
from convkit.spec import ConvSpec
from convkit_numpy import ops


def test_workspace_stays_bounded_on_a_large_input() -> None:
    x = np.ones((1, 16, 256, 256), dtype=np.float32)  # 4 MiB
    w = np.ones((16, 16, 3, 3), dtype=np.float32)
    full_columns = 256 * 256 * 16 * 9 * 4  # what materialising im2col would take: 36 MiB
    ck.conv(x, w, padding=1, backend="numpy", method="direct")  # warm up imports and caches
    tracemalloc.start()
    try:
        y = ck.conv(x, w, padding=1, backend="numpy", method="direct")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # the padded input (258 x 258), the output, one column buffer, 1 MiB for small things
    budget = x.nbytes * 258**2 // 256**2 + y.nbytes + ops.WORKSPACE_BYTES + (1 << 20)
    assert peak <= budget < full_columns, (peak, budget, full_columns)


def test_winograd_works_in_chunks_on_a_large_input() -> None:
    from convkit.algorithms import winograd

    x = np.ones((1, 16, 256, 256), dtype=np.float32)  # 4 MiB
    w = np.ones((16, 16, 3, 3), dtype=np.float32)
    ck.conv(x, w, padding=1, backend="numpy", method="winograd")
    tracemalloc.start()
    try:
        y = ck.conv(x, w, padding=1, backend="numpy", method="winograd")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # the padded input, the output, the tiles, their transforms and products of one chunk
    budget = x.nbytes * 260**2 // 256**2 + y.nbytes + 5 * winograd.WORKSPACE_BYTES
    assert peak <= budget, (peak, budget)
    assert np.allclose(y[0, :, 1:-1, 1:-1], 16 * 9)


@pytest.mark.parametrize(
    ("x_shape", "w_shape"),
    [((1, 64, 3, 50_000), (64, 64, 3, 3)), ((1, 16, 40, 40, 40), (16, 16, 3, 3, 3))],
)
def test_workspace_stays_bounded_when_one_row_is_large(x_shape, w_shape) -> None:
    x = np.ones(x_shape, dtype=np.float32)
    w = np.ones(w_shape, dtype=np.float32)
    tracemalloc.start()
    try:
        y = ck.conv(x, w, backend="numpy")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak <= x.nbytes + y.nbytes + ops.WORKSPACE_BYTES + (2 << 20), peak
    assert np.all(y == np.prod(w_shape[1:]))


@given(
    n=st.integers(0, 5),
    sizes=st.lists(st.integers(1, 30), min_size=1, max_size=3),
    channels=st.integers(1, 3000),
)
def test_chunks_tile_the_output_once_within_the_bound(
    n: int, sizes: list[int], channels: int
) -> None:
    d = len(sizes)
    spec = ConvSpec.build((n, channels, *(s + 2 for s in sizes)), (1, channels, *(3,) * d))
    covered = np.zeros((n, *sizes), dtype=int)
    row_bytes = channels * 3**d * 8
    for n0, n1, lo, hi in ops._chunks(spec, itemsize=8):
        covered[(slice(n0, n1), *(slice(a, b) for a, b in zip(lo, hi, strict=True)))] += 1
        positions = (n1 - n0) * np.prod([b - a for a, b in zip(lo, hi, strict=True)])
        # a single position is the smallest block; beyond that a block stays in bounds
        assert positions == 1 or positions * row_bytes <= ops.WORKSPACE_BYTES
    assert (covered == 1).all()


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize(
    ("x_shape", "kernel", "stride", "dilation"),
    [
        ((3, 40, 9, 11), (3, 3), 1, 1),
        ((2, 6, 13, 10), (3, 2), (2, 3), (1, 2)),
        ((2, 5, 6, 7, 8), (2, 3, 2), 2, 1),
        ((1, 7, 33), (5,), 1, 3),
    ],
)
def test_depthwise_path_matches_the_reference(x_shape, kernel, stride, dilation, threads) -> None:
    from convkit.testing import assert_close, reference_conv

    rng = np.random.default_rng(1)
    c = x_shape[1]
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal((c, 1, *kernel))
    b = rng.standard_normal(c)
    spec = ConvSpec.build(
        x.shape, w.shape, b.shape, stride=stride, dilation=dilation, padding=1, groups=c
    )
    ops.DEPTHWISE_BLOCK_BYTES, saved = 256, ops.DEPTHWISE_BLOCK_BYTES  # many small slabs
    try:
        got = ops.depthwise(x, w, b, spec, threads)
    finally:
        ops.DEPTHWISE_BLOCK_BYTES = saved
    want = reference_conv(x, w, b, stride=stride, dilation=dilation, padding=1, groups=c)
    assert_close(got, want, "float64")


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "kwargs"),
    [
        ((2, 4, 9, 7), (6, 2, 5, 6), dict(groups=2, stride=(2, 1))),  # 4 positions, 30 taps
        ((1, 3, 12), (3, 1, 10), dict(groups=3, dilation=1, padding=2)),  # depthwise shape
        ((2, 2, 6, 5, 4), (4, 2, 5, 5, 4), dict(padding=(1, 1, 0), stride=2)),
        ((1, 1, 8000), (1, 1, 7990), {}),  # a weight gradient's shape: 11 positions
    ],
)
def test_fewer_positions_than_taps_match_the_reference(x_shape, w_shape, kwargs) -> None:
    """Such calls loop over output positions (a weight gradient's "kernel" is the
    output gradient); the result is the reference loop's."""
    from convkit.testing import assert_close, reference_conv

    rng = np.random.default_rng(2)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[0])
    spec = ConvSpec.build(x.shape, w.shape, b.shape, **kwargs)
    assert math.prod(spec.output_size) < math.prod(spec.kernel_size)
    assert_close(ops.conv(x, w, b, spec), reference_conv(x, w, b, **kwargs))


# -- the backward pass (convkit_numpy.grad) ---------------------------------------------

Shape = tuple[int, ...]

NUMPY_PAD = {
    "reflect": "reflect",
    "symmetric": "symmetric",
    "replicate": "edge",
    "circular": "wrap",
}


def torch_vjp(
    x: np.ndarray, w: np.ndarray, gy: np.ndarray, spec: ConvSpec
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients by torch autograd in float64: padding as index gathers built by
    ``numpy.pad`` (or torch's zero padding), then ``F.convNd``."""
    torch = pytest.importorskip("torch", reason="torch autograd is the reference")
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    bt = torch.zeros(w.shape[0], dtype=torch.float64, requires_grad=True)
    xp = xt
    if spec.padding_mode == "zeros":
        xp = torch.nn.functional.pad(xp, [p for lo_hi in reversed(spec.padding) for p in lo_hi])
    else:
        for i, ((lo, hi), size) in enumerate(zip(spec.padding, spec.input_size, strict=True)):
            index = np.pad(np.arange(size), (lo, hi), mode=NUMPY_PAD[spec.padding_mode])  # type: ignore[call-overload]
            xp = torch.index_select(xp, 2 + i, torch.from_numpy(index))
    fn = getattr(torch.nn.functional, f"conv{spec.ndim}d")
    y = fn(xp, wt, bt, stride=spec.stride, dilation=spec.dilation, groups=spec.groups)
    y.backward(torch.tensor(gy, dtype=torch.float64))
    return xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()


VJP_CASES = [
    *GRADIENT_CASES,
    ((2, 3, 9, 8), (4, 3, 3, 2), dict(padding=(1, 2), dilation=(1, 2), padding_mode="reflect")),
    ((2, 2, 5, 6, 4), (3, 2, 2, 3, 2), dict(padding=1, dilation=(2, 1, 1))),
    ((2, 3, 11, 10), (4, 3, 2, 2), dict(stride=3)),  # stride > kernel: rows never reached
    ((0, 3, 5, 5), (4, 3, 3, 3), dict(padding=1)),  # no samples
    ((1, 2, 6, 6), (3, 2, 5, 5), dict(padding=1)),  # fewer positions than taps
    ((1, 2, 12), (3, 2, 3), dict(dilation=4, padding=((2, 5),), padding_mode="circular")),
    ((2, 8, 7, 7), (8, 2, 3, 3), dict(groups=4, padding=1, stride=(1, 2))),  # 2 per group
    ((2, 6, 9, 8), (6, 1, 3, 3), dict(groups=6, padding=1)),  # depthwise
    ((2, 6, 9, 8), (6, 1, 3, 3), dict(groups=6, padding=3)),  # padding beyond the kernel
    ((1, 4, 11, 9), (4, 1, 3, 2), dict(groups=4, stride=2, dilation=2, padding_mode="reflect")),
    ((2, 3, 17), (3, 1, 4), dict(groups=3, stride=3, padding=((1, 2),), padding_mode="symmetric")),
    ((1, 3, 5, 6, 4), (3, 1, 2, 3, 2), dict(groups=3, padding=1, padding_mode="circular")),
    ((2, 16, 48, 48), (16, 1, 3, 3), dict(groups=16, padding=1, dilation=2)),  # threads
    ((1, 5, 8, 9), (5, 1, 3, 3), dict(groups=5, padding=(0, 2), padding_mode="replicate")),
]


@pytest.mark.parametrize("workspace", [None, 700, 5000])
@pytest.mark.parametrize(("x_shape", "w_shape", "kwargs"), VJP_CASES, ids=str)
def test_backward_matches_torch_autograd(
    x_shape: Shape,
    w_shape: Shape,
    kwargs: dict,
    workspace: int | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Input, weight and bias gradients equal torch autograd's in float64, also when
    the workspace holds only a few positions (many chunks: several samples, whole rows
    of one, or parts of rows) and the depthwise slabs are single channels."""
    from convkit.testing import assert_close
    from convkit_numpy import grad

    if workspace is not None:
        monkeypatch.setattr(ops, "WORKSPACE_BYTES", workspace)
        monkeypatch.setattr(ops, "DEPTHWISE_BLOCK_BYTES", workspace // 10)
    rng = np.random.default_rng(4)
    spec = ConvSpec.build(x_shape, w_shape, **kwargs)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    gy = rng.standard_normal(spec.output_shape)
    got = grad.conv_vjp(x, w, gy, spec, bias=True)
    for name, g, e in zip(("x", "weight", "bias"), got, torch_vjp(x, w, gy, spec), strict=True):
        assert g is not None and g.dtype == np.float64, name
        assert_close(g, e, "float64")
    assert grad.conv_vjp(x, w, gy, spec, bias=False)[2] is None


@pytest.mark.parametrize(("x_shape", "w_shape", "kwargs"), VJP_CASES, ids=str)
def test_backward_matches_the_formula_without_torch(
    x_shape: Shape, w_shape: Shape, kwargs: dict
) -> None:
    """The same gradients from convkit's generic backward (the transposed conv and the
    weight-gradient conv of :mod:`convkit.algorithms.vjp`) run on the plain loop written
    from the formula (``reference_conv``): a check that needs no torch."""
    from convkit.algorithms import vjp
    from convkit.padding import pad_numpy
    from convkit.testing import assert_close, reference_conv
    from convkit_numpy import grad

    def formula(a: np.ndarray, k: np.ndarray, s: ConvSpec) -> np.ndarray:
        return reference_conv(
            a, k, stride=s.stride, padding=s.padding, dilation=s.dilation, groups=s.groups
        )

    rng = np.random.default_rng(7)
    spec = ConvSpec.build(x_shape, w_shape, **kwargs)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    gy = rng.standard_normal(spec.output_shape)
    got = grad.conv_vjp(x, w, gy, spec, bias=True)
    pad = lambda a: pad_numpy(a, spec.padding, spec.padding_mode)  # noqa: E731
    want = vjp.conv_vjp(np, formula, pad, x, w, gy, spec, True)
    for g, e in zip(got, want, strict=True):
        assert_close(g, e, "float64")


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "kwargs"),
    [
        ((2, 4, 5, 6), (4, 1, 3, 3), dict(groups=4, stride=2, padding=1, output_padding=1)),
        ((1, 3, 7), (3, 1, 3), dict(groups=3, dilation=3, output_padding=2)),  # past stride
        ((2, 4, 5, 4), (4, 3, 2, 3), dict(groups=2, stride=(2, 1), padding=(0, 1))),
    ],
    ids=str,
)
def test_conv_transpose_matches_torch(x_shape: Shape, w_shape: Shape, kwargs: dict) -> None:
    torch = pytest.importorskip("torch", reason="torch is the reference")
    from convkit.spec import transpose_spec
    from convkit.testing import assert_close
    from convkit_numpy import grad

    rng = np.random.default_rng(5)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[1] * kwargs.get("groups", 1))
    spec = transpose_spec(x_shape, w_shape, b.shape, **kwargs)
    fn = getattr(torch.nn.functional, f"conv_transpose{len(x_shape) - 2}d")
    want = fn(torch.tensor(x), torch.tensor(w), torch.tensor(b), **kwargs).numpy()
    assert_close(grad.conv_transpose(x, w, b, spec), want, "float64")


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "groups"),
    [((1, 16, 256, 256), (16, 16, 3, 3), 1), ((1, 32, 256, 256), (32, 1, 3, 3), 32)],
)
def test_backward_workspace_stays_bounded(x_shape: Shape, w_shape: Shape, groups: int) -> None:
    """Beyond its results the backward keeps the padded input, its gradient and one
    column buffer (depthwise: a few cache-sized slab buffers per thread)."""
    from convkit.threads import cores
    from convkit_numpy import grad

    x = np.ones(x_shape, dtype=np.float32)
    w = np.ones(w_shape, dtype=np.float32)
    spec = ConvSpec.build(x.shape, w.shape, padding=1, groups=groups)
    gy = np.ones(spec.output_shape, dtype=np.float32)
    grad.conv_vjp(x, w, gy, spec, bias=True)  # warm up imports and the scratch pool
    tracemalloc.start()
    try:
        gx, gw, _ = grad.conv_vjp(x, w, gy, spec, bias=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    padded = x.nbytes * 258**2 // 256**2
    full_columns = 256 * 256 * 16 * 9 * 4  # what materialising im2col would take: 36 MiB
    slab_buffers = 4 * ops.DEPTHWISE_BLOCK_BYTES * cores()
    budget = 2 * padded + gx.nbytes + ops.WORKSPACE_BYTES + slab_buffers + (1 << 20)
    assert peak <= budget, (peak, budget)
    assert peak < 2 * padded + gx.nbytes + full_columns
    assert np.all(gw[..., 1, 1] == 256 * 256) and np.all(gw[..., 0, 0] == 255 * 255)


@pytest.mark.parametrize(
    ("x_shape", "kernel", "kwargs"),
    [
        ((2, 5, 9, 8), (3, 3), dict(padding=1, padding_mode="reflect")),
        ((1, 4, 7, 9), (2, 3), dict(padding=((2, 0), (1, 3)), padding_mode="circular")),
        ((2, 3, 8, 8), (3, 3), dict(padding=2, dilation=(2, 1), padding_mode="symmetric")),
        ((1, 3, 6, 7), (3, 2), dict(padding=(1, 0), stride=(1, 2), padding_mode="replicate")),
        ((2, 4, 10, 9), (3, 3), dict(stride=2, dilation=2)),
        ((1, 6, 8, 8), (3, 3), {}),  # no padding
        ((2, 3, 20), (5,), dict(padding=((3, 1),), dilation=2)),
        ((1, 3, 6, 5, 7), (3, 2, 3), dict(padding=1, dilation=(1, 2, 1))),
        ((1, 2, 7, 6, 5), (2, 3, 2), dict(stride=(2, 1, 1), padding=(1, 2, 0))),
    ],
    ids=str,
)
@pytest.mark.parametrize("with_bias", [True, False])
def test_depthwise_forward_matches_the_reference(
    x_shape: Shape, kernel: Shape, kwargs: dict, with_bias: bool
) -> None:
    """Stride 1 takes the flattened padded grid (zero padding written per slab, other
    modes from the padded input), other strides one strided view per tap."""
    from convkit.testing import assert_close, reference_conv

    rng = np.random.default_rng(6)
    c = x_shape[1]
    x, w = rng.standard_normal(x_shape), rng.standard_normal((c, 1, *kernel))
    b = rng.standard_normal(c) if with_bias else None
    spec = ConvSpec.build(x.shape, w.shape, None if b is None else b.shape, groups=c, **kwargs)
    want = reference_conv(x, w, b, groups=c, **kwargs)
    assert_close(ops.depthwise(x, w, b, spec), want, "float64")
    assert_close(
        ops.depthwise(
            x.astype(np.float32),
            w.astype(np.float32),
            None if b is None else b.astype(np.float32),
            spec,
            threads=2,
        ),
        want,
        "float32",
    )


def test_the_backward_takes_the_cheaper_route(monkeypatch: pytest.MonkeyPatch) -> None:
    """Matrix products over the columns for a 3x3 layer; the two convolutions (FFT) for
    16x16 filters on 3 channels, as the cost model estimates; the same gradients."""
    from convkit.testing import assert_close
    from convkit_numpy import grad

    calls: list[int] = []
    routes: list[str] = []
    real = grad.conv_vjp

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(grad, "conv_vjp", spy)
    rng = np.random.default_rng(3)
    for x_shape, w_shape in [((2, 16, 24, 24), (16, 16, 3, 3)), ((4, 3, 96, 96), (4, 3, 16, 16))]:
        x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
        spec = ConvSpec.build(x_shape, w_shape)
        gy = rng.standard_normal(spec.output_shape)
        before = len(calls)
        got = ck.conv_vjp(x, w, gy, backend="numpy")
        routes.append("columns" if len(calls) > before else "convolutions")
        want = real(x, w, gy, spec, True)
        for g, e in zip(got, want, strict=True):
            assert_close(g, e, "float64", method="fft")
    assert routes == ["columns", "convolutions"]
