"""Train a PyTorch model with a 4-D convolution: which way does the blob move?

Each example is a short clip of 3-D volumes, shape ``(1, T, X, Y, Z)`` with ``T = X = Y
= Z = 6``: a soft blob that moves one voxel per frame along one of the three axes, in
the ``+`` or the ``-`` direction — six classes — from a random start, in Gaussian
noise. The volume is periodic (the blob leaves one face and comes back through the
opposite one) and, with as many frames as voxels per axis, so is the clip in time: every
single frame is a blob at a uniformly random place, so only the motion, seen across
time *and* all three space axes together, tells the classes apart.

That is a job for a convolution over four dimensions, which ``torch.nn`` lacks.
``convkit.nn.torch.Conv4d`` is a ``torch.nn.Module`` like ``torch.nn.Conv3d`` (same
arguments, same initialisation, its parameters trained by any torch optimiser) whose
forward pass is ``convkit.conv`` on the torch backend. Here two of them, with circular
padding to match the periodic clips, feed a global max pool and a linear classifier,
trained with ``torch.optim.Adam``.

Run it from the checkout (torch installed with ``pip install -e '.[torch]'``)::

    .venv/bin/python examples/torch_conv4d.py           # about 10 s on 2 CPU cores
    .venv/bin/python examples/torch_conv4d.py --quick   # a few seconds, smaller clips

It prints the held-out accuracy against chance (1/6) and the time taken. Everything is
seeded (``--seed``); the global RNG is left as it was found.
"""

from __future__ import annotations

import argparse
import time

import torch

from convkit.nn.torch import Conv4d

CLASSES = ("+X", "-X", "+Y", "-Y", "+Z", "-Z")


def make_clips(
    n: int, size: int, noise: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` clips ``(n, 1, size, size, size, size)`` (time, then X, Y, Z) and their
    labels: class ``c`` moves along axis ``c // 2``, forwards if ``c`` is even."""
    labels = torch.randint(0, len(CLASSES), (n,), generator=generator)
    start = torch.rand(n, 3, generator=generator) * size  # a sub-voxel start anywhere
    velocity = torch.zeros(n, 3)
    velocity[torch.arange(n), labels // 2] = 1.0 - 2.0 * (labels % 2).float()
    t = torch.arange(size, dtype=torch.float32)
    centre = start[:, None, :] + t[None, :, None] * velocity[:, None, :]  # (n, T, 3)
    grid = torch.arange(size, dtype=torch.float32)
    offset = grid[None, None, None, :] - centre[..., None]  # (n, T, 3, size)
    offset = torch.remainder(offset + size / 2, size) - size / 2  # periodic distance
    profile = torch.exp(-(offset**2) / (2 * 0.8**2))  # a Gaussian per axis
    blob = (
        profile[:, :, 0, :, None, None]
        * profile[:, :, 1, None, :, None]
        * profile[:, :, 2, None, None, :]
    )
    clips = blob + noise * torch.randn(blob.shape, generator=generator)
    return clips[:, None], labels


class GlobalMaxPool(torch.nn.Module):
    """The largest value of each channel over all positions: ``(N, C, ...) -> (N, C)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(2).amax(dim=2)


def make_model(channels: int) -> torch.nn.Sequential:
    return torch.nn.Sequential(
        Conv4d(1, channels, 3, padding=1, padding_mode="circular"),
        torch.nn.ReLU(),
        Conv4d(channels, 2 * channels, 3, stride=2, padding="same", padding_mode="circular"),
        torch.nn.ReLU(),
        GlobalMaxPool(),
        torch.nn.Linear(2 * channels, len(CLASSES)),
    )


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        correct = sum(
            int((model(xb).argmax(dim=1) == yb).sum())
            for xb, yb in zip(x.split(256), y.split(256), strict=True)
        )
    return correct / len(y)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny clips, a few seconds")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.quick:
        size, n_train, n_test, epochs, channels, noise = 4, 512, 256, 8, 6, 0.3
    else:
        size, n_train, n_test, epochs, channels, noise = 6, 1536, 512, 8, 8, 0.4
    batch_size = 32

    # fork_rng: seed torch's global RNG (the layers' initialisation draws from it) and
    # restore it afterwards; the data and the shuffling have their own generator.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        generator = torch.Generator().manual_seed(args.seed)
        x_train, y_train = make_clips(n_train, size, noise, generator)
        x_test, y_test = make_clips(n_test, size, noise, generator)
        model = make_model(channels)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.005)
        loss_fn = torch.nn.CrossEntropyLoss()
        print(
            f"clips {tuple(x_train.shape[1:])}, {n_train} to train, {n_test} held out; "
            f"{sum(p.numel() for p in model.parameters())} parameters"
        )

        start = time.perf_counter()
        for epoch in range(1, epochs + 1):
            model.train()
            order = torch.randperm(n_train, generator=generator)
            total = 0.0
            for batch in order.split(batch_size):
                optimizer.zero_grad()
                loss = loss_fn(model(x_train[batch]), y_train[batch])
                loss.backward()
                optimizer.step()
                total += loss.item() * len(batch)
            print(f"epoch {epoch}: training loss {total / n_train:.3f}")
        elapsed = time.perf_counter() - start
        held_out = accuracy(model, x_test, y_test)

    print(
        f"held-out accuracy {held_out:.3f} (chance {1 / len(CLASSES):.3f}); "
        f"trained in {elapsed:.1f} s"
    )


if __name__ == "__main__":
    main()
