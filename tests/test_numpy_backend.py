"""The numpy backend's bounded workspace."""

from __future__ import annotations

import tracemalloc

import numpy as np
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


@given(
    n=st.integers(0, 5),
    out0=st.integers(1, 40),
    rest=st.integers(1, 50),
    channels=st.integers(1, 300),
)
def test_chunks_tile_the_output_once_within_the_bound(
    n: int, out0: int, rest: int, channels: int
) -> None:
    spec = ConvSpec.build((n, channels, out0 + 2, rest + 2), (1, channels, 3, 3))
    chunks = ops._chunks(spec, itemsize=8)
    covered = np.zeros((n, out0), dtype=int)
    row_bytes = channels * 9 * 8
    for n0, n1, o0, o1 in chunks:
        covered[n0:n1, o0:o1] += 1
        positions = (n1 - n0) * (o1 - o0) * rest
        # one position is the smallest unit; beyond that a chunk stays under the bound
        assert positions * row_bytes <= max(ops.WORKSPACE_BYTES, row_bytes * rest)
    assert (covered == 1).all()
