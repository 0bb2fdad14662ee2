"""Filter a real photograph with convkit and show which backends are installed.

The photograph is the ``camera`` image that scikit-image ships. It is blurred with a
Gaussian kernel and its edges are found with Sobel kernels, as one ``conv`` call with a
three-channel filter bank, on whichever backend the selection picks (NumPy by default).
The results are written as PNG files, atomically.

    python examples/demo.py [--out out/demo] [--backend numpy]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

import convkit as ck
from convkit.cli import main as convkit_cli


def filter_bank(sigma: float = 2.0) -> np.ndarray:
    """Gaussian blur, Sobel x and Sobel y, as a ``(3, 1, 9, 9)`` weight."""
    r = np.arange(-4, 5)
    g = np.exp(-(r**2) / (2 * sigma**2))
    gauss = np.outer(g, g) / np.outer(g, g).sum()
    sobel_x = np.zeros((9, 9))
    sobel_x[3:6, 3:6] = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
    return np.stack([gauss, sobel_x, sobel_x.T])[:, None].astype(np.float32)


def save_png(array: np.ndarray, path: Path) -> None:
    """Write a [0, 1] greyscale image; a failure leaves no partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = (np.clip(array, 0, 1) * 255).round().astype(np.uint8)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    try:
        with os.fdopen(fd, "wb") as f:
            Image.fromarray(pixels).save(f, format="PNG")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out/demo"))
    parser.add_argument("--backend", default=None, help="backend selection, e.g. 'scipy'")
    args = parser.parse_args()

    image = data.camera().astype(np.float32) / 255.0  # (512, 512), a real photograph
    weight = filter_bank()
    start = time.perf_counter()
    y = ck.conv(image[None], weight, padding="same", padding_mode="reflect", backend=args.backend)
    elapsed = time.perf_counter() - start
    blurred, gx, gy = y
    edges = np.hypot(gx, gy)
    edges /= edges.max()

    save_png(image, args.out / "camera.png")
    save_png(blurred, args.out / "camera-gaussian.png")
    save_png(edges, args.out / "camera-sobel.png")
    selection = ck.get_backend(args.backend)
    print(f"camera {image.shape} through a {weight.shape} filter bank on {selection}:")
    print(f"  output {y.shape} {y.dtype} in {elapsed * 1e3:.1f} ms")
    print(f"  blur keeps the mean: {image.mean():.4f} -> {blurred.mean():.4f}")
    print(f"  wrote {', '.join(sorted(p.name for p in args.out.glob('*.png')))} to {args.out}/")
    print()
    convkit_cli(["backends"])


if __name__ == "__main__":
    main()
