"""Shape arithmetic: output sizes, the 'same' rule, padding forms."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from convkit.spec import ConvSpec, same_padding


@given(
    size=st.integers(1, 40),
    kernel=st.integers(1, 7),
    stride=st.integers(1, 4),
    dilation=st.integers(1, 3),
)
def test_same_gives_ceil_size_over_stride(
    size: int, kernel: int, stride: int, dilation: int
) -> None:
    spec = ConvSpec.build(
        (1, 1, size), (1, 1, kernel), padding="same", stride=stride, dilation=dilation
    )
    assert spec.output_size == (math.ceil(size / stride),)
    ((lo, hi),) = spec.padding
    total = max(0, (math.ceil(size / stride) - 1) * stride + (kernel - 1) * dilation + 1 - size)
    assert lo + hi == total and hi - lo in (0, 1)


@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel:UserWarning")
def test_same_with_stride_one_matches_torch_padding_same() -> None:
    torch = pytest.importorskip("torch", reason="torch is the reference here")
    for size in (5, 6):
        for kernel in (1, 2, 3, 4, 5):
            for dilation in (1, 2):
                x = torch.zeros(1, 1, size)
                x[0, 0, 0] = 1.0  # the position of the impulse reveals the left padding
                w = torch.arange(1.0, kernel + 1).reshape(1, 1, kernel)
                expected = torch.nn.functional.conv1d(x, w, padding="same", dilation=dilation)
                ((lo, hi),) = same_padding([size], [kernel], [1], [dilation])
                padded = torch.nn.functional.pad(x, (lo, hi))
                got = torch.nn.functional.conv1d(padded, w, dilation=dilation)
                assert torch.equal(got, expected), (size, kernel, dilation)


@pytest.mark.parametrize(
    ("padding", "expected"),
    [
        (2, ((2, 2), (2, 2))),
        ((1, 3), ((1, 1), (3, 3))),
        (((1, 0), (0, 2)), ((1, 0), (0, 2))),
        ([[1, 0], 2], ((1, 0), (2, 2))),
        ("valid", ((0, 0), (0, 0))),
    ],
)
def test_padding_forms(padding: object, expected: tuple) -> None:
    spec = ConvSpec.build((1, 1, 6, 6), (1, 1, 3, 3), padding=padding)  # type: ignore[arg-type]
    assert spec.padding == expected


def test_output_shape_formula() -> None:
    spec = ConvSpec.build(
        (3, 4, 20, 9),
        (8, 2, 3, 4),
        stride=(2, 3),
        dilation=(3, 1),
        padding=((1, 2), (0, 0)),
        groups=2,
    )
    # (20 + 3 - 7) // 2 + 1 = 9 ; (9 - 4) // 3 + 1 = 2
    assert spec.output_shape == (3, 8, 9, 2)
    assert spec.weight_shape == (8, 2, 3, 4)
