"""Padding modes: the index maps against ``numpy.pad``, the aliases, the errors; the
array-API ``pad`` and its adjoint against the dense matrix of the same linear map."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from convkit.padding import (
    PADDING_MODE_ALIASES,
    PADDING_MODES,
    canonical_padding_mode,
    pad,
    pad_adjoint,
    pad_indices,
    pad_numpy,
)

NUMPY_NAME = {
    "reflect": "reflect",
    "symmetric": "symmetric",
    "replicate": "edge",
    "circular": "wrap",
}


@given(
    size=st.integers(1, 9),
    low=st.integers(0, 30),
    high=st.integers(0, 30),
    mode=st.sampled_from(sorted(NUMPY_NAME)),
)
def test_pad_indices_match_numpy_pad_for_any_width(
    size: int, low: int, high: int, mode: str
) -> None:
    values = np.arange(10, 10 + size)
    expected = np.pad(values, (low, high), mode=NUMPY_NAME[mode])
    assert values[pad_indices(size, low, high, mode)].tolist() == expected.tolist()


def test_zeros_marks_padded_positions() -> None:
    assert pad_indices(2, 2, 1, "zeros").tolist() == [-1, -1, 0, 1, -1]


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("zeros", "0 0 a b c d 0 0"),
        ("reflect", "c b a b c d c b"),
        ("symmetric", "b a a b c d d c"),
        ("replicate", "a a a b c d d d"),
        ("circular", "c d a b c d a b"),
    ],
)
def test_documented_table(mode: str, expected: str) -> None:
    # the table in convkit.padding's docstring and docs/backends.md
    letters = np.array(["0", "a", "b", "c", "d"])
    got = letters[pad_indices(4, 2, 2, mode) + 1]
    assert " ".join(got) == expected


@pytest.mark.parametrize("mode", PADDING_MODES)
def test_pad_numpy_pads_trailing_axes_only(mode: str) -> None:
    x = np.arange(24.0).reshape(2, 3, 4)
    out = pad_numpy(x, [(1, 2), (3, 0)], mode)
    assert out.shape == (2, 6, 7)
    np.testing.assert_array_equal(out[:, 1:4, 3:], x)


@pytest.mark.parametrize(("alias", "canonical"), sorted(PADDING_MODE_ALIASES.items()))
def test_aliases(alias: str, canonical: str) -> None:
    assert canonical_padding_mode(alias) == canonical


@pytest.mark.parametrize("bad", ["refelct", "same", "", None, 3])
def test_unknown_mode_lists_valid_ones(bad: object) -> None:
    with pytest.raises(ValueError, match=r"padding_mode=.* expected one of 'zeros', 'reflect'"):
        canonical_padding_mode(bad)


def test_pad_indices_rejects_empty_axis_and_negative_width() -> None:
    with pytest.raises(ValueError, match="size 0"):
        pad_indices(0, 1, 1, "reflect")
    with pytest.raises(ValueError, match=">= 0"):
        pad_indices(3, -1, 0, "reflect")


def _dense_padding_matrix(size: int, low: int, high: int, mode: str) -> np.ndarray:
    """The padding of one axis as a matrix, built from ``numpy.pad`` of the unit
    vectors (independent of the index maps): column ``s`` is the padded unit vector."""
    np_mode = {"zeros": "constant", **NUMPY_NAME}[mode]
    cols = [np.pad(np.eye(size)[s], (low, high), mode=np_mode) for s in range(size)]
    return np.stack(cols, axis=1)  # (low + size + high, size)


@given(
    size=st.integers(1, 7),
    low=st.integers(0, 17),
    high=st.integers(0, 17),
    mode=st.sampled_from(PADDING_MODES),
)
def test_pad_adjoint_is_the_transpose_of_the_dense_padding_matrix(
    size: int, low: int, high: int, mode: str
) -> None:
    rng = np.random.default_rng(size * 1000 + low * 31 + high)
    m = _dense_padding_matrix(size, low, high, mode)
    x = rng.standard_normal((2, 3, size))
    assert np.allclose(pad(np, x, [(low, high)], mode), x @ m.T, rtol=0, atol=1e-12)
    g = rng.standard_normal((2, 3, low + size + high))
    got = pad_adjoint(np, g, [(low, high)], [size], mode)
    assert got.shape == (2, 3, size)
    np.testing.assert_allclose(got, g @ m, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", PADDING_MODES)
def test_pad_adjoint_over_two_axes_satisfies_the_inner_product_identity(mode: str) -> None:
    """<pad(x), g> == <x, pad_adjoint(g)>: the definition of the adjoint, 2-d, widths
    wider than the input on one side."""
    rng = np.random.default_rng(3)
    padding, size = [(5, 1), (0, 9)], [4, 3]
    x = rng.standard_normal((1, 2, *size))
    padded = pad(np, x, padding, mode)
    g = rng.standard_normal(padded.shape)
    lhs = float(np.sum(padded * g))
    rhs = float(np.sum(x * pad_adjoint(np, g, padding, size, mode)))
    assert lhs == pytest.approx(rhs, rel=1e-12, abs=1e-12)


def test_pad_adjoint_of_a_wide_padding_sums_every_copy() -> None:
    """Padding 4000 on 8000 samples (and replicate's 4000 copies of one sample) folds
    back exactly: the adjoint of a padding applied to ones counts the copies."""
    for mode in ("reflect", "replicate", "circular", "symmetric"):
        g = np.ones((1, 1, 16000))
        counts = pad_adjoint(np, g, [(4000, 4000)], [8000], mode)
        expected = np.bincount(pad_indices(8000, 4000, 4000, mode), minlength=8000)
        assert np.array_equal(counts[0, 0], expected)
