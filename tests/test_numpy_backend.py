"""The numpy backend's bounded workspace."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import convkit as ck
from convkit.spec import ConvSpec
from convkit_numpy import ops


def test_workspace_stays_bounded_on_a_large_input() -> None:
    x = np.ones((1, 16, 256, 256), dtype=np.float32)  # 4 MiB
    w = np.ones((16, 16, 3, 3), dtype=np.float32)
    full_columns = 256 * 256 * 16 * 9 * 4  # what materialising im2col would take: 36 MiB
    ck.conv(x, w, padding=1, backend="numpy")  # warm up imports and caches
    tracemalloc.start()
    try:
        y = ck.conv(x, w, padding=1, backend="numpy")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # the padded input (258 x 258), the output, one column buffer, 1 MiB for small things
    budget = x.nbytes * 258**2 // 256**2 + y.nbytes + ops.WORKSPACE_BYTES + (1 << 20)
    assert peak <= budget < full_columns, (peak, budget, full_columns)


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
