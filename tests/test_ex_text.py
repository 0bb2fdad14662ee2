"""Exercise 5 (text): the data, the references, and what the quick run measured."""

from __future__ import annotations

import math
from collections import Counter
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="the exercises draw figures")

from convkit.exercises import Context, Result, text

NOT_LOCAL = text.LOCAL_VOCAB.index["not"]
POSITIVE_IDS = set(text.LOCAL_VOCAB.encode(list(text.POSITIVE)))
NEGATIVE_IDS = set(text.LOCAL_VOCAB.encode(list(text.NEGATIVE)))


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[Result, Path]:
    out = tmp_path_factory.mktemp("text")
    return text.run(Context(quick=True, out=out, progress=False)), out


# --- the local task and its bag-of-words ceiling -----------------------------------------


def test_local_sentences_hold_one_sentiment_word_whose_negation_sets_the_label() -> None:
    ids, labels = text.local_task(3000, np.random.default_rng(1))
    assert ids.shape == (3000, text.LOCAL_LENGTH)
    assert labels.sum() == 1500  # balanced
    nots = []
    for row, label in zip(ids.tolist(), labels.tolist(), strict=True):
        sentiment = [i for i, t in enumerate(row) if t in POSITIVE_IDS | NEGATIVE_IDS]
        assert len(sentiment) == 1
        p = sentiment[0]
        negated = p > 0 and row[p - 1] == NOT_LOCAL
        assert label == int((row[p] in POSITIVE_IDS) != negated)
        assert not (p > 1 and row[p - 2] == NOT_LOCAL)  # no "not not good"
        nots.append(row.count(NOT_LOCAL))
    share = Counter(nots)
    # P(0 nots) = P(2 nots) = 1/4, P(1) = 1/2: 4 s.e. of 3000 draws
    for k, prob in ((0, 0.25), (1, 0.5), (2, 0.25)):
        assert abs(share[k] / 3000 - prob) < 4 * math.sqrt(prob * (1 - prob) / 3000), k


def test_no_bag_of_words_passes_75_percent() -> None:
    """Monte-Carlo: the best rule on the word counts, fitted on 40,000 sentences (each
    distinct count of "not" and polarity predicts its majority label, the filler words
    being independent of the label), is right 3/4 of the time."""
    ids, labels = text.local_task(40000, np.random.default_rng(2))
    c = text.counts(ids, len(text.LOCAL_VOCAB))
    positive = c[:, sorted(POSITIVE_IDS)].sum(axis=1) > 0
    key = c[:, NOT_LOCAL].astype(int) * 2 + positive
    best = sum(
        max(np.sum(labels[key == k]), np.sum(key == k) - np.sum(labels[key == k]))
        for k in set(key.tolist())
    )
    assert abs(best / 40000 - text.BOW_CEILING) < 4 * math.sqrt(0.75 * 0.25 / 40000)
    assert abs(text.bow_rule_accuracy(ids, labels) - 0.75) < 0.01


def test_ngram_counts_match_a_counter() -> None:
    ids = np.random.default_rng(3).integers(0, 5, (4, 7))
    got = text.ngram_counts(ids, 5)
    for row, feats in zip(ids.tolist(), got, strict=True):
        words = Counter(row)
        pairs = Counter(pairwise(row))
        want = np.zeros(5 + 25)
        for w, n in words.items():
            want[w] = n
        for (a, b), n in pairs.items():
            want[5 + 5 * a + b] = n
        np.testing.assert_array_equal(feats, want)


