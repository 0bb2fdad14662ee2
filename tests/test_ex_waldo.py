"""The Waldo exercise: its NCC against loops, its scenes, and what the quick run
measured (on the NumPy and the SciPy backends, named: the command's default is NumPy,
and an unnamed choice is left to the cost models, which may pick torch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from convkit.exercises import Context, waldo
from convkit.exercises.common import Result


def ncc_loop(scenes: np.ndarray, template: np.ndarray) -> np.ndarray:
    """Pearson correlation of the flattened template with every flattened window."""
    n, _, hs, ws = scenes.shape
    _, h, w = template.shape
    t = template.ravel().astype(np.float64)
    out = np.empty((n, hs - h + 1, ws - w + 1))
    for k in range(n):
        for i in range(hs - h + 1):
            for j in range(ws - w + 1):
                win = scenes[k, :, i : i + h, j : j + w].ravel().astype(np.float64)
                out[k, i, j] = np.corrcoef(win, t)[0, 1]
    return out


@pytest.mark.parametrize("backend", [None, "numpy", "scipy"])
@pytest.mark.parametrize("channels", [1, 3])
def test_ncc_is_the_correlation_coefficient_of_each_window(
    backend: str | None, channels: int
) -> None:
    rng = np.random.default_rng(5)
    scenes = rng.random((2, channels, 11, 13)).astype(np.float32)
    template = rng.random((channels, 4, 5)).astype(np.float32)
    got = waldo.ncc(scenes, template, backend)
    np.testing.assert_allclose(got, ncc_loop(scenes, template), atol=2e-5)


def test_ncc_invariances_joint_and_per_channel() -> None:
    """One gain and offset for all channels leaves both at 1; a gain per channel (a
    colour cast) leaves only the per-channel one at 1."""
    rng = np.random.default_rng(6)
    template = rng.random((3, 5, 5)).astype(np.float32)
    scene = rng.random((1, 3, 12, 12)).astype(np.float32)
    scene[0, :, 3:8, 4:9] = 0.6 * template + 0.2
    assert waldo.ncc(scene, template, None)[0, 3, 4] == pytest.approx(1.0, abs=1e-5)
    cast = np.array([1.3, 1.0, 0.7], dtype=np.float32)[:, None, None]
    scene[0, :, 3:8, 4:9] = cast * template
    assert waldo.ncc(scene, template, None)[0, 3, 4] < 0.99
    assert waldo.ncc_per_channel(scene, template, None)[0, 3, 4] == pytest.approx(1.0, abs=1e-5)


def test_scenes_hold_the_target_where_they_say() -> None:
    src = waldo._Sources()
    s = waldo.make_scenes(src, 12, "test", np.random.default_rng(1), hard=False)
    assert s.x.shape == (12, 3, waldo.SCENE, waldo.SCENE)
    assert 0 < s.present.sum() < 12
    t = waldo.T
    for k in range(12):
        r, c = s.where[k]
        if r >= 0:  # an unchanged copy of the template
            np.testing.assert_allclose(s.x[k, :, r : r + t, c : c + t], src.template, atol=1e-6)
        r, c = s.decoy[k]
        if r >= 0:  # the template's channels, permuted
            decoy = s.x[k, :, r : r + t, c : c + t]
            assert not np.allclose(decoy, src.template, atol=1e-3)
            np.testing.assert_allclose(
                np.sort(decoy, axis=0), np.sort(src.template, axis=0), atol=1e-6
            )
    maps = waldo.ncc(s.x, src.template.astype(np.float32), None)
    for i in np.flatnonzero(s.present):
        assert maps[i][tuple(s.where[i])] == pytest.approx(1.0, abs=1e-4)
    # and the labels point at the target's position in the flattened score map
    side = waldo.SCENE - t + 1
    lab = waldo.labels(s)
    assert np.array_equal(lab == side * side, ~s.present)
    assert np.array_equal(np.stack(np.divmod(lab[s.present], side), 1), s.where[s.present])


def test_warp_resizes_about_the_centre_and_shifts() -> None:
    """Against SciPy's own zoom and shift on a smooth ramp (bilinear is exact on it)."""
    from scipy import ndimage

    side = waldo.T + 2 * waldo.PAD
    rows, cols = np.indices((side, side), dtype=np.float64)
    region = np.stack([rows, cols, rows + 2 * cols])  # linear: interpolation is exact
    centre = (side - 1) / 2
    out = waldo.warp(region, 1.1, (0.3, -0.4))
    o = np.arange(waldo.T) - (waldo.T - 1) / 2
    # output pixel o samples centre + o / scale - shift: a ramp with slope 1 / 1.1
    np.testing.assert_allclose(out[0], (centre + o / 1.1 - 0.3)[:, None] * np.ones(waldo.T))
    np.testing.assert_allclose(out[1], np.ones(waldo.T)[:, None] * (centre + o / 1.1 + 0.4))
    # a pure shift is ndimage.shift, cropped
    img = np.random.default_rng(2).random((1, side, side))
    p = waldo.PAD
    want = ndimage.shift(img[0], (0.25, -0.5), order=1)[p : p + waldo.T, p : p + waldo.T]
    np.testing.assert_allclose(waldo.warp(img, 1.0, (0.25, -0.5))[0], want, atol=1e-12)
    # and it does change what NCC sees: the template no longer correlates at 1
    src = waldo._Sources()
    moved = waldo.warp(src.target_region, 0.87, (0.5, 0.5)).astype(np.float32)
    score = waldo.ncc(moved[None], src.template.astype(np.float32), None)[0, 0, 0]
    assert 0.3 < score < 0.99


