"""Padding modes: the index maps against ``numpy.pad``, the aliases, the errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from convkit.padding import (
    PADDING_MODE_ALIASES,
    PADDING_MODES,
    canonical_padding_mode,
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
