"""conv_vjp with padding as wide as half the input: the padding adjoint's cost.

8000 samples, a 9-tap kernel, ``padding=4000`` in each padding mode but zeros (the
gradient folds 8000 padded samples back onto the input). Peer: torch autograd through
``F.pad`` + ``F.conv1d`` where torch has the mode (it has no ``symmetric``), timed in the
same run; medians of ``--rounds`` rounds, in milliseconds.

    python benchmarks/wide_padding.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable

import numpy as np

import convkit as ck
from convkit.bench import measure

TORCH_MODE = {"reflect": "reflect", "replicate": "replicate", "circular": "circular"}


def _torch_vjp(x: np.ndarray, w: np.ndarray, g: np.ndarray, mode: str) -> object:
    import torch
    import torch.nn.functional as F

    tx = torch.from_numpy(x).requires_grad_()
    tw = torch.from_numpy(w).requires_grad_()
    y = F.conv1d(F.pad(tx, (4000, 4000), mode=TORCH_MODE[mode]), tw)
    return torch.autograd.grad(y, (tx, tw), torch.from_numpy(g))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((1, 1, 8000)), rng.standard_normal((1, 1, 9))
    g = rng.standard_normal((1, 1, 8000 + 2 * 4000 - 8))
    print(f"{'mode':10} {'backend':14} {'ms':>9}  ratio to torch autograd")
    for mode in ("reflect", "symmetric", "replicate", "circular"):
        candidates: dict[str, Callable[[], object]] = {}
        for backend in ("numpy", "scipy", "torch"):
            candidates[backend] = functools.partial(
                ck.conv_vjp, x, w, g, padding=4000, padding_mode=mode, backend=backend
            )
        if mode in TORCH_MODE:
            candidates["torch autograd"] = functools.partial(_torch_vjp, x, w, g, mode)
        times = measure(candidates, rounds=args.rounds, repeat=3)
        peer = times.get("torch autograd")
        for name, t in times.items():
            ratio = f"{t / peer:.2f}x" if peer else "-"
            print(f"{mode:10} {name:14} {t * 1e3:9.2f}  {ratio}")


if __name__ == "__main__":
    main()