def test_margin_is_target_minus_best_rival() -> None:
    m = np.zeros((1, 20, 20))
    m[0, 5, 5], m[0, 5, 6], m[0, 15, 15] = 0.9, 0.95, 0.4
    assert waldo.margins(m, np.array([[5, 5]]))[0] == pytest.approx(0.55)
    m[0, 15, 15] = 1.2  # something else wins
    assert waldo.margins(m, np.array([[5, 5]]))[0] == pytest.approx(-0.25)
    assert waldo.margins(m, np.array([[-1, -1]])).size == 0


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[Result, Path]:
    out = tmp_path_factory.mktemp("waldo")
    return waldo.run(Context(backend="numpy", quick=True, out=out, progress=False)), out


@pytest.fixture(scope="module")
def quick_scipy(tmp_path_factory: pytest.TempPathFactory) -> Result:
    out = tmp_path_factory.mktemp("waldo-scipy")
    return waldo.run(Context(backend="scipy", quick=True, out=out, progress=False))


def test_the_counts_follow_from_the_per_scene_records(quick: tuple[Result, Path]) -> None:
    r, out = quick
    n = r.numbers
    where = np.array(n["scenes"]["test_where"])
    decoy = np.array(n["scenes"]["test_decoy"])
    present, has_decoy = where[:, 0] >= 0, decoy[:, 0] >= 0
    assert n["scenes"]["test_with_target"] == present.sum()
    evs = [n["ncc_grey"], n["ncc_rgb"], n["ncc_rgb_per_channel"], *n["learned"]["rgb"]]
    for ev in evs + n["learned"]["grey"]:
        top1 = np.array(ev["per_scene"]["top1"])
        hit = present & (np.abs(top1 - where).max(axis=1) <= 2)
        assert hit.tolist() == ev["per_scene"]["hit"]
        assert ev["found_rate"] == pytest.approx(hit[present].mean())
        assert ev["found_rate_with_decoy"] == pytest.approx(hit[present & has_decoy].mean())
        on_decoy = has_decoy & (np.abs(top1 - decoy).max(axis=1) <= 2)
        assert ev["top1_on_decoy_rate"] == pytest.approx(on_decoy[has_decoy].mean())
        # precision and recall at the reported threshold, counted again
        kept = np.array(ev["per_scene"]["score"]) >= ev["threshold"]
        assert ev["recall"] == pytest.approx((kept & hit).sum() / present.sum())
        assert ev["precision"] == pytest.approx((kept & hit).sum() / max(kept.sum(), 1))
    assert (out / "figures" / "waldo.png").is_file() and (
        out / "figures" / "waldo-pr.png"
    ).is_file()
    assert r.figures == ["figures/waldo.png", "figures/waldo-pr.png"]


