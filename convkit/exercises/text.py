"""Exercise 5: text, where the convolution's assumptions fail."""

from __future__ import annotations

import numpy as np

import convkit as ck
from convkit import nn
from convkit.adapters import text
from convkit.exercises.common import Context, Result, pyplot, save_figure
from convkit.testing import rounding_bound

PAIR_K1 = ("dog bites man", "man bites dog")
# The same 3-grams in a different order: X C Y C Z C against X C Z C Y C, where the
# connector C has k - 1 = 2 tokens, so no 3-token window spans two blocks.
_X, _C = "the dog chased the cat", ", then"
_Y, _Z = "the cat chased the mouse", "the mouse ate the cheese"
PAIR_K3 = (f"{_X} {_C} {_Y} {_C} {_Z} {_C}", f"{_X} {_C} {_Z} {_C} {_Y} {_C}")


def pooled_features(
    sentences: tuple[str, str], k: int, seed: int, backend: str | None
) -> tuple[float, float, float]:
    """Embed, convolve with width ``k`` (no padding), global max and mean pooling.

    Returns the largest difference between the two sentences' max-pooled features, the
    same for the mean-pooled ones, and the rounding bound of the features
    (:func:`~convkit.testing.rounding_bound`): features equal in exact arithmetic but
    computed at other positions may differ by that much (a BLAS kernel can compute the
    last columns with other instructions than the first ones)."""
    tokens = [text.tokenize(s) for s in sentences]
    vocab = text.Vocabulary.build(tokens)
    rng = np.random.default_rng(seed)
    table = rng.standard_normal((len(vocab), 8))
    w = rng.standard_normal((16, 8, k))
    feats = []
    scale = 0.0
    for t in tokens:
        x = text.embed(vocab.encode(t), table)[None]
        y = np.asarray(ck.conv(x, w, backend=backend))[0]
        feats.append((y.max(axis=1), y.mean(axis=1)))
        magnitude = np.asarray(ck.conv(np.abs(x), np.abs(w), backend=backend))
        scale = max(scale, float(np.max(magnitude)))
    (max1, mean1), (max2, mean2) = feats
    bound = rounding_bound(max1.dtype, scale, terms=w.shape[1] * k)
    return float(np.max(np.abs(max1 - max2))), float(np.max(np.abs(mean1 - mean2))), bound


def same_up_to_rounding(diff: float, bound: float) -> str:
    """``"identical"``, ``"identical up to rounding"`` or ``"different"``.

    >>> same_up_to_rounding(0.0, 1e-14), same_up_to_rounding(2e-15, 1e-14)
    ('identical', 'identical up to rounding')
    """
    if diff == 0.0:
        return "identical"
    return "identical up to rounding" if diff <= bound else "different"


VOCAB = ["<unk>", "not", "good", "bad", *[f"w{i}" for i in range(9)]]
NOT, GOOD, BAD = 1, 2, 3


LENGTH = 24


def negation_task(
    n: int, distance: int, rng: np.random.Generator, length: int = LENGTH
) -> tuple[np.ndarray, np.ndarray]:
    """Sequences holding 'not', a sentiment word ``distance`` after it, and the opposite
    sentiment word 4 to 6 tokens before it. The label is the polarity of the word after
    'not', negated: every sequence has 'not', 'good' and 'bad', so only their relative
    position carries the label. The three stay at least 2 tokens from either end, so no
    window of a narrow kernel sees them next to the sequence's edge."""
    if distance > length - 13:
        raise ValueError(f"distance={distance} does not fit sequences of {length} tokens")
    x = rng.integers(4, len(VOCAB), (n, length))
    labels = rng.permutation(np.arange(n) % 2)  # balanced: chance is exactly 50%
    for i in range(n):
        start = rng.integers(8, 11)
        target = GOOD if labels[i] == 0 else BAD  # "not good" -> 0, "not bad" -> 1
        x[i, start] = NOT
        x[i, start + distance] = target
        x[i, start - rng.integers(4, 7)] = BAD if target == GOOD else GOOD
    onehot = np.zeros((n, len(VOCAB), length), dtype=np.float32)
    onehot[np.arange(n)[:, None], x, np.arange(length)[None, :]] = 1.0
    return onehot, labels