def test_logistic_regression_reaches_the_penalised_optimum() -> None:
    """The n-gram baseline is trained to convergence: at the returned weights the
    gradient of mean cross-entropy + λ/2·‖W‖², computed here in NumPy (float64), is
    near zero, the recorded objective matches NumPy's, and the separable task is fitted."""
    ids, y = text.local_task(400, np.random.default_rng(4))
    v = len(text.LOCAL_VOCAB)
    x = text.ngram_counts(ids, v)
    lam = 1.0 / len(ids)
    model, objective = text.logistic_regression(x, y, lam, seed=0)
    assert len(objective) == text.NGRAM_STEPS
    w = model.weight.value.astype(np.float64)
    assert model.bias is not None
    b = model.bias.value.astype(np.float64)
    xx = x.astype(np.float64)
    logits = xx @ w.T + b
    logits -= logits.max(axis=1, keepdims=True)
    prob = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    onehot = np.eye(2)[y]
    obj = -np.mean(np.log(prob[np.arange(len(y)), y])) + 0.5 * lam * np.sum(w * w)
    grad_w = (prob - onehot).T @ xx / len(y) + lam * w
    grad_b = (prob - onehot).mean(axis=0)
    # the gradient at the start is of order 0.1; at the optimum it vanishes
    assert np.abs(grad_w).max() < 1e-3 and np.abs(grad_b).max() < 1e-3
    assert objective[-1] == pytest.approx(obj, rel=1e-3)
    assert objective[0] > 2 * objective[-1]  # it did descend
    assert np.mean(np.argmax(logits, axis=1) == y) == 1.0
    # without the penalty's gradient the weights would not shrink: λ matters
    model2, _ = text.logistic_regression(x, y, 0.0, seed=0)
    assert np.sum(model2.weight.value.astype(np.float64) ** 2) > 1.5 * np.sum(w * w)


# --- the distance task ---------------------------------------------------------------------


def ring_distance(a: int, b: int) -> int:
    d = abs(a - b) % text.RING
    return min(d, text.RING - d)


@pytest.mark.parametrize("distance", [1, 3, 16])
def test_rings_hold_not_its_word_at_the_distance_and_the_other_word_far(distance: int) -> None:
    ids, labels = text.distance_task(500, distance, np.random.default_rng(distance))
    assert labels.sum() == 250
    for row, label in zip(ids.tolist(), labels.tolist(), strict=True):
        assert sorted(t for t in row if t < text.FIRST_FILLER) == [text.NOT, text.GOOD, text.BAD]
        s = row.index(text.NOT)
        target = row[(s + distance) % text.RING]
        assert target == (text.GOOD if label == 0 else text.BAD)
        other = row.index(text.BAD if label == 0 else text.GOOD)
        assert ring_distance(other, s) >= text.FAR
        assert ring_distance(other, (s + distance) % text.RING) >= text.FAR
    with pytest.raises(ValueError):
        text.distance_task(10, text.RING - 2 * text.FAR, np.random.default_rng(0))


@pytest.mark.parametrize("name", list(text.ARCHITECTURES))
def test_receptive_fields_measured_by_perturbing_one_token(name: str) -> None:
    """With all weights positive (no ReLU zeroes anything), changing one input token
    changes exactly the outputs whose window covers it: their number is the field."""
    rf, dilations = text.ARCHITECTURES[name]
    model = text.ring_net(dilations, None, seed=0)
    convs = model.layers[:-2]  # without the global pooling and the read-out
    for layer in convs:
        if hasattr(layer, "weight"):
            layer.weight = np.ones_like(layer.weight.value)
    x = np.zeros((1, len(text.DIST_VOCAB), text.RING), dtype=np.float32)
    x[0, 4] = 1.0
    y0 = x
    x2 = x.copy()
    x2[0, 5, 20] = 1.0
    y1, y2 = y0, x2
    for layer in convs:
        y1, y2 = layer(y1), layer(y2)
    changed = np.flatnonzero(np.any(np.abs(np.asarray(y1) - np.asarray(y2)) > 0, axis=1)[0])
    assert len(changed) == rf
    assert changed.min() == 20 - rf // 2 and changed.max() == 20 + rf // 2  # "same" padding


def test_window_oracle_reads_the_linking_words() -> None:
    f = text.FIRST_FILLER
    row = np.full(text.RING, f + 1)
    row[[5, 6]] = [f + 2, f + 3]  # "not w w good": the gap words, then the target
    row[4], row[7], row[30] = text.NOT, text.GOOD, text.BAD
    assert text.window_oracle(row[None], np.array([0]), 3) == 1.0
    assert text.window_oracle(row[None], np.array([1]), 3) == 0.0
    # the gap words also stand before the other word: no evidence either way
    row[[28, 29]] = [f + 2, f + 3]
    assert text.window_oracle(row[None], np.array([0]), 3) == 0.5
    # the same filler everywhere: both windows are there, a coin toss
    ids, labels = text.distance_task(200, 3, np.random.default_rng(0), constant_filler=True)
    assert text.window_oracle(ids, labels, 3) == 0.5


