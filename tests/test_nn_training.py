"""convkit.nn as a PyTorch or Keras user meets it: fit/evaluate/History/EarlyStopping,
metrics, train/eval modes, Dropout and BatchNorm, repr, state dicts, summary, dtypes.

References are independent: torch's modules for repr, state-dict keys, batch
normalisation and parameter counts; plain NumPy written from the definitions for
losses and metrics."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from convkit import nn


def _regression(n: int, rng: np.random.Generator, slope: float = 3.0):
    x = rng.standard_normal((n, 1)).astype(np.float32)
    return x, (slope * x).astype(np.float32)


def _classes(n: int, rng: np.random.Generator):
    """Two Gaussian blobs in 2-d: labels 0 and 1."""
    y = rng.integers(0, 2, n)
    x = rng.standard_normal((n, 2)) + np.where(y[:, None] == 1, 1.5, -1.5)
    return x.astype(np.float32), y


def _classifier(seed: int = 0) -> nn.Sequential:
    return nn.Sequential(nn.Linear(2, 8, seed=seed), nn.ReLU(), nn.Linear(8, 2, seed=seed + 1))


# -- fit / evaluate / predict --------------------------------------------------------------


def test_fit_reports_keras_names_and_validation_matches_evaluate() -> None:
    rng = np.random.default_rng(0)
    x, y = _classes(256, rng)
    xv, yv = _classes(128, rng)
    model = _classifier()
    loss = nn.CrossEntropyLoss()
    history = nn.fit(
        model,
        loss,
        nn.Adam(model.parameters(), lr=0.01),
        x,
        y,
        epochs=4,
        batch_size=32,
        validation_data=(xv, yv),
        metrics=["accuracy"],
        seed=0,
        verbose=0,
    )
    assert isinstance(history, nn.History)
    assert list(history.history) == ["loss", "accuracy", "val_loss", "val_accuracy"]
    assert all(len(v) == 4 for v in history.history.values()) and history.epoch == [0, 1, 2, 3]
    # the last epoch's validation numbers are those of the final model, computed here
    # directly from the definitions
    logits = np.concatenate([model(xv[i : i + 32]) for i in range(0, 128, 32)])
    z = logits - logits.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    assert history.history["val_loss"][-1] == pytest.approx(-log_p[np.arange(128), yv].mean())
    assert history.history["val_accuracy"][-1] == pytest.approx(
        np.mean(logits.argmax(axis=1) == yv)
    )
    assert history.history["val_accuracy"][-1] > 0.9
    scores = nn.evaluate(model, xv, yv, loss=loss, batch_size=7)
    assert list(scores) == ["loss", "accuracy"]
    assert scores["loss"] == pytest.approx(history.history["val_loss"][-1], rel=1e-5)
    assert history.params == {
        "epochs": 4,
        "steps": 8,
        "samples": 256,
        "batch_size": 32,
        "metrics": ["loss", "accuracy", "val_loss", "val_accuracy"],
    }


def test_training_metrics_are_means_over_the_epochs_batches() -> None:
    rng = np.random.default_rng(1)
    x, y = _regression(40, rng)
    model = nn.Linear(1, 1, seed=0)
    seen: list[tuple[float, int]] = []

    def spy(prediction, target):
        value = float(np.mean(np.abs(prediction - target)))
        seen.append((value, len(target)))
        return value

    h = nn.fit(
        model, nn.MSELoss(), nn.SGD(model.parameters(), lr=0.0), x, y,
        epochs=1, batch_size=16, metrics=[spy, "mae"], verbose=0,
    )  # fmt: skip
    # lr 0: every batch sees the same model, so the epoch's value is a weighted mean
    weighted = sum(v * n for v, n in seen) / sum(n for _, n in seen)
    assert [n for _, n in seen] == [16, 16, 8]
    assert h.history["spy"] == [pytest.approx(weighted)]
    assert h.history["mae"] == [pytest.approx(float(np.mean(np.abs(model(x) - y))))]


def test_fit_is_reproducible_by_seed_and_shuffles_unless_told_not_to() -> None:
    rng = np.random.default_rng(2)
    x, y = _classes(96, rng)

    def train(**kwargs):
        m = _classifier()
        nn.fit(m, nn.CrossEntropyLoss(), nn.SGD(m.parameters(), lr=0.1), x, y,
               epochs=2, batch_size=8, verbose=0, **kwargs)  # fmt: skip
        return m.state_dict()

    a, b, c = train(seed=3), train(seed=3), train(seed=4)
    d, e = train(shuffle=False), train(shuffle=False, seed=9)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not all(np.array_equal(a[k], c[k]) for k in a)
    assert all(np.array_equal(d[k], e[k]) for k in d)


def test_evaluate_and_predict_run_in_eval_mode_and_leave_the_mode() -> None:
    model = nn.Sequential(nn.Linear(3, 3, seed=0), nn.Dropout(0.5, seed=0))
    x = np.ones((10, 3), dtype=np.float32)
    expected = x @ model[0].weight.value.T + model[0].bias.value
    np.testing.assert_allclose(nn.predict(model, x, batch_size=4), expected, rtol=1e-6)
    assert model.training and model[1].training
    model.eval()
    nn.evaluate(model, x, np.zeros((10, 3), np.float32), loss=nn.MSELoss(), metrics=())
    assert not model.training and not model[1].training


def test_fit_trains_in_train_mode_and_restores_the_mode() -> None:
    modes = []

    class Spy(nn.ReLU):
        def forward(self, x):
            modes.append(self.training)
            return super().forward(x)

    model = nn.Sequential(nn.Linear(2, 2, seed=0), Spy())
    model.eval()
    x = np.ones((4, 2), np.float32)
    nn.fit(model, nn.MSELoss(), nn.SGD(model.parameters(), lr=0.1), x, x,
           epochs=1, batch_size=4, validation_data=(x, x), verbose=0)  # fmt: skip
    assert modes == [True, False] and not model.training


def test_verbose_levels(capsys: pytest.CaptureFixture[str]) -> None:
    x, y = _regression(32, np.random.default_rng(0))

    def run(verbose, file=None):
        m = nn.Linear(1, 1, seed=0)
        nn.fit(m, nn.MSELoss(), nn.SGD(m.parameters(), lr=0.1), x, y,
               epochs=2, verbose=verbose, file=file)  # fmt: skip

    run(None)  # stderr is captured here, not a terminal: nothing is drawn
    run(0)
    assert capsys.readouterr() == ("", "")
    lines = io.StringIO()
    run(2, lines)
    text = lines.getvalue().splitlines()
    assert len(text) == 2 and text[1].startswith("epoch 2/2: loss=")
    bar = io.StringIO()
    run(1, bar)  # forced on a non-terminal
    assert "epoch 2/2: 100%" in bar.getvalue() and "32/32" in bar.getvalue()
    with pytest.raises(ValueError, match=r"verbose=3; expected None, 0, 1 or 2"):
        run(3)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_a_diverging_loss_stops_with_a_clear_error() -> None:
    x, y = _regression(32, np.random.default_rng(0))
    x = x * 1e3
    m = nn.Linear(1, 1, seed=0)
    with pytest.raises(FloatingPointError, match=r"the loss became (inf|nan) at epoch \d+, batch"):
        nn.fit(m, nn.MSELoss(), nn.SGD(m.parameters(), lr=10.0), x, y, epochs=50, verbose=0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"epochs": -1}, r"epochs=-1 must be a non-negative integer"),
        ({"batch_size": 0}, r"batch_size=0 must be a positive integer"),
        ({"metrics": ["f1"]}, r"unknown metric 'f1'; expected one of \['accuracy', 'mae', 'mse'\]"),
        ({"metrics": ["mse", "mse"]}, r"names must be distinct"),
        ({"validation_data": (np.ones((3, 1)),)}, r"validation_data must be a pair"),
    ],
)
def test_fit_rejects_bad_arguments(kwargs, match) -> None:
    m = nn.Linear(1, 1)
    x = np.ones((4, 1), np.float32)
    with pytest.raises(ValueError, match=match):
        nn.fit(m, nn.MSELoss(), nn.SGD(m.parameters(), lr=0.1), x, x, verbose=0, **kwargs)
    with pytest.raises(ValueError, match=r"x.shape=\(4, 1\) and y.shape=\(3, 1\)"):
        nn.fit(m, nn.MSELoss(), nn.SGD(m.parameters(), lr=0.1), x, x[:3], verbose=0)


def test_metrics_against_their_definitions() -> None:
    scores = np.array([[0.1, 0.9, 0.0], [2.0, 1.0, 0.5], [0.0, 0.0, 3.0], [1.0, 2.0, 0.0]])
    labels = np.array([1, 0, 1, 0])
    assert nn.accuracy(scores, labels) == 0.5
    assert nn.accuracy(np.array([1, 2, 2]), np.array([1, 2, 0])) == pytest.approx(2 / 3)
    p, t = np.array([1.0, -2.0, 4.0]), np.array([0.0, 0.0, 1.0])
    assert nn.mse(p, t) == pytest.approx((1 + 4 + 9) / 3)
    assert nn.mae(p, t) == pytest.approx((1 + 2 + 3) / 3)
    with pytest.raises(ValueError, match=r"accuracy compares scores \(N, K\) with integer labels"):
        nn.accuracy(np.ones((4, 2)), np.ones((4, 2)))


# -- callbacks -------------------------------------------------------------------------------


class _Snapshots(nn.Callback):
    def __init__(self) -> None:
        self.states: list[dict[str, np.ndarray]] = []

    def on_epoch_end(self, epoch, logs):
        assert self.model is not None
        self.states.append(self.model.state_dict())


def test_early_stopping_stops_and_restores_the_best_epoch() -> None:
    rng = np.random.default_rng(0)
    x, y = _regression(64, rng)
    xv, yv = x, -y  # the validation targets contradict the training ones
    model = nn.Linear(1, 1, seed=0)
    model.weight, model.bias = np.zeros((1, 1), np.float32), np.zeros(1, np.float32)
    stop = nn.EarlyStopping("val_loss", patience=2, restore_best=True)
    snaps = _Snapshots()
    history = nn.fit(model, nn.MSELoss(), nn.SGD(model.parameters(), lr=0.05), x, y,
                     epochs=50, validation_data=(xv, yv), callbacks=[stop, snaps],
                     seed=0, verbose=0)  # fmt: skip
    val = history.history["val_loss"]
    # every step towards y moves away from -y: the first epoch is the best, and training
    # stops after `patience` epochs without improvement
    assert np.all(np.diff(val) > 0)
    assert len(val) == 3 and stop.best_epoch == 0 and stop.stopped_epoch == 2
    assert stop.best == val[0]
    for key, value in snaps.states[0].items():
        np.testing.assert_array_equal(model.state_dict()[key], value)


def test_early_stopping_without_restore_keeps_the_last_weights_and_modes() -> None:
    stop = nn.EarlyStopping("val_accuracy", patience=0)
    assert stop.mode == "max"
    stop.on_train_begin()
    stop.on_epoch_end(0, {"val_accuracy": 0.5})
    stop.on_epoch_end(1, {"val_accuracy": 0.7})
    assert not stop.stop_training
    stop.on_epoch_end(2, {"val_accuracy": 0.7})
    assert stop.stop_training and stop.best == 0.7 and stop.best_epoch == 1
    with pytest.raises(ValueError, match=r"EarlyStopping\(monitor='val_loss'\): the logs hold"):
        nn.EarlyStopping().on_epoch_end(0, {"loss": 1.0})
    with pytest.raises(ValueError, match=r"mode='up'; expected 'auto', 'min' or 'max'"):
        nn.EarlyStopping(mode="up")


# -- Dropout and BatchNorm -------------------------------------------------------------------


def test_dropout_masks_scales_and_passes_through_in_eval() -> None:
    layer = nn.Dropout(0.25, seed=0)
    x = np.full((200, 100), 2.0, np.float32)
    y = layer(x)
    zeros = np.mean(y == 0)
    assert 0.23 < zeros < 0.27
    np.testing.assert_allclose(y[y != 0], 2.0 / 0.75)
    g = layer.backward(np.ones_like(x))
    np.testing.assert_allclose(g, y / 2.0)  # the same mask and scale
    layer.eval()
    np.testing.assert_array_equal(layer(x), x)
    np.testing.assert_array_equal(layer.backward(x), x)
    assert not np.any(nn.Dropout(1.0)(x))
    with pytest.raises(ValueError, match=r"p=1.5: a dropout probability must lie in \[0, 1\]"):
        nn.Dropout(1.5)


@pytest.mark.parametrize(
    ("ours", "theirs", "shape", "momentum"),
    [
        (nn.BatchNorm1d, torch.nn.BatchNorm1d, (6, 3), 0.1),
        (nn.BatchNorm1d, torch.nn.BatchNorm1d, (4, 3, 7), None),
        (nn.BatchNorm2d, torch.nn.BatchNorm2d, (4, 3, 5, 6), 0.3),
        (nn.BatchNorm3d, torch.nn.BatchNorm3d, (2, 3, 3, 4, 2), 0.1),
    ],
)
def test_batch_norm_matches_torch_in_both_modes(ours, theirs, shape, momentum) -> None:
    rng = np.random.default_rng(0)
    a = ours(3, momentum=momentum, dtype="float64")
    b = theirs(3, momentum=momentum, dtype=torch.float64)
    with torch.no_grad():
        b.weight.copy_(torch.tensor([0.5, 2.0, -1.0]))
        b.bias.copy_(torch.tensor([0.1, 0.0, 0.3]))
    a.load_state_dict(b.state_dict())
    for mode in ("train", "train", "eval", "train"):
        a.train(mode == "train"), b.train(mode == "train")
        x = rng.standard_normal(shape) * 3 + 1
        g = rng.standard_normal(shape)
        xt = torch.tensor(x, requires_grad=True)
        yt = b(xt)
        yt.backward(torch.tensor(g))
        a.zero_grad()
        np.testing.assert_allclose(a(x), yt.detach().numpy(), atol=1e-12)
        np.testing.assert_allclose(a.backward(g), xt.grad.numpy(), atol=1e-12)
        np.testing.assert_allclose(a.weight.grad, b.weight.grad.numpy(), atol=1e-12)
        np.testing.assert_allclose(a.bias.grad, b.bias.grad.numpy(), atol=1e-12)
        b.weight.grad = b.bias.grad = None
        for key, value in b.state_dict().items():
            np.testing.assert_allclose(a.state_dict()[key], value.numpy(), atol=1e-12)


def test_batch_norm_errors() -> None:
    with pytest.raises(ValueError, match=r"needs more than one value per channel"):
        nn.BatchNorm1d(2)(np.ones((1, 2), np.float32))
    with pytest.raises(
        ValueError, match=r"BatchNorm2d\(4\) expects input \(N, C, S1, S2\) with C=4"
    ):
        nn.BatchNorm2d(4)(np.ones((2, 3, 5, 5), np.float32))


# -- PyTorch conventions: repr, state_dict, modes, summary, dtypes -----------------------------


def _pair():
    ours = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, seed=0),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False, seed=1),
        nn.ReLU(),
        nn.Conv2d(32, 32, (1, 3), padding="same", dilation=2, groups=4, padding_mode="reflect"),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 10, seed=2),
    )
    theirs = torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3, padding=1),
        torch.nn.BatchNorm2d(16),
        torch.nn.ReLU(),
        torch.nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False),
        torch.nn.ReLU(),
        torch.nn.Conv2d(
            32, 32, (1, 3), padding="same", dilation=2, groups=4, padding_mode="reflect"
        ),
        torch.nn.Flatten(),
        torch.nn.Linear(32 * 4 * 4, 10),
    )
    return ours, theirs


def test_repr_is_torchs() -> None:
    ours, theirs = _pair()
    assert repr(ours) == repr(theirs)
    assert repr(nn.Conv1d(2, 4, 5, padding=((1, 3),), padding_mode="symmetric")) == (
        "Conv1d(2, 4, kernel_size=(5,), stride=(1,), padding=((1, 3),), padding_mode=symmetric)"
    )


def test_state_dict_keys_are_torchs_and_torch_weights_load() -> None:
    ours, theirs = _pair()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    theirs.train()
    x = torch.randn(4, 1, 8, 8)
    theirs(x)  # move the running statistics away from their initial values
    ours.load_state_dict(theirs.state_dict())
    ours.eval(), theirs.eval()
    np.testing.assert_allclose(ours(x.numpy()), theirs(x).detach().numpy(), atol=1e-5)
    # and back: torch takes convkit's state (NumPy arrays as tensors)
    other = _pair()[1]
    other.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    other.eval()
    np.testing.assert_allclose(other(x).detach().numpy(), theirs(x).detach().numpy(), atol=1e-6)


def test_load_state_dict_checks_everything_before_changing_anything() -> None:
    model = nn.Sequential(nn.Linear(2, 3, seed=0), nn.BatchNorm1d(3))
    before = model.state_dict()
    bad = dict(before)
    bad["1.running_mean"] = np.zeros(4, np.float32)
    with pytest.raises(ValueError, match=r"state\['1.running_mean'\] has shape \(4,\)"):
        model.load_state_dict({k: v + 1 if k == "0.weight" else v for k, v in bad.items()})
    assert all(np.array_equal(model.state_dict()[k], before[k]) for k in before)
    with pytest.raises(KeyError, match=r"missing keys \['0.bias'\], unexpected keys \['extra'\]"):
        model.load_state_dict({**{k: v for k, v in before.items() if k != "0.bias"}, "extra": 1})
    keys = model.load_state_dict({"0.bias": np.ones(3)}, strict=False)
    assert keys.unexpected_keys == [] and "0.weight" in keys.missing_keys
    assert model.state_dict()["0.bias"].dtype == np.float32  # float64 cast into float32
    with pytest.raises(TypeError, match=r"has dtype complex128; this module's 0.bias is float32"):
        model.load_state_dict({"0.bias": np.ones(3, complex)}, strict=False)


def test_train_and_eval_reach_every_submodule() -> None:
    model = nn.Sequential(nn.Sequential(nn.Dropout(), nn.BatchNorm1d(2)), nn.ReLU())
    assert model.eval() is model
    assert [m.training for _, m in model.named_modules()] == [False] * 5
    model.train()
    assert [m.training for _, m in model.named_modules()] == [True] * 5
    assert [name for name, _ in model.named_modules()] == ["", "0", "0.0", "0.1", "1"]


def test_summary_prints_shapes_and_counts_as_torch_counts_them() -> None:
    ours, theirs = _pair()
    lines: list[str] = []
    ours.train()
    ours.summary((1, 8, 8), print_fn=lines.append)
    assert ours.training  # the mode is left as it was
    rows = lines[2:10]
    shapes = [(1, 16, 8, 8), (1, 16, 8, 8), (1, 16, 8, 8), (1, 32, 4, 4), (1, 32, 4, 4),
              (1, 32, 4, 4), (1, 512), (1, 10)]  # fmt: skip
    x = torch.zeros(1, 1, 8, 8)
    for row, module, shape in zip(rows, theirs, shapes, strict=True):
        x = module(x)
        assert tuple(x.shape) == shape
        count = sum(p.numel() for p in module.parameters())
        expected_shape = "(None, " + ", ".join(map(str, shape[1:])) + ")"
        assert expected_shape in row and row.endswith(f"{count:,}"), row
    trainable = sum(p.numel() for p in theirs.parameters())
    assert lines[-2] == f"Trainable params: {trainable:,}"
    assert lines[-1] == "Non-trainable params: 32"  # BatchNorm2d(16): running mean and var
    assert lines[0].split() == ["Layer", "(type)", "Output", "shape", "Param", "#"]
    assert rows[0].startswith("0 (Conv2d)") and rows[1].startswith("1 (BatchNorm2d)")


def test_a_float32_model_refuses_float64_input_as_torch_does() -> None:
    model = nn.Sequential(nn.Conv1d(1, 2, 3, seed=0), nn.Flatten(), nn.Linear(12, 1, seed=0))
    x = np.ones((2, 1, 8))
    with pytest.raises(
        TypeError,
        match=r"Conv1d has float32 parameters but got float64 input; convert the input "
        r"\(x.astype\(np.float32\)\) or the model \(model.double\(\)\)",
    ):
        model(x)
    with pytest.raises(TypeError, match=r"Linear has float32 parameters but got int64 input"):
        nn.Linear(2, 1)(np.ones((1, 2), dtype=np.int64))
    y32 = model(x.astype(np.float32))
    y64 = model.double()(x)
    assert y64.dtype == np.float64 and model[0].weight.value.dtype == np.float64
    np.testing.assert_allclose(y64, y32, rtol=1e-6)
    assert model.float()(x.astype(np.float32)).dtype == np.float32


def test_conv4d_is_conv_over_four_dimensions() -> None:
    import convkit as ck

    layer = nn.Conv4d(2, 3, 2, padding=1, padding_mode="circular", backend="numpy", seed=0)
    x = np.random.default_rng(0).standard_normal((1, 2, 3, 4, 3, 2)).astype(np.float32)
    expected = ck.conv(x, layer.weight.value, layer.bias.value, padding=1,
                       padding_mode="circular", backend="scipy")  # fmt: skip
    np.testing.assert_allclose(layer(x), expected, atol=1e-5)
    assert repr(layer).startswith("Conv4d(2, 3, kernel_size=(2, 2, 2, 2), stride=(1, 1, 1, 1)")


def test_the_python_examples_in_docs_nn_run(
    tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "nn.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block, "docs/nn.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert "['accuracy', 'loss', 'val_accuracy', 'val_loss']" in printed


@pytest.mark.parametrize(
    ("layer", "native"),
    [
        (nn.Conv2d(2, 4, 3, padding=1, padding_mode="reflect", seed=0), torch.nn.Conv2d),
        (nn.Conv2d(2, 4, 3, padding=1, padding_mode="symmetric", seed=0), None),
        (nn.Conv2d(2, 4, 3, stride=2, padding="same", seed=0), None),
        (nn.Conv1d(2, 4, 3, padding=((0, 2),), seed=0), None),
        (nn.Conv4d(2, 2, 2, padding=1, groups=2, seed=0), None),
    ],
)
def test_to_torch_and_back_keep_the_function(layer, native) -> None:
    from convkit.nn import torch as cktorch

    d = len(layer.kernel_size)
    x = np.random.default_rng(0).standard_normal((2, 2, *(5,) * d)).astype(np.float32)
    module = layer.to_torch()
    assert type(module) is (native or cktorch.ConvNd)
    np.testing.assert_allclose(module(torch.from_numpy(x)).detach().numpy(), layer(x), atol=1e-5)
    back = nn.ConvNd.from_torch(module)
    np.testing.assert_array_equal(back(x), layer(x))
    assert repr(back).split("(", 1)[1] == repr(layer).split("(", 1)[1]


# -- what a reviewer tried -------------------------------------------------------------------


def test_early_stopping_on_a_name_fit_does_not_report_fails_before_training() -> None:
    m = nn.Linear(1, 1, seed=0)
    before = m.state_dict()
    x = np.ones((8, 1), np.float32)
    with pytest.raises(
        ValueError, match=r"fit\(\) reports \['loss'\] \(val_\* needs validation_data\)"
    ):
        nn.fit(m, nn.MSELoss(), nn.SGD(m.parameters(), lr=0.1), x, x,
               callbacks=[nn.EarlyStopping("val_loss")], verbose=0)  # fmt: skip
    assert all(np.array_equal(m.state_dict()[k], v) for k, v in before.items())


def test_integral_numbers_are_accepted_and_empty_data_is_refused() -> None:
    m = nn.Linear(1, 1, seed=0)
    x = np.ones((8, 1), np.float32)
    h = nn.fit(m, nn.MSELoss(), nn.SGD(m.parameters(), lr=0.1), x, x,
               epochs=np.int64(2), batch_size=np.int32(4), verbose=0)  # fmt: skip
    assert h.epoch == [0, 1]
    with pytest.raises(ValueError, match=r"fit: x and y hold no examples"):
        nn.fit(m, nn.MSELoss(), nn.SGD(m.parameters(), lr=0.1), x[:0], x[:0], verbose=0)
    with pytest.raises(ValueError, match=r"evaluate: x and y hold no examples"):
        nn.evaluate(m, x[:0], x[:0], metrics=["mse"])
    with pytest.raises(ValueError, match=r"predict: x needs one or more examples"):
        nn.predict(m, x[:0])
    with pytest.raises(ValueError, match=r"batch_size=True must be a positive integer"):
        nn.fit(m, nn.MSELoss(), nn.SGD(m.parameters(), lr=0.1), x, x, batch_size=True)


def test_metrics_refuse_what_they_would_get_wrong() -> None:
    with pytest.raises(ValueError, match=r"prediction \(3, 1\) has one score per example"):
        nn.accuracy(np.array([[0.9], [0.1], [0.8]]), np.array([1, 0, 1]))
    m = nn.Linear(1, 1)
    x = np.ones((4, 1), np.float32)
    with pytest.raises(ValueError, match=r"'<lambda>' is not a name; define it with def"):
        nn.evaluate(m, x, x, metrics=[lambda p, t: 0.0])


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda: nn.Linear(0, 3), ValueError, r"in_features=0 must be a positive integer"),
        (lambda: nn.Linear(2.5, 3), ValueError, r"in_features=2.5 must be a positive integer"),
        (lambda: nn.Linear(2, 3, dtype="int32"), TypeError, r"dtype='int32': layers train in"),
        (lambda: nn.Dropout("a"), ValueError, r"p='a': a dropout probability must lie in"),
        (lambda: nn.Conv2d(2, 2, 3, groups=1.5), ValueError, r"groups=1.5 must be a positive"),
        (lambda: nn.BatchNorm2d(4, momentum=2), ValueError, r"momentum=2 must be a number in"),
        (lambda: nn.BatchNorm2d(4, eps=0), ValueError, r"eps=0 must be a positive number"),
        (lambda: nn.BatchNorm1d(4, dtype="float16"), TypeError, r"dtype='float16'"),
    ],
)
def test_constructors_name_the_bad_argument(build, error, match) -> None:
    with pytest.raises(error, match=match):
        build()


def test_summary_walks_a_custom_module_in_call_order() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            self.features = nn.Sequential(nn.Conv1d(1, 4, 3, seed=0), nn.ReLU())
            self.head = nn.Linear(4 * 6, 2, seed=1)
            self.flat = nn.Flatten()

        def forward(self, x):
            return self.head(self.flat(self.features(x)))

    lines: list[str] = []
    Net().summary((1, 8), print_fn=lines.append)
    rows = [[*line.split()[:2], line.split()[-1]] for line in lines[2:6]]
    assert rows == [
        ["features.0", "(Conv1d)", "16"],
        ["features.1", "(ReLU)", "0"],
        ["flat", "(Flatten)", "0"],
        ["head", "(Linear)", "50"],
    ]
    assert "(None, 4, 6)" in lines[2] and "(None, 2)" in lines[5]
    assert lines[-2] == "Trainable params: 66"


def test_fixed_dimension_convs_take_torchs_positional_order() -> None:
    a = nn.Conv2d(3, 8, 3, 2, 1, 1, 1, False, "reflect", seed=0)
    b = nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False, padding_mode="reflect", seed=0)
    assert repr(a) == repr(b) == repr(torch.nn.Conv2d(3, 8, 3, 2, 1, 1, 1, False, "reflect"))
    back = nn.ConvNd.from_torch(torch.nn.Conv1d(2, 2, 3))
    assert type(back) is nn.Conv1d


def test_a_bfloat16_state_loads_exactly() -> None:
    layer = nn.Linear(2, 2, seed=0)
    state = {k: torch.from_numpy(v).to(torch.bfloat16) for k, v in layer.state_dict().items()}
    layer.load_state_dict(state)
    np.testing.assert_array_equal(layer.weight.value, state["weight"].float().numpy())


def test_fit_leaves_no_progress_thread_behind() -> None:
    import threading

    before = {t.name for t in threading.enumerate()}
    m = nn.Linear(1, 1, seed=0)
    x = np.ones((8, 1), np.float32)
    nn.fit(m, nn.MSELoss(), nn.SGD(m.parameters(), lr=0.1), x, x, verbose=1, file=io.StringIO())
    assert {t.name for t in threading.enumerate()} == before


def test_convkit_nn_trains_without_torch() -> None:
    """The main job's constraint: convkit.nn works where torch cannot be imported."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(
        """
        import sys, tempfile, pathlib
        sys.modules["torch"] = None  # importing torch now fails, as if it were absent
        import numpy as np
        from convkit import nn

        rng = np.random.default_rng(0)
        x = rng.standard_normal((64, 1, 8, 8)).astype(np.float32)
        y = (x[:, 0, :4].sum(axis=(1, 2)) > x[:, 0, 4:].sum(axis=(1, 2))).astype(int)
        model = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1, backend="numpy", seed=0), nn.BatchNorm2d(4),
            nn.ReLU(), nn.MaxPool(2), nn.Dropout(0.1, seed=0), nn.Flatten(),
            nn.Linear(64, 2, seed=1),
        )
        h = nn.fit(model, nn.CrossEntropyLoss(), nn.Adam(model.parameters(), lr=0.01),
                   x[:48], y[:48], epochs=3, validation_data=(x[48:], y[48:]),
                   metrics=["accuracy"], callbacks=[nn.EarlyStopping(patience=1)],
                   verbose=0, seed=0)
        lines = []
        model.summary((1, 8, 8), print_fn=lines.append)
        path = pathlib.Path(tempfile.mkdtemp()) / "m.npz"
        model.save(path)
        model.load(path)
        print(sorted(h.history), nn.evaluate(model, x, y)["accuracy"] >= 0, len(lines))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert (
        out.stdout.strip() == "['accuracy', 'loss', 'val_accuracy', 'val_loss'] True 13"
    )  # 7 layers + 6 lines


def test_the_public_api_has_docstring_examples() -> None:
    from convkit.nn import torch as cktorch

    missing = [name for name in nn.__all__ if ">>>" not in (getattr(nn, name).__doc__ or "")]
    methods = ["train", "eval", "astype", "state_dict", "load_state_dict", "save", "load"]
    missing += [
        f"Module.{m}" for m in [*methods, "summary"] if ">>>" not in getattr(nn.Module, m).__doc__
    ]
    missing += [
        f"convkit.nn.torch.{name}"
        for name in dir(cktorch)
        if name.startswith("Conv") and ">>>" not in (getattr(cktorch, name).__doc__ or "")
    ]
    assert missing == []
