"""convkit.nn: parity with torch.nn, learning that works, and clear errors."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import convkit as ck
from convkit import nn

torch = pytest.importorskip("torch", reason="torch.nn is the reference")
F = torch.nn.functional


def test_init_follows_pytorch() -> None:
    """Kaiming-uniform with a=sqrt(5): uniform in +-1/sqrt(fan_in), like torch.nn.Conv2d."""
    layer = nn.Conv2d(16, 32, 3, seed=0)
    reference = torch.nn.Conv2d(16, 32, 3)
    bound = 1 / np.sqrt(16 * 9)
    for ours, theirs in (
        (layer.weight.value, reference.weight),
        (layer.bias.value, reference.bias),
    ):
        theirs = theirs.detach().numpy()
        assert ours.shape == theirs.shape and ours.dtype == np.float32
        assert np.abs(ours).max() <= bound and np.abs(theirs).max() <= bound
        # both fill the interval: the same distribution, not just the same bound
        assert np.abs(ours).max() > 0.9 * bound
        assert abs(ours.std() - bound / np.sqrt(3)) < 0.1 * bound


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_conv2d_forward_backward_and_sgd_match_torch(backend: str, momentum: float) -> None:
    layer = nn.Conv2d(
        3,
        4,
        (3, 2),
        stride=2,
        padding=1,
        padding_mode="reflect",
        dtype="float64",
        backend=backend,
        seed=1,
    )
    reference = layer.to_torch()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 9, 8))
    y = layer(x)
    xt = torch.tensor(x, requires_grad=True)
    yt = reference(xt)
    np.testing.assert_allclose(y, yt.detach().numpy(), atol=1e-12)
    g = rng.standard_normal(y.shape)
    gx = layer.backward(g)
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(gx, xt.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(layer.weight.grad, reference.weight.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(layer.bias.grad, reference.bias.grad.numpy(), atol=1e-12)
    ours = nn.SGD(layer.parameters(), lr=0.1, momentum=momentum)
    theirs = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=momentum)
    for _ in range(2):  # the second step exercises the momentum buffer
        ours.step()
        theirs.step()
    np.testing.assert_allclose(layer.weight.value, reference.weight.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(layer.bias.value, reference.bias.detach().numpy(), atol=1e-12)


def test_adam_matches_torch() -> None:
    layer = nn.Linear(5, 3, dtype="float64", seed=0)
    reference = torch.nn.Linear(5, 3, dtype=torch.float64)
    with torch.no_grad():
        reference.weight.copy_(torch.from_numpy(layer.weight.value))
        reference.bias.copy_(torch.from_numpy(layer.bias.value))
    ours, theirs = (
        nn.Adam(layer.parameters(), lr=0.01),
        torch.optim.Adam(reference.parameters(), lr=0.01),
    )
    rng = np.random.default_rng(0)
    for _ in range(3):
        x, g = rng.standard_normal((4, 5)), rng.standard_normal((4, 3))
        ours.zero_grad()
        theirs.zero_grad()
        layer(x)
        gx = layer.backward(g)
        xt = torch.tensor(x, requires_grad=True)
        reference(xt).backward(torch.tensor(g))
        np.testing.assert_allclose(gx, xt.grad.numpy(), atol=1e-12)
        ours.step()
        theirs.step()
    np.testing.assert_allclose(layer.weight.value, reference.weight.detach().numpy(), atol=1e-12)


@pytest.mark.parametrize(
    ("ours", "theirs", "shape"),
    [
        (lambda: nn.MaxPool(2), lambda t: F.max_pool2d(t, 2), (2, 3, 8, 6)),
        (
            lambda: nn.MaxPool((3, 2), stride=(2, 1)),
            lambda t: F.max_pool2d(t, (3, 2), (2, 1)),
            (2, 3, 9, 6),
        ),
        (lambda: nn.AvgPool(2), lambda t: F.avg_pool2d(t, 2), (2, 3, 8, 6)),
        (lambda: nn.AvgPool(3, stride=2), lambda t: F.avg_pool1d(t, 3, 2), (2, 3, 11)),
        (lambda: nn.MaxPool(2), lambda t: F.max_pool3d(t, 2), (1, 2, 4, 6, 4)),
        (lambda: nn.GlobalAvgPool(), lambda t: t.mean(dim=(2, 3)), (2, 3, 5, 4)),
        (lambda: nn.GlobalMaxPool(), lambda t: t.amax(dim=(2, 3, 4)), (2, 3, 3, 5, 4)),
        (lambda: nn.ReLU(), F.relu, (3, 4, 5)),
        (lambda: nn.Flatten(), lambda t: t.flatten(1), (3, 4, 5)),
    ],
    ids=["max2", "max-strided", "avg2", "avg1d", "max3d", "gap", "gmp", "relu", "flatten"],
)
def test_layers_match_torch_forward_and_backward(ours, theirs, shape) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape)
    layer = ours()
    y = layer(x)
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt)
    np.testing.assert_allclose(y, yt.detach().numpy(), atol=1e-12)
    g = rng.standard_normal(y.shape)
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(layer.backward(g), xt.grad.numpy(), atol=1e-12)


def test_losses_match_torch() -> None:
    rng = np.random.default_rng(0)
    p, t = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    for reduction in ("mean", "sum"):
        loss = nn.MSELoss(reduction)
        pt = torch.tensor(p, requires_grad=True)
        expected = F.mse_loss(pt, torch.tensor(t), reduction=reduction)
        expected.backward()
        assert np.isclose(loss(p, t), expected.item())
        np.testing.assert_allclose(loss.backward(), pt.grad.numpy(), atol=1e-12)
    labels = np.array([0, 2, 1, 2])
    loss = nn.CrossEntropyLoss()
    pt = torch.tensor(p, requires_grad=True)
    expected = F.cross_entropy(pt, torch.tensor(labels))
    expected.backward()
    assert np.isclose(loss(p, labels), expected.item())
    np.testing.assert_allclose(loss.backward(), pt.grad.numpy(), atol=1e-12)


def test_learning_a_kernel(backend: str) -> None:
    """The chapter's experiment: recover the edge detector [1, -1] from an image and its
    filtered version, by gradient descent on the squared error."""
    x = np.ones((6, 8))
    x[:, 2:6] = 0  # a dark stripe: two vertical edges
    k = np.array([[1.0, -1.0]])
    y = ck.conv(x[None, None], k[None, None], backend="numpy")  # the target, (1, 1, 6, 7)
    layer = nn.Conv2d(1, 1, (1, 2), bias=False, dtype="float64", backend=backend, seed=0)
    loss = nn.MSELoss("sum")
    optimizer = nn.SGD(layer.parameters(), lr=3e-2)
    for _ in range(30):
        optimizer.zero_grad()
        value = loss(layer(x[None, None]), y)
        layer.backward(loss.backward())
        optimizer.step()
    assert value < 1e-3
    np.testing.assert_allclose(layer.weight.value.reshape(-1), [1.0, -1.0], atol=0.02)


def _bars(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """8x8 noisy images holding one horizontal (label 0) or vertical (label 1) bar."""
    labels = rng.integers(0, 2, n)
    images = 0.3 * rng.standard_normal((n, 1, 8, 8)).astype(np.float32)
    where = rng.integers(1, 7, n)
    for i in range(n):
        if labels[i]:
            images[i, 0, :, where[i]] += 1
        else:
            images[i, 0, where[i], :] += 1
    return images, labels


@pytest.mark.parametrize("name", ["numpy", "torch"])
def test_a_two_layer_conv_net_learns_to_tell_bars_apart(name: str) -> None:
    rng = np.random.default_rng(0)
    x, y = _bars(512, rng)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, backend=name, seed=1),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1, backend=name, seed=3),
        nn.ReLU(),
        nn.GlobalMaxPool(),
        nn.Linear(4, 2, seed=2),
    )
    history = nn.fit(
        model,
        nn.CrossEntropyLoss(),
        nn.Adam(model.parameters(), lr=0.05),
        x,
        y,
        epochs=8,
        batch_size=64,
    )
    losses = history.history["loss"]
    assert len(losses) == 8 and losses[-1] < losses[0]
    x_test, y_test = _bars(256, np.random.default_rng(1))
    accuracy = float(np.mean(np.argmax(model(x_test), axis=1) == y_test))
    assert accuracy >= 0.95, accuracy


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3, seed=0), nn.ReLU(), nn.Flatten(), nn.Linear(8, 2, seed=1)
    )
    path = tmp_path / "model.npz"
    model.save(path)
    assert sorted(np.load(path).files) == ["0.bias", "0.weight", "3.bias", "3.weight"]
    other = nn.Sequential(
        nn.Conv2d(1, 2, 3, seed=5), nn.ReLU(), nn.Flatten(), nn.Linear(8, 2, seed=6)
    )
    other.load(path)
    x = np.random.default_rng(0).standard_normal((3, 1, 4, 4)).astype(np.float32)
    np.testing.assert_array_equal(model(x), other(x))


def test_a_failed_save_keeps_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layer = nn.Conv1d(1, 1, 3, seed=0)
    path = tmp_path / "layer.npz"
    layer.save(path)
    before = path.read_bytes()

    def broken(file, **arrays):
        file.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken)
    layer.weight = np.zeros((1, 1, 3), dtype=np.float32)
    with pytest.raises(OSError, match="disk full"):
        layer.save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layer.npz"]


def test_torch_round_trip() -> None:
    module = torch.nn.Conv3d(
        2,
        4,
        (3, 1, 2),
        stride=(1, 2, 1),
        padding=(1, 0, 1),
        dilation=(2, 1, 1),
        groups=2,
        padding_mode="circular",
    )
    layer = nn.ConvNd.from_torch(module)
    x = np.random.default_rng(0).standard_normal((1, 2, 6, 5, 4)).astype(np.float32)
    np.testing.assert_allclose(layer(x), module(torch.from_numpy(x)).detach().numpy(), atol=1e-5)
    back = layer.to_torch()
    np.testing.assert_array_equal(back.weight.detach().numpy(), module.weight.detach().numpy())
    assert (back.padding_mode, back.groups, back.dilation) == ("circular", 2, (2, 1, 1))


def test_progress_bar_only_on_a_terminal() -> None:
    code = (
        "import numpy as np; from convkit import nn\n"
        "m = nn.Linear(1, 1, seed=0)\n"
        "x = np.ones((64, 1), np.float32)\n"
        "nn.fit(m, nn.MSELoss(), nn.SGD(m.parameters(), lr=0.1), x, x, epochs=2, batch_size=16)\n"
        "print('done')\n"
    )
    quiet = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert quiet.returncode == 0 and quiet.stderr == ""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=follower
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait()
    os.close(leader)
    shown = b"".join(chunks).decode()
    assert "epoch 2/2: 100%" in shown and "64/64" in shown, shown
    assert "ex/s" in shown and "loss=" in shown, shown


@pytest.mark.parametrize(
    ("action", "error", "match"),
    [
        (
            lambda: nn.Conv2d(2, 2, 3).backward(np.ones((1, 2, 1, 1))),
            RuntimeError,
            r"Conv2d.backward\(\) called before forward\(\)",
        ),
        (
            lambda: nn.ReLU().backward(np.ones(3)),
            RuntimeError,
            r"ReLU.backward\(\) called before forward\(\)",
        ),
        (
            lambda: setattr(nn.Conv2d(2, 2, 3), "weight", np.ones((2, 2, 3))),
            ValueError,
            r"weight must be an array of shape \(2, 2, 3, 3\) and dtype float32; got shape \(2, 2, 3\)",
        ),
        (
            lambda: setattr(nn.Conv2d(2, 2, 3), "weight", np.ones((2, 2, 3, 3))),
            ValueError,
            r"dtype float32; got shape \(2, 2, 3, 3\) and dtype float64",
        ),
        (
            lambda: nn.Conv2d(3, 2, 3, groups=2),
            ValueError,
            r"groups=2 must divide both in_channels=3",
        ),
        (lambda: nn.MSELoss().backward(), RuntimeError, r"before the loss was computed"),
        (
            lambda: nn.CrossEntropyLoss()(np.ones((2, 3)), np.array([0, 3])),
            ValueError,
            r"labels must lie in \[0, 3\)",
        ),
    ],
)
def test_bad_input(action, error, match) -> None:
    with pytest.raises(error, match=match):
        action()


def test_more_bad_input() -> None:
    with pytest.raises(ValueError, match=r"in_channels=0 must be a positive integer"):
        nn.Conv2d(0, 2, 3)
    layer = nn.Conv2d(1, 2, 3, bias=False)
    with pytest.raises(
        ValueError, match=r"Conv2d has no bias parameter \(it was built without one\)"
    ):
        layer.bias = np.zeros(2, dtype=np.float32)
    with pytest.raises(ValueError, match=r"the gradient of weight must have shape \(2, 1, 3, 3\)"):
        layer.weight.grad = np.zeros(3)
    with pytest.raises(
        ValueError, match=r"Linear expects inputs \(\.\.\., 4\); got shape \(2, 3\)"
    ):
        nn.Linear(4, 2)(np.ones((2, 3)))
    flat = nn.Flatten()
    flat(np.ones((2, 3, 4)))
    with pytest.raises(
        ValueError, match=r"Flatten.backward\(\) expects grad_out of the output's shape \(2, 12\)"
    ):
        flat.backward(np.ones((2, 11)))
    with pytest.raises(
        TypeError,
        match=r"from_torch\(\) takes a torch.nn.Conv1d, Conv2d, Conv3d or a convkit.nn.torch.ConvNd; "
        r"got ConvTranspose2d",
    ):
        nn.ConvNd.from_torch(torch.nn.ConvTranspose2d(2, 2, 3))


def test_backward_with_the_wrong_shape_is_named() -> None:
    layer = nn.Conv2d(1, 2, 3, seed=0)
    layer(np.ones((1, 1, 5, 5), dtype=np.float32))
    with pytest.raises(
        ValueError, match=r"grad_out must have the forward output's shape \(1, 2, 3, 3\)"
    ):
        layer.backward(np.ones((1, 2, 4, 4), dtype=np.float32))