# --- what the quick run measured -------------------------------------------------------------


def check_measurements(r: Result) -> None:
    n = r.numbers
    n_test = n["sizes"]["n_test"]
    se = 0.5 / math.sqrt(n_test)
    assert n["chance_standard_error"] == pytest.approx(se)
    # k = 1 with pooling is a bag of words: reordering changes nothing but rounding
    assert n["k1_max_pool_diff"] <= n["k1_rounding_bound"] < 1e-11
    local = {k: float(np.mean(v)) for k, v in n["local_accuracy"].items()}
    # no bag of words passes its ceiling (beyond sampling noise) ...
    assert local["conv k=1 + max pool (bag of words)"] <= text.BOW_CEILING + 4 * se
    assert local["MLP on word counts (bag of words)"] <= text.BOW_CEILING + 4 * se
    for v in n["bow_rule_accuracy_on_test_sets"]:
        assert abs(v - text.BOW_CEILING) < 4 * math.sqrt(0.75 * 0.25 / n_test)
    # ... while a k = 3 conv reads the phrase
    assert local["conv k=3 + max pool"] >= 0.9
    assert local["conv k=3 + max pool"] > text.BOW_CEILING + 4 * se
    # and so does the converged n-gram baseline (the task is linear in bigram counts)
    assert local[text.NGRAM] >= 0.9
    assert all(v == 1.0 for v in n["local_accuracy_on_training_data"][text.NGRAM])
    assert max(n["ngram_baseline"]["objective_relative_drop_last_steps"]) < 1e-3
    v = len(text.LOCAL_VOCAB)
    assert n["local_parameters"][text.NGRAM] == 2 * (v + v * v) + 2
    # runs at D = RF and beyond it are reported apart, as recorded per distance
    at: list[float] = []
    beyond: list[float] = []
    for name, rf in n["receptive_fields"].items():
        for d, accs in n["distance_accuracy"][name].items():
            if int(d) == rf:
                at += accs
            elif int(d) > rf:
                beyond += accs
    assert sorted(n["accuracy_at_receptive_field_runs"]) == sorted(at)
    assert sorted(n["accuracy_beyond_receptive_field_runs"]) == sorted(beyond)
    assert at and beyond
    # distance: right inside the receptive field, chance beyond it
    for name, rf in n["receptive_fields"].items():
        for d, accs in n["distance_accuracy"][name].items():
            mean = float(np.mean(accs))
            if int(d) < rf:
                assert mean >= 0.9, (name, d, accs)
            elif int(d) == rf:
                assert abs(mean - 0.5) < 0.1, (name, d, accs)  # may leak a little
            else:
                assert abs(mean - 0.5) < 4 * se / math.sqrt(len(accs)), (name, d, accs)
    assert n["receptive_fields"] == {name: rf for name, (rf, _) in text.ARCHITECTURES.items()}
    # the windows hold the answer at D = 3 ...
    assert n["window_oracle_accuracy_d3"] >= 0.9
    # ... and with one filler word they do not: the same prediction for every ring
    for name in n["constant_filler_accuracy"]:
        assert n["constant_filler_accuracy"][name] == 0.5
        assert n["constant_filler_same_prediction_share"][name] == 1.0


def test_quick_run_measures_where_convolutions_work_and_fail(quick: tuple[Result, Path]) -> None:
    r, out = quick
    check_measurements(r)
    assert r.question and r.answer and r.limits
    assert r.figures == ["figures/text-distance.png"]
    assert (out / r.figures[0]).stat().st_size > 10_000


def test_scipy_backend(tmp_path: Path) -> None:
    r = text.run(Context(backend="scipy", quick=True, out=tmp_path, progress=False))
    check_measurements(r)
    assert (tmp_path / r.figures[0]).is_file()