def accuracy(
    ctx: Context,
    model: nn.Module,
    data: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    seed: int,
) -> float:
    x, y = data
    nn.fit(
        model,
        nn.CrossEntropyLoss(),
        nn.Adam(model.parameters(), lr=0.01),
        x,
        y,
        epochs=10 if ctx.quick else 15,
        batch_size=50,
        seed=seed,
        verbose=ctx.verbose,
    )
    return float(np.mean(np.argmax(model(test[0]), axis=1) == test[1]))


def run(ctx: Context) -> Result:
    """Identical features for different sentences; accuracy against token distance."""
    k1 = pooled_features(PAIR_K1, 1, seed=51, backend=ctx.backend)
    k2 = pooled_features(PAIR_K1, 2, seed=51, backend=ctx.backend)
    k3 = pooled_features(PAIR_K3, 3, seed=52, backend=ctx.backend)
    rng = ctx.rng(53)
    kernel = 3
    distances = [1, 2, 3, 6] if ctx.quick else [1, 2, 3, 4, 6, 10]
    n_train, n_test = (600, 400) if ctx.quick else (1500, 2000)
    conv_acc, dense_acc = {}, {}
    for d in distances:
        train = negation_task(n_train, d, rng)
        test = negation_task(n_test, d, rng)
        conv = nn.Sequential(
            nn.Conv1d(len(VOCAB), 16, kernel, backend=ctx.backend, seed=d),
            nn.ReLU(),
            nn.GlobalMaxPool(),
            nn.Linear(16, 2, seed=d + 100),
        )
        dense = nn.Sequential(
            nn.Flatten(),
            nn.Linear(len(VOCAB) * LENGTH, 64, seed=d),
            nn.ReLU(),
            nn.Linear(64, 2, seed=d + 100),
        )
        conv_acc[d] = accuracy(ctx, conv, train, test, seed=d)
        dense_acc[d] = accuracy(ctx, dense, train, test, seed=d)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot(
        distances,
        [conv_acc[d] for d in distances],
        "o-",
        label=f"conv, kernel {kernel} + global max pool",
    )
    ax.plot(distances, [dense_acc[d] for d in distances], "s-", label="dense on the whole sequence")
    ax.axvline(kernel - 0.5, color="gray", ls=":", lw=1)
    ax.axhline(0.5, color="gray", lw=0.8)
    ax.set_xlabel("distance between 'not' and its sentiment word")
    ax.set_ylabel("held-out accuracy")
    ax.set_ylim(0.3, 1.05)
    ax.legend(fontsize=8)
    figure = save_figure(fig, ctx, "text-distance")
    beyond = [conv_acc[d] for d in distances if d >= kernel]
    table = "\n".join(f"| {d} | {conv_acc[d]:.2f} | {dense_acc[d]:.2f} |" for d in distances)
    return Result(
        name="text",
        title="Text, the counterexample",
        verdict=f"'{PAIR_K1[0]}' and '{PAIR_K1[1]}' get {same_up_to_rounding(k1[0], k1[2])} k=1 "
        f"features (diff {k1[0]:.0e}), so does a reordered story for k=3 ({k3[0]:.0e}: "
        f"{same_up_to_rounding(k3[0], k3[2])}); beyond the receptive field the conv "
        f"net falls to {np.mean(beyond):.0%} while a dense model keeps {np.mean(list(dense_acc.values())):.0%}",
        key=f"conv {np.mean(beyond):.0%} beyond RF",
        numbers={
            "k1_max_pool_diff": k1[0],
            "k1_mean_pool_diff": k1[1],
            "k1_rounding_bound": k1[2],
            "k2_max_pool_diff": k2[0],
            "k3_pair": list(PAIR_K3),
            "k3_max_pool_diff": k3[0],
            "k3_mean_pool_diff": k3[1],
            "k3_rounding_bound": k3[2],
            "kernel": kernel,
            "conv_accuracy": conv_acc,
            "dense_accuracy": dense_acc,
        },
        figures=[figure],
        details="| distance | conv (kernel 3) | dense |\n|---|---|---|\n" + table,
    )
