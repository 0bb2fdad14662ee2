"""A small CNN on scikit-learn's handwritten digits, trained with convkit.nn on NumPy.

The data are the 1,797 8×8 greyscale digits that scikit-learn ships
(``sklearn.datasets.load_digits``: real scans, no download). They are split once into
training (60%), validation (15%) and test (25%) sets, stratified by class. The network
is the usual recipe — two 3×3 convolutions with batch normalisation and ReLU, a 2×2
max-pool, dropout and a linear classifier — trained by Adam with early stopping on the
validation loss. The test set is used once, at the end.

For comparison it also fits the classifier an expert would try first on this data set,
a support-vector machine with an RBF kernel (scikit-learn's defaults), on the same
training and validation images, and reports both accuracies.

    python examples/digits_cnn.py            # about 10 s on 2 cores
    python examples/digits_cnn.py --quick    # 2 epochs: checks that it runs
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.svm import SVC

from convkit import nn


def data(seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Train, validation and test sets: images ``(N, 1, 8, 8)`` float32 in [0, 1] and
    labels ``(N,)``."""
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]
    y = digits.target
    x_rest, x_test, y_rest, y_test = train_test_split(
        x, y, test_size=0.25, stratify=y, random_state=seed
    )
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=0.2, stratify=y_rest, random_state=seed
    )
    return {"train": (x_train, y_train), "val": (x_val, y_val), "test": (x_test, y_test)}


def model(backend: str | None = "numpy", seed: int = 0) -> nn.Sequential:
    """Conv(1→16) BN ReLU, Conv(16→32) BN ReLU, MaxPool 2, Dropout, Linear(512→10)."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, backend=backend, seed=seed),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1, backend=backend, seed=seed + 1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.MaxPool(2),
        nn.Dropout(0.25, seed=seed + 2),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 10, seed=seed + 3),
    )


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30, help="at most this many epochs")
    parser.add_argument("--quick", action="store_true", help="2 epochs, to check it runs")
    parser.add_argument("--backend", default="numpy", help="convkit backend (default numpy)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    epochs = 2 if args.quick else args.epochs

    sets = data(args.seed)
    (x, y), (x_val, y_val), (x_test, y_test) = sets["train"], sets["val"], sets["test"]
    print(f"digits: {len(x)} training, {len(x_val)} validation, {len(x_test)} test images")
    net = model(args.backend, args.seed)
    net.summary(x.shape[1:])

    start = time.perf_counter()
    stop = nn.EarlyStopping("val_loss", patience=5, restore_best=True)
    history = nn.fit(
        net,
        nn.CrossEntropyLoss(),
        nn.Adam(net.parameters(), lr=3e-3),
        x,
        y,
        epochs=epochs,
        batch_size=32,
        validation_data=(x_val, y_val),
        metrics=["accuracy"],
        seed=args.seed,
        callbacks=[stop],
    )
    seconds = time.perf_counter() - start
    test = nn.evaluate(net, x_test, y_test, loss=nn.CrossEntropyLoss())
    ran = len(history.epoch)
    print(
        f"CNN ({args.backend}): {ran} epochs in {seconds:.1f} s, best epoch "
        f"{(stop.best_epoch or 0) + 1} (val_loss {stop.best:.4f}); "
        f"test accuracy {test['accuracy']:.2%} on {len(x_test)} images"
    )

    svm = SVC().fit(
        np.concatenate([x, x_val]).reshape(len(x) + len(x_val), -1), np.concatenate([y, y_val])
    )
    svm_accuracy = float(np.mean(svm.predict(x_test.reshape(len(x_test), -1)) == y_test))
    print(f"SVM (RBF kernel, scikit-learn defaults): test accuracy {svm_accuracy:.2%}")
    return {"accuracy": test["accuracy"], "seconds": seconds, "svm_accuracy": svm_accuracy}


if __name__ == "__main__":
    main()
