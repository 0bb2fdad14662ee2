"""Text to arrays: tokens, a vocabulary, and ``(channels, time)`` encodings for Conv1d."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

UNKNOWN = "<unk>"
_WORD = re.compile(r"\w+|[^\w\s]")


def tokenize(text: str, level: str = "word") -> list[str]:
    """Split text into lower-cased words and punctuation, or into characters.

    >>> tokenize("Dog bites man.")
    ['dog', 'bites', 'man', '.']
    >>> tokenize("ab c", level="char")
    ['a', 'b', ' ', 'c']
    """
    if level == "word":
        return _WORD.findall(text.lower())
    if level == "char":
        return list(text)
    raise ValueError(f"level={level!r}; expected 'word' or 'char'")


class Vocabulary:
    """Token ids; id 0 is the unknown token, the rest by decreasing frequency.

    >>> vocab = Vocabulary.build([["dog", "bites", "man"], ["man", "bites", "dog"]])
    >>> vocab.encode(["dog", "cat"]), vocab.unknown_count
    ([2, 0], 1)
    """

    def __init__(self, tokens: Sequence[str]) -> None:
        if not tokens or tokens[0] != UNKNOWN:
            tokens = [UNKNOWN, *[t for t in tokens if t != UNKNOWN]]
        self.tokens = list(tokens)
        self.index = {t: i for i, t in enumerate(self.tokens)}
        self.unknown_count = 0

    @classmethod
    def build(cls, corpus: Iterable[Sequence[str]], min_count: int = 1) -> Vocabulary:
        """The tokens of ``corpus`` seen at least ``min_count`` times.

        >>> Vocabulary.build([["a", "b", "a"], ["c"]], min_count=2).tokens
        ['<unk>', 'a']
        """
        counts = Counter(t for sentence in corpus for t in sentence)
        ordered = sorted(
            (t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t)
        )
        return cls(ordered)

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """Ids of ``tokens``; tokens outside the vocabulary map to the unknown id 0 and
        are counted in :attr:`unknown_count`.

        >>> vocab = Vocabulary(["the", "cat"])
        >>> vocab.encode(["the", "dog"]), vocab.unknown_count
        ([1, 0], 1)
        """
        ids = [self.index.get(t, 0) for t in tokens]
        self.unknown_count += sum(1 for t in tokens if t not in self.index)
        return ids

    def decode(self, ids: Sequence[int] | np.ndarray) -> list[str]:
        """Tokens of ``ids``; an id outside ``[0, len(self))`` is a :class:`ValueError`
        (a negative id does not count from the end), as :func:`one_hot` has it.

        >>> Vocabulary(["the", "cat"]).decode([1, 2, 0])
        ['the', 'cat', '<unk>']
        """
        return [self.tokens[i] for i in _checked_ids(ids, len(self)).tolist()]


def one_hot(ids: Sequence[int] | np.ndarray, size: int) -> np.ndarray:
    """``(size, len(ids))`` float32: channel ``ids[t]`` is 1 at time ``t``.

    >>> one_hot([2, 0], 3).tolist()
    [[0.0, 1.0], [0.0, 0.0], [1.0, 0.0]]
    """
    ids_arr = _checked_ids(ids, size)
    out = np.zeros((size, len(ids_arr)), dtype=np.float32)
    out[ids_arr, np.arange(len(ids_arr))] = 1.0
    return out


def embed(ids: Sequence[int] | np.ndarray, table: np.ndarray) -> np.ndarray:
    """``(dim, len(ids))``: column ``t`` is row ``ids[t]`` of the ``(vocab, dim)`` table;
    an id outside ``[0, len(table))`` is a :class:`ValueError`, as in :func:`one_hot`.

    >>> embed([2, 0], np.arange(6.0).reshape(3, 2)).tolist()
    [[4.0, 0.0], [5.0, 1.0]]
    """
    table = np.asarray(table)
    if table.ndim != 2:
        raise ValueError(f"table must be (vocab, dim); got shape {table.shape}")
    return np.ascontiguousarray(table[_checked_ids(ids, len(table))].T)


def _checked_ids(ids: Sequence[int] | np.ndarray, size: int) -> np.ndarray:
    """``ids`` as a 1-d int64 array, each in ``[0, size)``, or a clear error: a
    :class:`TypeError` for ids that are not integers (a float is not truncated, a bool
    not counted as 0 or 1), a :class:`ValueError` naming the first id out of range.

    >>> _checked_ids([2, 0], 3).tolist()
    [2, 0]
    >>> _checked_ids([1, -1], 3)
    Traceback (most recent call last):
    ValueError: ids must lie in [0, 3); got -1 at position 1
    """
    arr = np.asarray(ids if isinstance(ids, np.ndarray) else list(ids))
    if arr.ndim != 1:
        raise ValueError(f"ids must be a 1-d sequence of integers; got shape {arr.shape}")
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"ids must be integers; got {arr.dtype} values such as {arr[0].item()!r}")
    outside = np.flatnonzero((arr < 0) | (arr >= size))
    if outside.size:
        at = int(outside[0])
        raise ValueError(f"ids must lie in [0, {size}); got {arr[at]} at position {at}")
    return arr.astype(np.int64)