def test_average_precision_agrees_with_scikit_learn(quick: tuple[Result, Path]) -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    r, _ = quick
    n_present = r.numbers["scenes"]["test_with_target"]
    for ev in [r.numbers["ncc_grey"], r.numbers["ncc_rgb"], *r.numbers["learned"]["rgb"]]:
        hit = np.array(ev["per_scene"]["hit"])
        score = np.array(ev["per_scene"]["score"])
        # scikit-learn's recall is over the hits; ours over every scene with the target
        expected = metrics.average_precision_score(hit, score) * hit.sum() / n_present
        assert ev["average_precision"] == pytest.approx(expected, abs=1e-9)


def test_what_the_quick_run_measured(quick: tuple[Result, Path]) -> None:
    r, _ = quick
    grey, rgb = r.numbers["ncc_grey"], r.numbers["ncc_rgb"]
    # a working detector: chance of landing within 2 px of the target is 25/2401
    assert rgb["found_rate_without_decoy"] > 0.7
    assert min(e["found_rate"] for e in r.numbers["learned"]["rgb"]) > 0.3
    # colour tells the constructed decoy apart, grey does not
    assert grey["top1_on_decoy_rate"] > rgb["top1_on_decoy_rate"]
    assert rgb["found_rate_with_decoy"] > grey["found_rate_with_decoy"]
    # the headline is the no-decoy split, and it is stated first
    assert f"{rgb['found_rate_without_decoy']:.0%}" in r.verdict.split(";")[0]
    assert f"{rgb['average_precision_without_decoy']:.2f}" in r.key.split(";")[0]
    assert r.answer.index("no decoy") < r.answer.index("look-alike")
    assert "rotation" in r.limits and "second" in r.limits and r.question
    assert "| NCC, RGB |" in r.details


def test_ap_split_by_decoy_and_the_paired_test_sets(quick: tuple[Result, Path]) -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    r, _ = quick
    n = r.numbers
    where, decoy = np.array(n["scenes"]["test_where"]), np.array(n["scenes"]["test_decoy"])
    present, no_decoy = where[:, 0] >= 0, decoy[:, 0] < 0
    for ev in (n["ncc_grey"], n["ncc_rgb"]):
        hit = np.array(ev["per_scene"]["hit"])[no_decoy]
        score = np.array(ev["per_scene"]["score"])[no_decoy]
        expected = metrics.average_precision_score(hit, score) * hit.sum()
        expected /= present[no_decoy].sum()
        assert ev["average_precision_without_decoy"] == pytest.approx(expected, abs=1e-9)
    sets = n["test_sets"]
    assert list(sets) == ["no geometric change", "as trained", "wider than trained"]
    # the main set is the one the first table reports
    assert sets["as trained"]["NCC, RGB"][0]["hit"] == n["ncc_rgb"]["per_scene"]["hit"]
    for k, by_method in sets.items():
        for evs in by_method.values():
            for e in evs:
                hit = np.array(e["hit"])
                want = hit[present & no_decoy].mean()
                assert e["found_rate_without_decoy"] == pytest.approx(want), k
    # the geometric change costs NCC something, and wider ranges cost it more
    rgb = {k: sets[k]["NCC, RGB"][0]["found_rate_without_decoy"] for k in sets}
    assert rgb["no geometric change"] >= rgb["wider than trained"]
    assert rgb["no geometric change"] > 0.7


def test_scipy_backend_measures_the_same_ncc(
    quick: tuple[Result, Path], quick_scipy: Result
) -> None:
    a, b = quick[0].numbers, quick_scipy.numbers
    assert a["scenes"]["test_where"] == b["scenes"]["test_where"]
    for key in ("ncc_grey", "ncc_rgb", "ncc_rgb_per_channel"):
        assert a[key]["per_scene"]["top1"] == b[key]["per_scene"]["top1"]
        np.testing.assert_allclose(
            a[key]["per_scene"]["score"], b[key]["per_scene"]["score"], atol=1e-4
        )
    # the learned detector trained on SciPy's convolutions works as well
    assert min(e["found_rate"] for e in b["learned"]["rgb"]) > 0.3


def test_places_never_overlap_and_always_end() -> None:
    rng = np.random.default_rng(0)
    t = waldo.T
    for _ in range(500):  # five boxes can leave no room for a sixth: drawn again
        boxes = waldo.places(5, rng)
        assert len(boxes) == 5
        for i, (r, c) in enumerate(boxes):
            assert 0 <= r <= waldo.SCENE - t and 0 <= c <= waldo.SCENE - t
            assert all(max(abs(r - a), abs(c - b)) >= t for a, b in boxes[:i])
