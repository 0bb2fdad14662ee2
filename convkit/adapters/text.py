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
        """The tokens of ``corpus`` seen at least ``min_count`` times."""
        counts = Counter(t for sentence in corpus for t in sentence)
        ordered = sorted(
            (t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t)
        )
        return cls(ordered)

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """Ids of ``tokens``; tokens outside the vocabulary map to the unknown id 0 and
        are counted in :attr:`unknown_count`."""
        ids = [self.index.get(t, 0) for t in tokens]
        self.unknown_count += sum(1 for t in tokens if t not in self.index)
        return ids

    def decode(self, ids: Sequence[int]) -> list[str]:
        """Tokens of ``ids``."""
        return [self.tokens[i] for i in ids]


def one_hot(ids: Sequence[int], size: int) -> np.ndarray:
    """``(size, len(ids))`` float32: channel ``ids[t]`` is 1 at time ``t``.

    >>> one_hot([2, 0], 3).tolist()
    [[0.0, 1.0], [0.0, 0.0], [1.0, 0.0]]
    """
    ids_arr = np.asarray(ids, dtype=np.int64)
    if ids_arr.size and (ids_arr.min() < 0 or ids_arr.max() >= size):
        raise ValueError(f"ids must lie in [0, {size}); got {ids_arr.min()}..{ids_arr.max()}")
    out = np.zeros((size, len(ids_arr)), dtype=np.float32)
    out[ids_arr, np.arange(len(ids_arr))] = 1.0
    return out


def embed(ids: Sequence[int], table: np.ndarray) -> np.ndarray:
    """``(dim, len(ids))``: column ``t`` is row ``ids[t]`` of the ``(vocab, dim)`` table."""
    table = np.asarray(table)
    return np.ascontiguousarray(table[np.asarray(ids, dtype=np.int64)].T)
